package arm32

import (
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/mem"
)

// Guest RAM of an AArch32 guest, in the armvirt layout (devices below
// 1 GiB, RAM from RAMBase):
//
//	RAMBase + 0           ┌──────────────────────────────────┐
//	RAMBase + 32 KiB      │ zImage (ZImageOffset)            │
//	                      │ the decompressor moves itself    │
//	                      │ above the kernel's decompressed  │
//	                      │ end, then inflates the kernel to │
//	                      │ RAMBase + 32 KiB: 4-5 times the  │
//	                      │ zImage, plus BSS, all below      │
//	RAMBase + 128 MiB     │ device tree (SafeOffset)         │ at most MaxDTBSize
//	                      │ initrd (page aligned)            │
//	                      │           ...                    │
//	                      └──────────────────────────────────┘ RAMBase + guest RAM (< 4 GiB)
//
// booting.rst: the DTB and initrd must sit "where the kernel decompressor
// will not overwrite [them], while also within the region which will be
// covered by the kernel's low-memory mapping. A safe location is just
// above the 128MiB boundary from start of RAM." Lowmem is at least 760
// MiB with the usual 3G/1G split, so 128 MiB is inside it.
const (
	// RAMBase is the start of guest RAM: 128 MiB aligned, so that a
	// kernel built with AUTO_ZRELADDR (every multiplatform one) finds
	// the start of RAM by rounding its own address down.
	RAMBase = armvirt.RAMBase
	// MaxRAM keeps all of RAM below 4 GiB: a kernel without LPAE cannot
	// address more, and with LPAE this layout needs no more for the
	// guests Tandem runs.
	MaxRAM = 3 << 30

	// ZImageOffset is where in RAM the zImage goes: TEXT_OFFSET, where
	// the decompressed kernel will start too (booting.rst recommends
	// loading above 32 MiB to save the decompressor a copy of itself;
	// that copy costs milliseconds, and loading low leaves all of the
	// room above 128 MiB to the DTB and initrd).
	ZImageOffset = 0x8000
	// SafeOffset is booting.rst's safe place for the DTB and initrd.
	SafeOffset = 128 << 20

	// MaxDTBSize bounds the device tree. booting.rst sets no limit for
	// 32-bit kernels; arm64's 2 MiB is plenty and keeps the layout
	// simple.
	MaxDTBSize = 2 << 20

	pageSize = 0x1000
	align1M  = 1 << 20
)

// VirtioSlot returns where virtio-mmio device i sits and which SPI it
// raises (the armvirt slots).
func VirtioSlot(i int) (devices.Placement, error) { return armvirt.VirtioSlot(i) }

// MemoryRanges returns the guest RAM range for size bytes of RAM. Sizes
// beyond MaxRAM are cut there; Load reports a guest too small to boot.
func MemoryRanges(size uint64) []mem.Range {
	return []mem.Range{{GPA: RAMBase, Size: min(size, MaxRAM)}}
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }
