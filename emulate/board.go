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
// emulated machine, the firmware that runs the image's boot script (or,
// where QEMU cannot run the board's firmware, the files QEMU loads in its
// stead: Direct), and the Debian packages that hold them.
type Board struct {
	// Name is Tandem's board (platforms/boards).
	Name string
	// QEMU is the emulator and QEMUPackage the Debian package with it.
	QEMU, QEMUPackage string
	// Firmware is the boot firmware QEMU starts (-bios) and
	// FirmwarePackage the Debian package with it ("" with Direct).
	Firmware, FirmwarePackage string
	// Direct, if set, boots the image without the board's firmware: QEMU
	// loads the files the firmware would (LoadArgs).
	Direct *DirectBoot
	// Machine is QEMU's arguments for the machine, without the firmware
	// and the disk.
	Machine []string
	// PowerOff is the host kernel's line for a clean power-off; QEMU
	// ends after it (-no-reboot ends it on a reset too).
	PowerOff string
	// Disk is QEMU's device for the image (virtio-blk-device: the
	// board's virtio-mmio transport, when "").
	Disk string
	// TPMDevice is QEMU's TPM interface on the machine, which a software
	// TPM backs when the run has one (Options.TPM); "" where the board
	// has none.
	TPMDevice string
	// Display is QEMU's arguments for the board's own display, a screen
	// its firmware and host kernel drive (Options.Screendumps), or nil
	// where the model has none.
	Display []string
}

// DisplayArgs are QEMU's arguments for b's display and a QMP monitor on
// the UNIX socket qmp, through which a run takes its screendumps. The
// display shows nowhere (-nographic): only its pictures leave QEMU.
func (b *Board) DisplayArgs(qmp string) []string {
	return append(append([]string{}, b.Display...), "-qmp", "unix:"+qmp+",server=on,wait=off")
}

// command returns QEMU's arguments to boot image on b, preparing in work
// what a direct boot loads (LoadArgs), and what that changed in the
// image's device tree.
func (b *Board) command(image, work, tpm string) (args, fixes []string, err error) {
	if tpm != "" && b.TPMDevice == "" {
		return nil, nil, fmt.Errorf("board %s has no TPM in QEMU's model of it: boot without a TPM (leave out --tpm)", b.Name)
	}
	if b.Direct == nil {
		return b.Args(image, tpm), nil, nil
	}
	f, err := ReadBootFiles(image, work)
	if err != nil {
		return nil, nil, err
	}
	if f.Info.Board != b.Name {
		return nil, nil, fmt.Errorf("%s was built for %s, not %s: build the image for %s", image, f.Info.Board, b.Name, b.Name)
	}
	return b.LoadArgs(f, image, work)
}

// Args are QEMU's arguments to boot image on b with its firmware (a
// board without Direct). -snapshot: the host
// mounts the data partition read-write, and the image must stay as it
// was built (a CI job boots the same file again, or flashes it).
//
// tpm, if set, is a software TPM's control socket (swtpm socket --ctrl):
// QEMU's TPM emulator backend, which hands swtpm its command channel over
// it (QEMU's docs/specs/tpm.rst), behind the board's TPM interface.
func (b *Board) Args(image, tpm string) []string {
	args := append([]string{}, b.Machine...)
	disk := b.Disk
	if disk == "" {
		disk = "virtio-blk-device"
	}
	args = append(args, "-bios", b.Firmware, "-nographic", "-no-reboot", "-snapshot",
		"-drive", "if=none,id=disk,format=raw,file="+image, "-device", disk+",drive=disk")
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
	// A PCI display (Bochs VBE registers, a linear framebuffer BAR):
	// Debian trixie's U-Boot for the board drives it and hands it to the
	// kernel as its EFI framebuffer (bootefi), which the host kernel
	// shows as /dev/fb0 (efifb); bookworm's U-Boot drives no display.
	Display: []string{"-device", "bochs-display"},
}

// ZCU102 is the zcu102 board (platforms/boards): QEMU's xlnx-zcu102 with
// EL2 (virtualization=on), the Xilinx ZCU102's four Cortex-A53 and
// GIC-400 with the virtualization extensions, its UART and SD card.
// QEMU's model runs neither the board's BOOT.BIN (FSBL, PMU firmware,
// ATF) nor its U-Boot, so QEMU loads the image's kernel, device tree and
// host initramfs from its boot partition and hands the kernel its boot
// script's command line, as the board's U-Boot would from the SD card;
// the image, grown to a power-of-two size in a temporary copy, is the SD
// card. The device tree is adapted for QEMU's missing PMU firmware
// (ZynqMPWithoutPMU).
var ZCU102 = &Board{
	Name: "zcu102",
	QEMU: "qemu-system-aarch64", QEMUPackage: "qemu-system-arm",
	// The A53s start the kernel at EL2, where Debian's kernel starts KVM
	// (nVHE: the A53 has no VHE). The board's DisplayPort has an audio
	// device, which must not look for a sound card here. QEMU places the
	// RAM below 2 GiB at 0 and the rest at 32 GiB, but -kernel's device
	// tree gets one memory node from 0 (hw/arm/boot.c): with -m 3G it
	// says [0, 3 GiB), over the I/O space above 2 GiB.
	Machine: []string{"-M", "xlnx-zcu102,virtualization=on", "-accel", "tcg,thread=multi", "-audio", "none",
		"-smp", "2", "-m", "2G"},
	Direct: &DirectBoot{
		// The SD slot is the second SDHCI (SD1, 0xff170000, the DTB's
		// mmc0): index 1 of QEMU's SD drives (hw/arm/xlnx-zcu102.c).
		Drive: "if=sd,index=1",
		// earlycon (the DTB's stdout-path) shows the kernel's lines
		// before the UART's driver binds.
		Cmdline: "earlycon",
		FixDTB:  ZynqMPWithoutPMU,
	},
	PowerOff: "reboot: Power down",
}

// X86PC is the x86-pc board (platforms/boards): a PC with AMD-V, as
// QEMU's q35 machine whose emulated CPU has SVM, booted by Debian's OVMF
// (UEFI) as a PC's firmware boots the image: OVMF finds no boot entry,
// starts its UEFI shell, and the shell runs startup.nsh from the image's
// EFI system partition, which starts the host kernel (an EFI stub) with
// its initramfs. The image is a virtio disk on PCI; the machine has no
// NIC, whose network boot OVMF would try first.
var X86PC = &Board{
	Name: "x86-pc",
	QEMU: "qemu-system-x86_64", QEMUPackage: "qemu-system-x86",
	Firmware: "/usr/share/ovmf/OVMF.fd", FirmwarePackage: "ovmf",
	Machine: []string{"-M", "q35", "-cpu", "max", "-smp", "2", "-m", "2G", "-accel", "tcg,thread=multi", "-nic", "none"},
	Disk:    "virtio-blk-pci",
	// The host's kernel, once the supervisor has stopped, as on ARM.
	PowerOff: "reboot: Power down",
}

// Boards are the boards tandem emulate boots. A board joins once its
// image is proven to boot on QEMU's model of it the way the board boots it.
var Boards = []*Board{QEMUVirtARM64, ZCU102, X86PC}

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
	if _, err := os.Stat(b.Firmware); b.Firmware != "" && err != nil {
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
