package emulate

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/images"
)

// A Board is how one of Tandem's boards is booted under QEMU: the
// emulated machine, the firmware that runs the image's boot script, and
// the Debian packages that hold both.
type Board struct {
	// Name is Tandem's board (platforms/boards).
	Name string
	// QEMU is the emulator and QEMUPackage the Debian package with it.
	QEMU, QEMUPackage string
	// Firmware is the boot firmware QEMU starts (-bios) and
	// FirmwarePackage the Debian package with it.
	Firmware, FirmwarePackage string
	// Machine is QEMU's arguments for the machine, without the firmware
	// and the disk.
	Machine []string
	// PowerOff is the host kernel's line for a clean power-off; QEMU
	// ends after it (-no-reboot ends it on a reset too).
	PowerOff string
	// TPMDevice is QEMU's TPM interface on the machine, which a software
	// TPM backs when the run has one (Options.TPM).
	TPMDevice string
}

// Args are QEMU's arguments to boot image on b. -snapshot: the host
// mounts the data partition read-write, and the image must stay as it
// was built (a CI job boots the same file again, or flashes it).
//
// tpm, if set, is a software TPM's control socket (swtpm socket --ctrl):
// QEMU's TPM emulator backend, which hands swtpm its command channel over
// it (QEMU's docs/specs/tpm.rst), behind the board's TPM interface.
func (b *Board) Args(image, tpm string) []string {
	args := append([]string{}, b.Machine...)
	args = append(args, "-bios", b.Firmware, "-nographic", "-no-reboot", "-snapshot",
		"-drive", "if=none,id=disk,format=raw,file="+image, "-device", "virtio-blk-device,drive=disk")
	if tpm != "" {
		args = append(args, "-chardev", "socket,id=chrtpm,path="+tpm,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", b.TPMDevice+",tpmdev=tpm0")
	}
	return args
}

// QEMUVirtARM64 is the qemu-virt-arm64 board (platforms/boards): QEMU's
// virt machine with EL2, so that the host kernel starts KVM, booted by
// Debian's U-Boot for it, which runs boot.scr from the image's boot
// partition as on a real board.
var QEMUVirtARM64 = &Board{
	Name: "qemu-virt-arm64",
	QEMU: "qemu-system-aarch64", QEMUPackage: "qemu-system-arm",
	Firmware: "/usr/lib/u-boot/qemu_arm64/u-boot.bin", FirmwarePackage: "u-boot-qemu",
	// pauth-impdef=on: Debian's kernels sign return addresses (pointer
	// authentication), and QEMU computes the architected algorithm
	// (QARMA) slowly; the implementation-defined one it offers instead is
	// cheap. The board profile's memory map is the virt machine's.
	Machine: []string{"-M", "virt,virtualization=on,gic-version=3", "-cpu", "max,pauth-impdef=on",
		"-smp", "2", "-m", "2G", "-accel", "tcg,thread=multi"},
	PowerOff: "reboot: Power down",
	// On the platform bus, described in the device tree QEMU gives
	// U-Boot and U-Boot the kernel (tcg,tpm-tis-mmio); Linux's tpm_tis
	// drives it (Debian builds it in its cloud-arm64 kernel, not arm64).
	TPMDevice: "tpm-tis-device",
}

// Boards are the boards tandem emulate boots. A board joins once its
// image is proven to boot on QEMU's model of it the way the board boots it.
var Boards = []*Board{QEMUVirtARM64}

// ErrNoBoard is returned for a board name with no emulated counterpart.
var ErrNoBoard = errors.New("no emulated counterpart")

// LookupBoard returns the board called name.
func LookupBoard(name string) (*Board, error) {
	var names []string
	for _, b := range Boards {
		if b.Name == name {
			return b, nil
		}
		names = append(names, b.Name)
	}
	return nil, fmt.Errorf("board %s: %w in tandem emulate: boot its image on the board itself, or build the image for one of %s", name, ErrNoBoard, strings.Join(names, ", "))
}

// Check says what this machine lacks to emulate b: the emulator or the
// firmware, naming the Debian package that has it. It installs nothing.
func (b *Board) Check() error {
	var missing, pkgs []string
	if _, err := exec.LookPath(b.QEMU); err != nil {
		missing = append(missing, fmt.Sprintf("%s not found (Debian's %s)", b.QEMU, b.QEMUPackage))
		pkgs = append(pkgs, b.QEMUPackage)
	}
	if _, err := os.Stat(b.Firmware); err != nil {
		missing = append(missing, fmt.Sprintf("%s missing (Debian's %s)", b.Firmware, b.FirmwarePackage))
		pkgs = append(pkgs, b.FirmwarePackage)
	}
	if missing == nil {
		return nil
	}
	return fmt.Errorf("board %s: %s: install it with apt-get install %s", b.Name, strings.Join(missing, "; "), strings.Join(pkgs, " "))
}

// ImageInfo is what the run needs to know of an image.
type ImageInfo struct {
	// Board is the board the image was built for ("" when its boot
	// partition has no tandem-image.json).
	Board string
	// Guests are the guests its manifest names (nil when the manifest
	// cannot be read: debugfs is missing).
	Guests []string
}

// ReadImage reads the board and the guests' names from an image tandem
// image build wrote: the boot partition's tandem-image.json, the data
// partition's system.yaml.
func ReadImage(file string) (*ImageInfo, error) {
	in, err := images.Inspect(file)
	if err != nil {
		return nil, err
	}
	info := &ImageInfo{}
	if in.Info != nil {
		info.Board = in.Info.Board
	}
	if in.Manifest != "" {
		// Only the names: the supervisor on the board checks the rest.
		var m struct {
			Guests []struct {
				Name string `yaml:"name"`
			} `yaml:"guests"`
		}
		if err := yaml.Unmarshal([]byte(in.Manifest), &m); err != nil {
			return nil, fmt.Errorf("%s: data partition /%s: %w", file, images.ManifestIn, err)
		}
		for _, g := range m.Guests {
			info.Guests = append(info.Guests, g.Name)
		}
	}
	return info, nil
}
