package arm32

import (
	"fmt"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/mem"
)

// RawOffset is where in RAM a raw image goes unless a load address is
// given: ZImageOffset, 32 KiB above RAM's start, where a 32-bit ARM
// kernel or bare-metal image is traditionally loaded (TEXT_OFFSET).
const RawOffset = ZImageOffset

// LoadELF loads g's kernel, a 32-bit ARM ELF executable, and its initrd
// into m (laid out by MemoryRanges): each PT_LOAD segment at its physical
// address, entered at e_entry (in Thumb state when its bit 0 is set)
// with r2 the device tree's address, as a zImage is (booting.rst). The
// device tree goes 1 MiB aligned above the highest segment, the initrd
// above it.
func LoadELF(m *mem.Memory, g Guest) (*Boot, error) {
	ramEnd, err := ramEndOf(m)
	if err != nil {
		return nil, err
	}
	e, err := armvirt.LoadELF(m, g.Kernel, loader.AArch32, ramEnd)
	if err != nil {
		return nil, err
	}
	b, err := placeAbove(m, g, e.Entry, e.Span().End, ramEnd)
	if err != nil {
		return nil, err
	}
	b.Thumb = e.Thumb
	return b, nil
}

// LoadRaw loads g's kernel, a raw binary, at addr (0: RAMBase +
// RawOffset) and enters it there in ARM state, with the device tree and
// initrd as LoadELF places them.
func LoadRaw(m *mem.Memory, g Guest, addr uint64) (*Boot, error) {
	ramEnd, err := ramEndOf(m)
	if err != nil {
		return nil, err
	}
	if addr == 0 {
		addr = RAMBase + RawOffset
	}
	span, err := armvirt.LoadRaw(m, g.Kernel, addr, ramEnd)
	if err != nil {
		return nil, err
	}
	return placeAbove(m, g, addr, span.End, ramEnd)
}

// ramEndOf returns the end of guest RAM, which must be laid out by
// MemoryRanges.
func ramEndOf(m *mem.Memory) (uint64, error) { return armvirt.RAMEnd(m, "arm32.MemoryRanges") }

// placeAbove puts the device tree 1 MiB aligned above an image ending at
// end, and the initrd page aligned above the device tree.
func placeAbove(m *mem.Memory, g Guest, entry, end, ramEnd uint64) (*Boot, error) {
	b := &Boot{KernelAddr: entry, DTBAddr: alignUp(end, align1M)}
	initrdSize, err := fileSize(g.Initrd)
	if err != nil {
		return nil, err
	}
	if b.DTBAddr < end || b.DTBAddr+MaxDTBSize+initrdSize > ramEnd {
		return nil, fmt.Errorf("kernel %s: the image ends at %#x and leaves no room above it for the device tree (%d MiB) and initrd (%d KiB) in guest RAM, which ends at %#x: give the guest more memory", g.Kernel, end, MaxDTBSize>>20, initrdSize>>10, ramEnd)
	}
	if err := b.loadInitrd(m, g.Initrd, b.DTBAddr+MaxDTBSize, initrdSize); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckELF says what is wrong with the 32-bit ARM ELF executable at
// path, as LoadELF would, without guest memory. Its errors do not name
// the file.
func CheckELF(path string) error { return loader.CheckELF(path, loader.AArch32) }
