package images

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

// cacheDir is the repository's test-data cache, seen from this package.
const cacheDir = "../build/cache"

// TestBuildWithDebianBlobs builds the A20, Arndale, RockPro64 and
// Raspberry Pi 4 images with the bootloaders and firmware Debian ships
// (u-boot-sunxi, u-boot-exynos, u-boot-rockchip, u-boot-rpi,
// raspi-firmware; the Arndale's Samsung BL1 and TrustZone blobs stay
// synthetic) and checks they sit at their offsets, or in the boot
// partition, byte for byte, and that the Pi's config.txt is written. The
// packages come from build/cache/debs; under CI they are downloaded
// there with apt-get (raspi-firmware by scripts/testdata.sh).
func TestBuildWithDebianBlobs(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	for _, name := range []string{"cubieboard2", "bananapi", "arndale", "rockpro64", "rpi4b"} {
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
						"apt-get download "+bl.Package[:bytes.IndexByte([]byte(bl.Package), ':')]+":"+DebianArch(b.Arch)+" into build/cache/debs, or build this board's image once")
				}
			}
			for _, bf := range b.Image.BootFiles {
				if bf.Package != "" && found[bf.Name] == "" {
					testenv.RequireFile(t, filepath.Join(cacheDir, "debs", bf.Package), "run `scripts/testdata.sh arm64`")
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
			f, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fr, err := fat.Open(f, in.Partitions[0].Start)
			if err != nil {
				t.Fatal(err)
			}
			for _, bf := range b.Image.BootFiles {
				want := []byte(bf.Content)
				if !bf.Generated() {
					want, _ = os.ReadFile(found[bf.Name])
				}
				if got, err := fr.ReadFile(bf.Name); err != nil || !bytes.Equal(got, want) {
					t.Errorf("boot partition's %s: %d bytes, %v; want %d", bf.Name, len(got), err, len(want))
				}
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

// TestDebianFileArchAll unpacks a file of a package built for every
// architecture (raspi-firmware, Architecture: all) for an arm64 board
// from the .deb alone.
func TestDebianFileArchAll(t *testing.T) {
	testenv.RequireCommand(t, "dpkg-deb", "dpkg")
	debs, _ := filepath.Glob(filepath.Join(cacheDir, "debs", "raspi-firmware_*_all.deb"))
	if len(debs) == 0 {
		testenv.RequireFile(t, filepath.Join(cacheDir, "debs", "raspi-firmware_VERSION_all.deb"), "run `scripts/testdata.sh arm64`")
	}
	cache := t.TempDir()
	os.MkdirAll(filepath.Join(cache, "debs"), 0o755)
	deb, _ := filepath.Abs(debs[0])
	os.Symlink(deb, filepath.Join(cache, "debs", filepath.Base(deb)))
	p, err := DebianFile(t.Context(), "raspi-firmware:/usr/lib/raspi-firmware/start4.elf", "arm64", cache, false)
	if err != nil || p != filepath.Join(cache, "pkgs", "raspi-firmware_arm64", "usr/lib/raspi-firmware/start4.elf") {
		t.Fatalf("DebianFile() = %q, %v; want it unpacked under pkgs/raspi-firmware_arm64", p, err)
	}
	if st, err := os.Stat(p); err != nil || st.Size() < 1<<20 {
		t.Errorf("start4.elf: %v, %v; want the firmware", st, err)
	}
}
