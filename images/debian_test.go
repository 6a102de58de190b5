package images

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

// cacheDir is the repository's test-data cache, seen from this package.
const cacheDir = "../build/cache"

// TestBuildWithDebianBlobs builds the A20 and Arndale images with the
// bootloaders Debian ships (u-boot-sunxi, u-boot-exynos; the Arndale's
// Samsung BL1 and TrustZone blobs stay synthetic) and checks they sit at
// their offsets byte for byte. The packages come from build/cache/debs;
// under CI they are downloaded there with apt-get.
func TestBuildWithDebianBlobs(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	for _, name := range []string{"cubieboard2", "bananapi", "arndale"} {
		t.Run(name, func(t *testing.T) {
			b, err := all.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			found, err := FindBlobs(t.Context(), b, nil, cacheDir, testenv.InCI())
			if err != nil {
				t.Fatalf("FindBlobs() = %v", err)
			}
			for _, bl := range b.Image.Blobs {
				if bl.Package != "" && found[bl.File] == "" {
					testenv.RequireFile(t, filepath.Join(cacheDir, "debs", bl.Package),
						"apt-get download "+bl.Package[:bytes.IndexByte([]byte(bl.Package), ':')]+":armhf into build/cache/debs, or build this board's image once")
				}
			}
			dir := t.TempDir()
			cfg := fixture(t, dir, b)
			for file, p := range found {
				cfg.Blobs[file] = p
			}
			img := filepath.Join(dir, "out.img")
			if _, err := Build(t.Context(), img, cfg); err != nil {
				t.Fatalf("Build() = %v", err)
			}
			for _, bl := range b.Image.Blobs {
				want, _ := os.ReadFile(cfg.Blobs[bl.File])
				if got := readAt(t, img, int64(bl.Offset), len(want)); !bytes.Equal(got, want) {
					t.Errorf("%s (%s) at %#x differs from %s", bl.Name, bl.File, bl.Offset, cfg.Blobs[bl.File])
				}
				t.Logf("%s: %s, %d of %d bytes at %#x", bl.Name, cfg.Blobs[bl.File], len(want), bl.MaxLen, bl.Offset)
			}
			in, err := Inspect(img)
			if err != nil {
				t.Fatalf("Inspect() = %v", err)
			}
			for _, c := range in.Blobs {
				if !c.OK {
					t.Errorf("Inspect(): blob %s at %#x does not match its recorded hash", c.Name, c.Offset)
				}
			}
		})
	}
}

// TestOMAP5MaintenanceIRQ: Debian's omap5-uevm.dtb lacks the GIC
// maintenance interrupt; the boot partition's copy has it.
func TestOMAP5MaintenanceIRQ(t *testing.T) {
	src := filepath.Join(cacheDir, "boards/armhf/omap5-uevm.dtb")
	testenv.RequireFile(t, src, "run `make testdata`")
	b, _ := all.Lookup("omap5-uevm")
	out, fixes, err := boardDTB(b, src)
	if err != nil || len(fixes) != 1 {
		t.Fatalf("boardDTB() = %v, %v; want one fix", fixes, err)
	}
	tr, err := dtb.Parse(out)
	if err != nil {
		t.Fatalf("fixed DTB does not parse: %v", err)
	}
	gic := tr.FindCompatible(b.GIC.Compatible)
	if len(gic) != 1 {
		t.Fatalf("%d GIC nodes, want 1", len(gic))
	}
	got, err := gic[0].U32s("interrupts")
	if want := []uint32{1, 9, 0x304}; err != nil || len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("GIC interrupts = %#x, %v; want %#x", got, err, want)
	}
}
