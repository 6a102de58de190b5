package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// portCase is one board ported the way a vendor would, with the built
// binary and no change to Tandem's source.
type portCase struct {
	name, dtb string
	// uboot is --uboot for bsp import, under the cache: where Debian
	// ships the board's U-Boot, import fills the load addresses and
	// blobs from it.
	uboot string
	// image replaces the imported board.yaml's image section where
	// Debian has no U-Boot: what the vendor writes from U-Boot's own
	// defaults and the SoC's boot documentation.
	image string
	// supplied are the files the vendor copies into the board
	// directory's blobs/ folder (from its BSP; stand-ins here, whose
	// bytes the test finds again in the image).
	supplied []string
	// blobs are the raw blobs and where the image must hold them; files
	// are the boot partition's files the board adds; each is compared
	// byte for byte with its source.
	blobs map[int64]string
	files []string
	// script is what the boot script must say: the load addresses.
	script []string
}

// TestPortedBoardImages ports J721E, i.MX8MP, Raspberry Pi 4 and RK3399
// from Debian's DTBs through the CLI: `bsp import` (with --uboot where
// Debian packages the board's U-Boot, so the load addresses and blobs
// come from it), `bsp check` until READY, and `image build --board DIR`
// with Debian's arm64 kernel as the host's and as a guest's. The image
// must pass sfdisk --verify, fsck.vfat -n on its boot partition and
// dumpimage -l on its boot script, and hold each blob at its offset and
// each boot file, byte for byte.
func TestPortedBoardImages(t *testing.T) {
	for _, c := range [][2]string{{"sfdisk", "fdisk"}, {"fsck.vfat", "dosfstools"}, {"dumpimage", "u-boot-tools"}, {"mke2fs", "e2fsprogs"}, {"debugfs", "e2fsprogs"}} {
		testenv.RequireCommand(t, c[0], c[1])
	}
	cache := testCache(t)
	pkgs := filepath.Join(cache, "pkgs")
	for _, f := range []string{"u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399/u-boot.bin", "u-boot-rpi_arm64/usr/lib/u-boot/rpi_arm64/u-boot.bin", "raspi-firmware_arm64/usr/lib/raspi-firmware/start4.elf"} {
		testenv.RequireFile(t, filepath.Join(pkgs, f), "run `scripts/testdata.sh arm64`")
	}
	tandem := buildTandem(t)
	// The host's tandem, built for arm64 once for all boards.
	hostTandem := tandem
	if runtime.GOARCH != "arm64" {
		hostTandem = filepath.Join(t.TempDir(), "tandem-arm64")
		b := exec.Command("go", "build", "-o", hostTandem, ".")
		b.Env = append(os.Environ(), "GOARCH=arm64", "CGO_ENABLED=0")
		if out, err := b.CombinedOutput(); err != nil {
			t.Fatalf("go build for arm64: %v\n%s", err, out)
		}
	}
	dir := t.TempDir()
	// The guests' system: Debian's arm64 kernel as the control guest's.
	os.MkdirAll(filepath.Join(dir, "sys"), 0o755)
	os.Symlink(filepath.Join(cache, "arm64", "vmlinuz"), filepath.Join(dir, "sys", "vmlinuz"))
	manifest := writeFile(t, filepath.Join(dir, "sys", "system.yaml"), []byte("guests:\n  - name: control\n    kernel: vmlinuz\n"))

	tests := []portCase{
		{name: "rk3399-rockpro64", dtb: "rockchip/rk3399-rockpro64.dtb", uboot: "u-boot-rockchip_arm64/usr/lib/u-boot",
			blobs: map[int64]string{
				64 * 512:    filepath.Join(pkgs, "u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399/idbloader.img"),
				16384 * 512: filepath.Join(pkgs, "u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399/u-boot.itb"),
			},
			script: []string{"load ${devtype} ${devnum}:${distro_bootpart} 0x1f00000 rk3399-rockpro64.dtb", "booti 0x2080000 0x6000000:${tandem_initrd_size} ${tandem_fdt}", "console=ttyS2,1500000"}},
		{name: "rpi4b", dtb: "broadcom/bcm2711-rpi-4-b.dtb", uboot: "u-boot-rpi_arm64/usr/lib/u-boot/rpi_arm64/u-boot.bin",
			files: []string{
				filepath.Join(pkgs, "raspi-firmware_arm64/usr/lib/raspi-firmware/start4.elf"),
				filepath.Join(pkgs, "raspi-firmware_arm64/usr/lib/raspi-firmware/fixup4.dat"),
				filepath.Join(pkgs, "u-boot-rpi_arm64/usr/lib/u-boot/rpi_arm64/u-boot.bin"),
			},
			script: []string{"load ${devtype} ${devnum}:${distro_bootpart} 0x2600000 bcm2711-rpi-4-b.dtb", "booti 0x80000 0x2700000:${tandem_initrd_size} ${tandem_fdt}", "console=ttyS1,115200"}},
		// Debian has no U-Boot for these two: the vendor writes the image
		// section from U-Boot v2023.01's defaults
		// (include/configs/ti_armv7_common.h; include/configs/imx8mp_evk.h
		// with CONFIG_SYS_LOAD_ADDR) and the SoC's boot documentation.
		{name: "k3-j721e", dtb: "ti/k3-j721e-common-proc-board.dtb",
			image: "image:\n  table: mbr\n  blobs: []\n  first-partition: 0x100000\n  boot-fs: vfat\n  boot-script: boot.scr\n" +
				"  boot-files:\n    - {name: tiboot3.bin, package: \"\"}\n    - {name: sysfw.itb, package: \"\"}\n    - {name: tispl.bin, package: \"\"}\n    - {name: u-boot.img, package: \"\"}\n" +
				"  load: {kernel: 0x82000000, dtb: 0x88000000, initrd: 0x88080000, script: 0x80000000}\n",
			supplied: []string{"tiboot3.bin", "sysfw.itb", "tispl.bin", "u-boot.img"},
			files:    []string{"blobs/tiboot3.bin", "blobs/sysfw.itb", "blobs/tispl.bin", "blobs/u-boot.img"},
			script:   []string{"load ${devtype} ${devnum}:${distro_bootpart} 0x88000000 k3-j721e-common-proc-board.dtb", "booti 0x82000000 0x88080000:${tandem_initrd_size} ${tandem_fdt}", "console=ttyS2,115200"}},
		{name: "imx8mp-evk", dtb: "freescale/imx8mp-evk.dtb",
			image: "image:\n  table: mbr\n  blobs:\n    - {name: flash.bin, file: flash.bin, package: \"\", offset: 0x8000, max-len: 0x3f8000}\n" +
				"  first-partition: 0x800000\n  boot-fs: vfat\n  boot-script: boot.scr\n" +
				"  load: {kernel: 0x40480000, dtb: 0x43000000, initrd: 0x43800000, script: 0x40480000}\n",
			supplied: []string{"flash.bin"},
			blobs:    map[int64]string{32 << 10: "blobs/flash.bin"},
			script:   []string{"load ${devtype} ${devnum}:${distro_bootpart} 0x43000000 imx8mp-evk.dtb", "booti 0x40480000 0x43800000:${tandem_initrd_size} ${tandem_fdt}", "console=ttymxc1,115200"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			board := filepath.Join(dir, tt.name)
			vendorDTB := filepath.Join(cache, "boards", "arm64", tt.dtb)
			testenv.RequireFile(t, vendorDTB, "run scripts/testdata-boards.sh or make testdata")
			tandemRun := func(args ...string) (string, error) {
				cmd := tandemCmd(t, tandem, cache, t.TempDir(), "", args...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				if err != nil {
					err = errors.New(strings.TrimSpace(stderr.String()))
				}
				return stdout.String(), err
			}
			imp := []string{"bsp", "import", vendorDTB, "-o", board}
			if tt.uboot != "" {
				imp = append(imp, "--uboot", filepath.Join(pkgs, tt.uboot))
			}
			out, err := tandemRun(imp...)
			if err != nil {
				t.Fatalf("bsp import = %v", err)
			}
			t.Logf("tandem %s:\n%s", strings.Join(imp, " "), out)
			yml := filepath.Join(board, "board.yaml")
			if tt.image != "" {
				// Not ready as imported: no load addresses.
				out, err = tandemRun("bsp", "check", board)
				if err == nil || !strings.Contains(out, "✗ image.load: no load addresses ("+yml+":") {
					t.Fatalf("bsp check of the imported board = %v:\n%s\nwant NOT READY on image.load", err, out)
				}
				data, _ := os.ReadFile(yml)
				i := bytes.Index(data, []byte("\nimage:\n"))
				if i < 0 {
					t.Fatalf("imported board.yaml has no image section:\n%s", data)
				}
				os.WriteFile(yml, append(data[:i+1], tt.image...), 0o644)
				for i, f := range tt.supplied {
					writeFile(t, filepath.Join(board, "blobs", f), bytes.Repeat([]byte{byte(0x11 * (i + 1)), byte(i)}, 3000+i*100))
				}
			} else if !strings.Contains(out, "from U-Boot "+filepath.Join(pkgs, tt.uboot)) && !strings.Contains(out, "from U-Boot "+pkgs) {
				t.Errorf("bsp import printed\n%s\nwant where the load addresses came from", out)
			}
			out, err = tandemRun("bsp", "check", board)
			if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "READY") || strings.Contains(out, "NOT READY") {
				t.Fatalf("bsp check %s = %v:\n%s\nwant READY", board, err, out)
			}

			img := filepath.Join(dir, tt.name+".img")
			build := []string{"image", "build", "--board", board, "--manifest", manifest, "-o", img, "--tandem", hostTandem, "--fetch=false"}
			if out, err = tandemRun(build...); err != nil {
				t.Fatalf("tandem %s = %v", strings.Join(build, " "), err)
			}
			t.Logf("%s", out)
			checkPortedImage(t, img, board, tt)
		})
	}
}

// checkPortedImage runs the oracles on an image and finds the board's
// blobs and boot files in it.
func checkPortedImage(t *testing.T, img, board string, tt portCase) {
	t.Helper()
	if out, err := exec.Command("sfdisk", "--verify", img).CombinedOutput(); err != nil || !strings.Contains(string(out), "No errors detected") {
		t.Errorf("sfdisk --verify %s = %v:\n%s", img, err, out)
	}
	in, err := images.Inspect(img)
	if err != nil {
		t.Fatalf("Inspect() = %v", err)
	}
	for _, b := range in.Blobs {
		if !b.OK {
			t.Errorf("blob %s at %#x does not match its recorded sha256", b.Name, b.Offset)
		}
	}
	for _, want := range tt.script {
		if !strings.Contains(in.Script, want) {
			t.Errorf("boot script lacks %q:\n%s", want, in.Script)
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boot := in.Partitions[0]
	// fsck.vfat checks the boot partition on its own.
	part := filepath.Join(t.TempDir(), "boot.vfat")
	pb := make([]byte, boot.Size)
	if _, err := f.ReadAt(pb, boot.Start); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(part, pb, 0o644)
	if out, err := exec.Command("fsck.vfat", "-n", part).CombinedOutput(); err != nil {
		t.Errorf("fsck.vfat -n on the boot partition = %v:\n%s", err, out)
	}
	fr, err := fat.Open(f, boot.Start)
	if err != nil {
		t.Fatal(err)
	}
	scr, err := fr.ReadFile("boot.scr")
	if err != nil {
		t.Fatalf("boot partition has no boot.scr: %v", err)
	}
	scrFile := filepath.Join(t.TempDir(), "boot.scr")
	os.WriteFile(scrFile, scr, 0o644)
	if out, err := exec.Command("dumpimage", "-l", scrFile).CombinedOutput(); err != nil || !strings.Contains(string(out), "Script") {
		t.Errorf("dumpimage -l boot.scr = %v:\n%s", err, out)
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(board, p)
	}
	for off, src := range tt.blobs {
		want, err := os.ReadFile(abs(src))
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, want) {
			t.Errorf("the image at %#x does not hold %s (%d bytes)", off, src, len(want))
		}
	}
	for _, src := range tt.files {
		want, err := os.ReadFile(abs(src))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := fr.ReadFile(filepath.Base(src)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("boot partition's %s: %d bytes, %v; want %s's %d", filepath.Base(src), len(got), err, src, len(want))
		}
	}
	dtbName := filepath.Base(tt.dtb)
	copied, _ := os.ReadFile(filepath.Join(board, dtbName))
	if got, err := fr.ReadFile(dtbName); err != nil || !bytes.Equal(got, copied) {
		t.Errorf("boot partition's %s: %d bytes, %v; want the board directory's copy, %d bytes", dtbName, len(got), err, len(copied))
	}
	if tt.name == "rpi4b" {
		if got, err := fr.ReadFile("config.txt"); err != nil || string(got) != "arm_64bit=1\nkernel=u-boot.bin\nenable_uart=1\n" {
			t.Errorf("boot partition's config.txt = %q, %v", got, err)
		}
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
