// Package arm64 boots AArch64 Linux guests: it lays out guest-physical
// memory as QEMU's virt board does, loads an arm64 Image by the boot
// protocol of Documentation/arch/arm64/booting.rst, generates the guest's
// device tree, creates the in-kernel GIC and puts vCPUs in the state the
// boot protocol wants.
package arm64

import (
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/mem"
)

// Guest-physical memory map: the virt-board layout of arch/armvirt, which
// AArch32 guests share.
//
//	0x0000_0000 ┌────────────────────────────────┐
//	            │ devices (armvirt: GIC, PL011,  │
//	            │ PL031, virtio-mmio slots)      │
//	0x4000_0000 ├────────────────────────────────┤ RAMBase
//	            │ kernel Image at RAMBase +      │
//	            │ text_offset, image_size long   │
//	            │ device tree (2 MiB aligned,    │ at most MaxDTBSize
//	            │ its own 2 MiB block)           │
//	            │ initrd (page aligned)          │
//	            │           ...                  │
//	            └────────────────────────────────┘ RAMBase + guest RAM
const (
	GICDistBase     = armvirt.GICDistBase
	GICv2CPUBase    = armvirt.GICv2CPUBase
	GICv3RedistBase = armvirt.GICv3RedistBase
	GICv3RedistMax  = armvirt.GICv3RedistMax

	UARTBase = armvirt.UARTBase
	UARTSize = armvirt.UARTSize
	UARTSPI  = armvirt.UARTSPI
	RTCBase  = armvirt.RTCBase
	RTCSize  = armvirt.RTCSize
	RTCSPI   = armvirt.RTCSPI

	VirtioBase     = armvirt.VirtioBase
	VirtioSlotSize = armvirt.VirtioSlotSize
	VirtioFirstSPI = armvirt.VirtioFirstSPI
	NumVirtioSlots = armvirt.NumVirtioSlots

	// RAMBase is the start of guest RAM (2 MiB aligned, as booting.rst
	// wants the kernel's base to be).
	RAMBase = armvirt.RAMBase
	// MaxRAM keeps RAM below 512 GiB: inside KVM's default 40-bit IPA
	// space without asking for a larger one.
	MaxRAM = 511 << 30

	NumIRQs = armvirt.NumIRQs
	MaxCPUs = armvirt.MaxCPUs
)

// ErrNoSlot is returned by VirtioSlot past the last slot.
var ErrNoSlot = armvirt.ErrNoSlot

// VirtioSlot returns where virtio-mmio device i sits and which SPI it
// raises.
func VirtioSlot(i int) (devices.Placement, error) { return armvirt.VirtioSlot(i) }

// MemoryRanges returns the guest RAM range for size bytes of RAM. Sizes
// beyond MaxRAM are cut there; Load reports a guest too small to boot.
func MemoryRanges(size uint64) []mem.Range {
	return []mem.Range{{GPA: RAMBase, Size: min(size, MaxRAM)}}
}

const (
	pageSize = 0x1000
	align2M  = 2 << 20
)

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }
