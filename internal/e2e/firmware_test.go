package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// debianUBoot is Debian's u-boot-qemu build for QEMU's arm64 virt board,
// unmodified: the firmware the firmware-boot guests start in.
const debianUBoot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// Layout of a firmware-boot test disk: an MBR with one bootable FAT16
// partition at 1 MiB, as a distribution's image has its boot partition.
const (
	// bootDiskSize holds the 33 MiB kernel and the small initramfs; the
	// guest's testinit hashes the whole disk, which costs the nested
	// guest about a second per MiB.
	bootDiskSize   = 48 << 20
	bootPartStart  = 1 << 20
	bootPartSize   = bootDiskSize - bootPartStart
	fat16LBAType   = "e"  // W95 FAT16 (LBA)
	espType        = "ef" // EFI system partition
	bootDiskSerial = 0x7a4d0e01
)

// firmwareGuest is a guest booted by U-Boot from its disk.
type firmwareGuest struct {
	name string // subtest and console section
	disk string // on this machine
	// sum is the sha256 of the whole disk, as the guest's testinit
	// reports it: neither U-Boot nor GRUB writes to it (U-Boot would
	// write its EFI variables file, ubootefi.var, only for a variable
	// set to persist, and nothing on these boots sets one).
	sum string
	// want is what the firmware's path through the disk prints.
	want []string
}

// debianGRUB is grub-efi-arm64-signed's monolithic GRUB (its modules
// built in, its prefix /EFI/debian), as scripts/testdata.sh unpacks it.
const debianGRUB = "pkgs/grub-efi-arm64-signed_arm64/usr/lib/grub/arm64-efi-signed/grubaa64.efi.signed"

// grubConf boots the stock kernel and the testinit initramfs from the
// EFI system partition GRUB was started from.
func grubConf(cmdline string) string {
	return fmt.Sprintf(`set timeout=0
set default=0
menuentry tandem {
	linux /vmlinuz %s
	initrd /initrd.img
}
`, cmdline)
}

// extlinuxConf is U-Boot's distro boot script for the disk: the stock
// kernel and the testinit initramfs, no device tree line, so the kernel
// gets the device tree U-Boot itself was given.
func extlinuxConf(cmdline string) string {
	return fmt.Sprintf(`default tandem
timeout 0
label tandem
	kernel /vmlinuz
	initrd /initrd.img
	append %s
`, cmdline)
}

// writeBootDisk writes a disk holding files in one bootable FAT
// partition, and returns the disk's sha256. The partition table is
// sfdisk's (Debian's fdisk), the file system Tandem's own FAT16 writer.
func writeBootDisk(path, partType string, files []fat.File) (string, error) {
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		return "", fmt.Errorf("sfdisk not found (install Debian's fdisk, or run `make deps`)")
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := f.Truncate(bootDiskSize); err != nil {
		return "", err
	}
	cmd := exec.Command(sfdisk, "--no-reread", "--no-tell-kernel", "--label", "dos", path)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label-id: %#x\nstart=%d, size=%d, type=%s, bootable\n", bootDiskSerial, bootPartStart/512, bootPartSize/512, partType))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("sfdisk %s: %v\n%s", path, err, out)
	}
	opt := fat.Options{Size: bootPartSize, Label: "BOOT", Serial: bootDiskSerial, Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), HiddenSectors: bootPartStart / 512}
	if _, err := fat.Write(f, bootPartStart, files, opt); err != nil {
		return "", fmt.Errorf("writing the boot partition of %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// firmwareGuests builds the disks U-Boot boots, each with Debian's stock
// arm64 kernel and the testinit initramfs of the same kernel: one that
// distro boot finds extlinux.conf on, and an EFI system partition with
// Debian's GRUB at the removable media path, which distro boot starts
// with bootefi and which boots the kernel through its EFI stub.
func firmwareGuests(t *testing.T, k Kernel, initrd string) []firmwareGuest {
	t.Helper()
	testenv.RequireFile(t, debianUBoot, "install Debian's u-boot-qemu, or run `make deps`")
	testenv.RequireCommand(t, "sfdisk", "fdisk")
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	grub := filepath.Join(cache, debianGRUB)
	testenv.RequireFile(t, grub, "run scripts/testdata.sh arm64")
	kernel := []fat.File{{Path: "vmlinuz", Source: k.Image}, {Path: "initrd.img", Source: initrd}}
	extlinux := filepath.Join(workDir, "disk-arm64-extlinux.img")
	sum, err := writeBootDisk(extlinux, fat16LBAType, append([]fat.File{
		{Path: "extlinux/extlinux.conf", Data: []byte(extlinuxConf(arm64GuestCmdline))},
	}, kernel...))
	if err != nil {
		t.Fatalf("building the extlinux disk: %v", err)
	}
	efi := filepath.Join(workDir, "disk-arm64-efi.img")
	cfg := []byte(grubConf(arm64GuestCmdline))
	efiSum, err := writeBootDisk(efi, espType, append([]fat.File{
		{Path: "EFI/BOOT/BOOTAA64.EFI", Source: grub},
		{Path: "EFI/debian/grub.cfg", Data: cfg},
	}, kernel...))
	if err != nil {
		t.Fatalf("building the EFI disk: %v", err)
	}
	return []firmwareGuest{
		{name: "u-boot-extlinux", disk: extlinux, sum: sum, want: []string{"Found /extlinux/extlinux.conf"}},
		{name: "u-boot-efi-grub", disk: efi, sum: efiSum, want: []string{"Found EFI removable media binary efi/boot/bootaa64.efi"}},
	}
}

// firmwareRuns are the tandem run commands of the firmware guests, and
// the files they need in the emulated host.
func firmwareRuns(gs []firmwareGuest) hostRuns {
	r := hostRuns{files: map[string]string{"/guest/u-boot.bin": debianUBoot}}
	for _, g := range gs {
		disk := "/guest/" + g.name + ".img"
		r.files[disk] = g.disk
		r.runs = append(r.runs, guestRun{g.name, fmt.Sprintf("/tandem run --firmware /guest/u-boot.bin --cpus %d --memory %s --disk %s --console stdio", guestCPUs, guestMemory, disk)})
	}
	return r
}

// checkFirmwareGuest checks one firmware guest's section of the host's
// console: Debian's U-Boot started in the flash, found what it boots on
// the virtio disk and booted the stock kernel, whose testinit saw the
// same disk byte for byte and powered the VM off.
func checkFirmwareGuest(t *testing.T, res *qemuhost.Result, g firmwareGuest) {
	t.Helper()
	r := section(res, g.name)
	t.Logf("%s", arm64Timing(r))
	for _, want := range append([]string{"U-Boot 2023.01", "TANDEM-TEST kernel=", "TANDEM-TEST done"}, g.want...) {
		if !strings.Contains(r.Output, want) {
			t.Errorf("%s: console lacks %q", g.name, want)
		}
	}
	if want := "sha256=" + g.sum; !strings.Contains(r.Output, want) {
		t.Errorf("%s: the guest did not read its disk as written (want %s)", g.name, want)
	}
	if r.ExitStatus != 0 {
		t.Errorf("%s: tandem run exit status %d, want 0 (the kernel's PSCI SYSTEM_OFF)", g.name, r.ExitStatus)
	}
	if t.Failed() {
		t.Logf("%s console:\n%s", g.name, r.Output)
	}
}
