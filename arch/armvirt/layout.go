// Package armvirt is the virtual ARM platform that arm64 and AArch32
// guests share: the memory map of QEMU's virt board, the in-kernel GIC
// KVM provides, and the device tree that describes both. The guest
// architecture packages (arch/arm64, arch/arm32) add what differs: the
// kernel format, the vCPU's boot state, and a Profile naming their CPU
// and timer.
package armvirt

import (
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// Guest-physical memory map. Devices live below 1 GiB at the addresses of
// QEMU's virt board (hw/arm/virt.c), so that a guest kernel, earlycon
// line or DTB made for that board finds the same things here; RAM starts
// at 1 GiB. Both arm64 and 32-bit kernels boot from this layout (QEMU
// uses it for both).
//
//	0x0000_0000 ┌────────────────────────────────┐
//	            │ flash: two 64 MiB banks, with  │ FlashBase (firmware boot
//	            │ firmware read-only in bank 0;  │ only; else nothing, which
//	            │ (reads as zero otherwise)      │ reads as zero)
//	0x0800_0000 │ GIC distributor (64 KiB)       │ GICDistBase
//	0x0801_0000 │ GICv2 CPU interface (8 KiB)    │ GICv2CPUBase
//	0x080a_0000 │ GICv3 redistributors, 128 KiB  │ GICv3RedistBase, up to
//	            │ per vCPU                       │ GICv3RedistMax (123 vCPUs)
//	0x0900_0000 │ PL011 UART (4 KiB), SPI 1      │ UARTBase
//	0x0901_0000 │ PL031 RTC (4 KiB), SPI 2       │ RTCBase
//	0x090c_0000 │ SP805 watchdog (4 KiB), SPI 3  │ WatchdogBase (a page QEMU's
//	            │                                │ virt board leaves free)
//	0x090d_0000 │ TPM TIS, 5 localities × 4 KiB  │ TPMBase (free on QEMU's
//	            │ (polled: no interrupt)         │ virt board too)
//	0x0a00_0000 │ virtio-mmio slots, 4 KiB each, │ VirtioBase
//	            │ SPI 16 and up                  │
//	0x0c00_0000 │ host devices passed through    │ PassthroughBase
//	            │ (32 MiB), SPI 64 and up        │
//	0x4000_0000 ├────────────────────────────────┤ RAMBase
//	            │ guest RAM: the kernel, device  │
//	            │ tree and initrd, placed by the │
//	            │ guest architecture's loader    │
//	            └────────────────────────────────┘ RAMBase + guest RAM
const (
	// FlashBase is where a guest booted from firmware finds its flash,
	// as on QEMU's virt board (VIRT_FLASH: two banks of 64 MiB, the
	// first holding the firmware the vCPU starts in). U-Boot's
	// qemu_arm64 build is linked to run from there.
	FlashBase     = 0x00000000
	FlashBankSize = 64 << 20
	FlashBanks    = 2
	FlashSize     = FlashBanks * FlashBankSize

	GICDistBase     = 0x08000000
	GICv2CPUBase    = 0x08010000
	GICv3RedistBase = 0x080a0000
	// GICv3RedistMax is the room for redistributors before the UART.
	GICv3RedistMax = 0x00f60000

	UARTBase = 0x09000000
	UARTSize = 0x1000
	UARTSPI  = 1
	RTCBase  = 0x09010000
	RTCSize  = 0x1000
	RTCSPI   = 2

	WatchdogBase = 0x090c0000
	WatchdogSize = 0x1000
	WatchdogSPI  = 3
	// WatchdogClockHz is the SP805's WDOGCLK, a fixed clock of its own in
	// the device tree: at 1 MHz one stage of its 32-bit counter spans
	// more than an hour.
	WatchdogClockHz = 1000000

	// TPMBase is where a guest's virtual TPM puts its TIS registers
	// (TCG PC Client Platform TPM Profile, §6.3: five localities of 4
	// KiB), described by a tcg,tpm-tis-mmio node. QEMU's virt board
	// puts its tpm-tis-device on the platform bus, which is the
	// passthrough window here; this 64 KiB block below the virtio
	// slots is free on both boards.
	TPMBase = 0x090d0000
	TPMSize = 0x5000

	VirtioBase     = 0x0a000000
	VirtioSlotSize = 0x1000
	// VirtioFirstSPI is the SPI of the first virtio-mmio slot; each slot
	// has its own (irqfd lines are edge-triggered, and shared edge lines
	// lose interrupts).
	VirtioFirstSPI = 16
	// NumVirtioSlots is how many virtio-mmio devices a guest can have.
	NumVirtioSlots = 32

	// PassthroughBase and PassthroughSize are the window host devices
	// passed through to the guest are mapped into, page by page in the
	// order the guest's config names them. It is QEMU's platform bus
	// (VIRT_PLATFORM_BUS, where QEMU puts VFIO platform devices): a
	// device never keeps its host address, since the host's devices sit
	// at the same virt-board addresses as the guest's own (a QEMU virt
	// host's PL031 is at RTCBase too). PassthroughFirstSPI is the first
	// of the SPIs left for their interrupts, up to NumIRQs.
	PassthroughBase     = 0x0c000000
	PassthroughSize     = 0x02000000
	PassthroughFirstSPI = 64

	// RAMBase is the start of guest RAM: 2 MiB aligned, as arm64's
	// booting.rst wants the kernel's base to be, and 128 MiB aligned, as
	// a 32-bit zImage built with AUTO_ZRELADDR derives the start of RAM
	// from its own address rounded down to 128 MiB.
	RAMBase = 0x40000000

	// NumIRQs is what the vGIC is told it has (KVM_DEV_ARM_VGIC_GRP_NR_IRQS):
	// the 32 private interrupts and 96 SPIs. It must be a multiple of 32.
	NumIRQs = 128

	// MaxCPUs is the most vCPUs a guest can have: GICv2 serves eight; the
	// GICv3 redistributor window 123. Config caps vCPUs lower anyway.
	MaxCPUs = GICv3RedistMax / kvm.VGICV3RedistSize
)

// ErrNoSlot is returned by VirtioSlot past the last slot.
var ErrNoSlot = errors.New("no free virtio-mmio slot")

// VirtioSlot returns where virtio-mmio device i sits and which SPI it
// raises.
func VirtioSlot(i int) (devices.Placement, error) {
	if i < 0 || i >= NumVirtioSlots {
		return devices.Placement{}, fmt.Errorf("virtio-mmio device %d: %w (ARM guests have %d)", i, ErrNoSlot, NumVirtioSlots)
	}
	return devices.Placement{
		Base: VirtioBase + uint64(i)*VirtioSlotSize,
		Size: VirtioSlotSize,
		IRQ:  VirtioFirstSPI + uint32(i),
	}, nil
}
