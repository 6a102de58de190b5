package images

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

func buildA20(t *testing.T) (string, Config) {
	t.Helper()
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	b, _ := all.Lookup("cubieboard2")
	dir := t.TempDir()
	cfg := fixture(t, dir, b)
	img := filepath.Join(dir, "a20.img")
	if _, err := Build(t.Context(), img, cfg); err != nil {
		t.Fatalf("Build() = %v", err)
	}
	return img, cfg
}

// mappedEqual compares the mapped blocks of two files.
func mappedEqual(t *testing.T, img, dst string) {
	t.Helper()
	bm, err := os.ReadFile(BmapPath(img))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseBmap(bm)
	if err != nil {
		t.Fatalf("ParseBmap() = %v", err)
	}
	for _, r := range m.Ranges {
		off, n := m.rangeBytes(r)
		if !bytes.Equal(readAt(t, img, off, int(n)), readAt(t, dst, off, int(n))) {
			t.Errorf("blocks %d-%d differ after flashing", r.First, r.Last)
		}
	}
}

// TestBmaptoolCopy: bmaptool, the reference flasher, accepts the block
// map (it checks the file's checksum and every range's SHA256).
func TestBmaptoolCopy(t *testing.T) {
	bmaptool := testenv.RequireCommand(t, "bmaptool", "bmap-tools")
	img, _ := buildA20(t)
	dst := filepath.Join(t.TempDir(), "card")
	out, err := exec.Command(bmaptool, "copy", "--bmap", BmapPath(img), img, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("bmaptool copy = %v:\n%s", err, out)
	}
	mappedEqual(t, img, dst)
}

// TestFlash flashes to a file standing in for a card with old data on it.
func TestFlash(t *testing.T) {
	img, _ := buildA20(t)
	dst := filepath.Join(t.TempDir(), "card")
	if err := os.WriteFile(dst, bytes.Repeat([]byte{0xa5}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Flash(t.Context(), img, dst, FlashOptions{}); err != nil {
		t.Fatalf("Flash() = %v, want nil", err)
	}
	mappedEqual(t, img, dst)
	in, err := Inspect(dst)
	if err != nil {
		t.Fatalf("Inspect(flashed card) = %v", err)
	}
	if in.Info == nil || in.Info.Board != "cubieboard2" || len(in.Blobs) != 1 || !in.Blobs[0].OK {
		t.Errorf("Inspect(flashed card) = %+v, want board cubieboard2 with one matching blob", in)
	}
	if !strings.Contains(in.Script, "bootz 0x42000000") {
		t.Errorf("Inspect().Script = %q, want the bootz line", in.Script)
	}
	if in.ManifestErr == "" && in.Manifest != "guests: []\n" {
		t.Errorf("Inspect().Manifest = %q, want the manifest", in.Manifest)
	}

	// A corrupt image fails the hash check against its block map.
	f, _ := os.OpenFile(img, os.O_RDWR, 0)
	f.WriteAt([]byte{0xff}, 8<<10+100)
	f.Close()
	if err := Flash(t.Context(), img, dst, FlashOptions{}); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("Flash(corrupt image) = %v, want a corruption error", err)
	}
}

// TestFlashRefusesRoot: the disk holding / is refused without --force.
func TestFlashRefusesRoot(t *testing.T) {
	img := ""
	var root string
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, l := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[1] == "/" && strings.HasPrefix(f[0], "/dev/") {
			root = f[0]
		}
	}
	if root == "" {
		t.Skip("skipping: / is not on a block device here")
	}
	// The check alone: were it wrong, Flash would write over this
	// machine's root disk.
	_ = img
	err := checkNotInUse(root, FlashOptions{MountInfo: "/proc/self/mountinfo", Root: "/"})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("checkNotInUse(%s) = %v, want ErrInUse", root, err)
	}
}

func TestParseBmapCorrupt(t *testing.T) {
	m := &Bmap{ImageSize: 10000, BlockSize: 4096, BlocksCount: 3, Ranges: []BmapRange{{0, 1, strings.Repeat("a", 64)}}}
	good := m.Marshal()
	if got, err := ParseBmap(good); err != nil || got.Mapped() != 2 {
		t.Fatalf("ParseBmap(good) = %+v, %v", got, err)
	}
	for _, tt := range []struct{ name, from, to string }{
		{"checksum", "<BmapFileChecksum> ", "<BmapFileChecksum> 0"},
		{"version", `version="2.0"`, `version="1.4"`},
		{"range outside", "> 0-1 <", "> 0-3 <"},
		{"blocks count", "<BlocksCount> 3", "<BlocksCount> 4"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := bytes.Replace(good, []byte(tt.from), []byte(tt.to), 1)
			if _, err := ParseBmap(bad); err == nil {
				t.Errorf("ParseBmap() = nil error, want one")
			}
		})
	}
}
