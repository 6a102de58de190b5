package arm64

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/mem"
)

// Firmware boot. A guest may start in firmware, such as U-Boot's
// qemu_arm64 build, in place of a kernel: the firmware is in the first
// flash bank, the vCPU starts at its first byte, and the device tree is
// at the start of RAM, where QEMU's virt board leaves it for firmware
// (U-Boot's qemu-arm board reads its control device tree from
// CFG_SYS_SDRAM_BASE, board/emulation/qemu-arm/qemu-arm.c). The firmware
// loads and boots the kernel from the guest's disks itself.
//
//	0x0000_0000 ┌────────────────────────────────┐ FlashBase: entry
//	            │ firmware (read-only)           │
//	0x0400_0000 │ second bank: zeros             │
//	0x4000_0000 ├────────────────────────────────┤ RAMBase: device tree,
//	            │ device tree (reserved, 2 MiB)  │ FirmwareDTBAddr
//	            │ free for the firmware          │
//	            └────────────────────────────────┘
const (
	// FirmwareEntry is where the boot vCPU starts: the flash's start.
	FirmwareEntry = armvirt.FlashBase
	// FirmwareDTBAddr is where the device tree goes.
	FirmwareDTBAddr = RAMBase
	// MaxFirmwareSize is the first flash bank.
	MaxFirmwareSize = armvirt.FlashBankSize
	// minFirmwareRAM is the least RAM a firmware guest gets: the device
	// tree's block and room above it for the firmware to relocate to.
	minFirmwareRAM = 64 << 20
)

// ErrFirmwareSize is returned for an empty firmware or one larger than
// the flash bank.
var ErrFirmwareSize = errors.New("firmware size")

// CheckFirmware says what is wrong with the firmware at path, as
// LoadFirmware would, without guest memory. Its errors do not name the
// file: the caller does.
func CheckFirmware(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	return checkFirmwareSize(uint64(st.Size()))
}

func checkFirmwareSize(n uint64) error {
	if n == 0 {
		return fmt.Errorf("%w: the file is empty: give a firmware image such as U-Boot's qemu_arm64 u-boot.bin", ErrFirmwareSize)
	}
	if n > MaxFirmwareSize {
		return fmt.Errorf("%w: %d MiB is larger than the %d MiB flash bank it is mapped into", ErrFirmwareSize, n>>20, MaxFirmwareSize>>20)
	}
	return nil
}

// LoadFirmware reads the firmware at path into flash, a mapping of the
// flash (at FlashBase) that the VMM gives the guest read-only,
// and returns the boot: entry at the flash's start, the device tree at
// the start of ram. It returns the firmware's bytes too, which the flash
// device model serves where the read-only mapping does not.
func LoadFirmware(flash, ram *mem.Memory, path string) (*Boot, []byte, error) {
	ramEnd, err := ramEndOf(ram)
	if err != nil {
		return nil, nil, err
	}
	if ramEnd-RAMBase < minFirmwareRAM {
		return nil, nil, fmt.Errorf("firmware %s: %d MiB of guest RAM is too little to boot from firmware (at least %d MiB)", path, (ramEnd-RAMBase)>>20, minFirmwareRAM>>20)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening firmware: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("firmware %s: %w", path, err)
	}
	size := uint64(st.Size())
	if err := checkFirmwareSize(size); err != nil {
		return nil, nil, fmt.Errorf("firmware %s: %w", path, err)
	}
	dst, err := flash.Slice(FirmwareEntry, size)
	if err != nil {
		return nil, nil, fmt.Errorf("firmware %s: %w", path, err)
	}
	if _, err := io.ReadFull(f, dst); err != nil {
		return nil, nil, fmt.Errorf("reading firmware %s: %w", path, err)
	}
	return &Boot{KernelAddr: FirmwareEntry, DTBAddr: FirmwareDTBAddr, Firmware: true}, dst, nil
}

// ReserveDeviceTree adds the device tree's block to t's memory
// reservations, so that neither the firmware nor the kernel it boots
// takes it for its own use while the firmware still reads it.
func ReserveDeviceTree(t *dtb.Tree) {
	t.Reservations = append(t.Reservations, dtb.Reservation{Address: FirmwareDTBAddr, Size: MaxDTBSize})
}
