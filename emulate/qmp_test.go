package emulate

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// trixieUBoot is Debian trixie's U-Boot for QEMU's virt machine
// (scripts/testdata.sh u-boot-qemu-trixie), which drives bochs-display.
const trixieUBoot = "../build/cache/pkgs/u-boot-qemu-trixie_all/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// TestScreendumpUBootDisplay boots the QEMU virt board with trixie's
// U-Boot and a disk with nothing to boot: U-Boot drives the board's
// display and prints its console there too, and the screendump taken at
// its autoboot line through QEMU's monitor is a picture of it: the mode
// U-Boot set, not one colour. A screendump QEMU cannot write ends with
// QEMU's own error, and one whose line never comes says so.
func TestScreendumpUBootDisplay(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: boots U-Boot under QEMU")
	}
	testenv.RequireCommand(t, "qemu-system-aarch64", "qemu-system-arm")
	testenv.RequireFile(t, trixieUBoot, "run `scripts/testdata.sh u-boot-qemu-trixie`")
	dir := t.TempDir()
	disk := filepath.Join(dir, "empty.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	at, err := ParseExpect("--expect", "board: Hit any key to stop autoboot")
	if err != nil {
		t.Fatal(err)
	}
	never, err := ParseExpect("--expect", "board: a line U-Boot never prints")
	if err != nil {
		t.Fatal(err)
	}
	good, bad, late := filepath.Join(dir, "uboot.png"), filepath.Join(dir, "no-such-dir", "x.png"), filepath.Join(dir, "late.png")
	res, err := Run(context.Background(), Options{Image: disk, Board: QEMUVirtARM64, Firmware: trixieUBoot, Until: at, Timeout: 2 * time.Minute,
		Screendumps: []*Screendump{{At: at, File: good}, {At: at, File: bad}, {At: never, File: late}}})
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if res.End != EndUntil {
		t.Fatalf("Run() ended %q, want %q", res.End, EndUntil)
	}
	if len(res.Screendumps) != 3 {
		t.Fatalf("Result.Screendumps = %+v, want 3", res.Screendumps)
	}
	for i, want := range []string{"", "screendump", "no line of board matched"} {
		r := res.Screendumps[i]
		if want == "" && r.Err != "" || want != "" && !strings.Contains(r.Err, want) {
			t.Errorf("screendump %s: error %q, want %q", r.File, r.Err, want)
		}
	}
	if r := res.Screendumps[0]; !strings.Contains(r.Line, "Hit any key") || r.At <= 0 {
		t.Errorf("screendump %s: line %q at %v, want U-Boot's autoboot line", r.File, r.Line, r.At)
	}
	f, err := os.Open(good)
	if err != nil {
		t.Fatalf("no screendump: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screendump %s: %v", good, err)
	}
	if got := img.Bounds().Size(); got.X < 640 || got.Y < 480 {
		t.Errorf("screendump size %v; want U-Boot's mode, at least 640x480", got)
	}
	if n := colours(img); n < 2 {
		t.Errorf("screendump has %d colour(s): U-Boot's console is not on the display", n)
	}
	if _, err := os.Stat(late); err == nil {
		t.Errorf("%s written though its line never came", late)
	}
}

// colours counts an image's distinct colours.
func colours(img image.Image) int {
	seen := map[[3]uint32]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[[3]uint32{r, g, bl}] = true
		}
	}
	return len(seen)
}

// TestScreendumpNeedsDisplay: a board without a display in QEMU's model
// takes no screendumps, and a firmware file that is missing is named.
func TestScreendumpNeedsDisplay(t *testing.T) {
	at, _ := ParseExpect("--expect", "board: x")
	b := *QEMUVirtARM64
	b.QEMU, b.Firmware, b.Display = "true", "/dev/null", nil
	disk := filepath.Join(t.TempDir(), "disk.img")
	os.WriteFile(disk, nil, 0o644)
	_, err := Run(context.Background(), Options{Image: disk, Board: &b, Screendumps: []*Screendump{{At: at, File: "x.png"}}})
	if err == nil || !strings.Contains(err.Error(), "board qemu-virt-arm64 has no display in QEMU's model of it") {
		t.Errorf("Run(no display) = %v; want it refused", err)
	}
	_, err = Run(context.Background(), Options{Image: disk, Board: &b, Firmware: "/nonexistent/u-boot.bin"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/u-boot.bin") {
		t.Errorf("Run(missing firmware) = %v; want the file named", err)
	}
}
