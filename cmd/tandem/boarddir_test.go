package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestImportedBoardImage ports a board the way a vendor would, with no
// change to Tandem's source: `bsp import` of a real Debian DTB (the
// RockPro64's, RK3399) writes a board directory; `bsp check` and `image
// build` refuse it while it has no load addresses, naming image.load and
// its fix; once the load addresses are written into its board.yaml, `image
// build --board DIR` builds an image whose boot partition carries the
// directory's DTB and whose boot script loads to those addresses.
func TestImportedBoardImage(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	vendorDTB := filepath.Join(testCacheRoot(t), "boards", "arm64", "rockchip", "rk3399-rockpro64.dtb")
	testenv.RequireFile(t, vendorDTB, "run scripts/testdata-boards.sh or make testdata")
	dir := t.TempDir()
	board := filepath.Join(dir, "rockpro64")
	tandem := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		return stdout.String(), err
	}

	out, err := tandem("bsp", "import", vendorDTB, "-o", board)
	if err != nil {
		t.Fatalf("bsp import = %v", err)
	}
	if !strings.Contains(out, "TODO image.load") {
		t.Errorf("bsp import printed %q, want the image.load TODO listed", out)
	}
	copied, err := os.ReadFile(filepath.Join(board, "rk3399-rockpro64.dtb"))
	if err != nil {
		t.Fatalf("bsp import left no copy of the DTB: %v", err)
	}

	out, err = tandem("bsp", "check", board)
	if !errors.Is(err, errNotReady) {
		t.Fatalf("bsp check = %v, want not ready", err)
	}
	for _, want := range []string{"✗ image.load: no load addresses (" + filepath.Join(board, "board.yaml") + ":",
		"fix: set kernel/dtb/initrd/script from the board's U-Boot environment (kernel_addr_r, fdt_addr_r, ramdisk_addr_r, scriptaddr; run printenv on the board)",
		"✓ GIC virtualization interface: GICv3", "\nNOT READY\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("bsp check printed:\n%s\nwant it to contain %q", out, want)
		}
	}

	kernel := writeFile(t, filepath.Join(dir, "in", "vmlinuz"), bytes.Repeat([]byte{0x5a}, 1<<20))
	initrd := writeFile(t, filepath.Join(dir, "in", "initrd"), bytes.Repeat([]byte{0xa5}, 1<<20))
	writeFile(t, filepath.Join(dir, "sys", "vmlinuz"), bytes.Repeat([]byte{1}, 4096))
	manifest := writeFile(t, filepath.Join(dir, "sys", "system.yaml"), []byte("guests:\n  - name: control\n    kernel: vmlinuz\n"))
	img := filepath.Join(dir, "out", "rockpro64.img")
	os.MkdirAll(filepath.Dir(img), 0o755)
	build := []string{"image", "build", "--board", board, "--manifest", manifest, "-o", img,
		"--host-kernel", kernel, "--host-initrd", initrd, "--fetch=false"}
	if _, err := tandem(build...); err == nil || !strings.Contains(err.Error(), "board.yaml:") || !strings.Contains(err.Error(), "image.load: no load addresses") {
		t.Fatalf("image build without load addresses = %v, want board.yaml:LINE: image.load: no load addresses", err)
	}

	// The vendor's edit: U-Boot's RK3399 environment
	// (include/configs/rk3399_common.h), as printenv shows it.
	yml := filepath.Join(board, "board.yaml")
	data, err := os.ReadFile(yml)
	if err != nil {
		t.Fatal(err)
	}
	const unset = "load: {kernel: 0x0, dtb: 0x0, initrd: 0x0, script: 0x0}"
	if !bytes.Contains(data, []byte(unset)) {
		t.Fatalf("board.yaml has no %q line to fill:\n%s", unset, data)
	}
	data = bytes.Replace(data, []byte(unset), []byte("load: {kernel: 0x02080000, dtb: 0x01f00000, initrd: 0x06000000, script: 0x00500000}"), 1)
	os.WriteFile(yml, data, 0o644)

	if out, err = tandem(build...); err != nil {
		t.Fatalf("image build --board %s = %v", board, err)
	}
	t.Logf("%s", out)
	in, err := images.Inspect(img)
	if err != nil {
		t.Fatalf("Inspect() = %v", err)
	}
	if in.Info == nil || in.Info.Board != "rockpro64" {
		t.Errorf("image info = %+v, want board rockpro64", in.Info)
	}
	for _, want := range []string{"load ${devtype} ${devnum}:${distro_bootpart} 0x1f00000 rk3399-rockpro64.dtb", "booti 0x2080000 0x6000000:${tandem_initrd_size} ${tandem_fdt}", "console=ttyS2,115200"} {
		if !strings.Contains(in.Script, want) {
			t.Errorf("boot script lacks %q:\n%s", want, in.Script)
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := fat.Open(f, in.Partitions[0].Start)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fr.ReadFile("rk3399-rockpro64.dtb"); err != nil || !bytes.Equal(got, copied) {
		t.Errorf("boot partition's rk3399-rockpro64.dtb: %d bytes, %v; want the board directory's copy, %d bytes", len(got), err, len(copied))
	}

	out, err = tandem("board", "show", board)
	if err != nil || !strings.Contains(out, "from:          "+yml) || !strings.Contains(out, "kernel 0x2080000, dtb 0x1f00000") {
		t.Errorf("board show %s = %v:\n%s", board, err, out)
	}
}

// testCacheRoot is the test-data cache ($TANDEM_CACHE, else build/cache
// at the repository's root), whatever it holds.
func testCacheRoot(t *testing.T) string {
	t.Helper()
	c := os.Getenv("TANDEM_CACHE")
	if c == "" {
		c = "../../build/cache"
	}
	c, err := filepath.Abs(c)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
