package arm64

import (
	"fmt"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/mem"
)

// RawOffset is where in RAM a raw image goes unless a load address is
// given: 512 KiB above its start, where QEMU's virt board and other VMMs
// put a bare-metal image (the text_offset of arm64 Images before 3.17),
// so that a program built for those boards runs here unchanged.
const RawOffset = 0x80000

// LoadELF loads g's kernel, an arm64 ELF executable, and its initrd into
// m (laid out by MemoryRanges): each PT_LOAD segment at its physical
// address, entered at e_entry with x0 the device tree's address, as an
// Image is (booting.rst). The device tree goes 2 MiB aligned above the
// highest segment, the initrd above it.
func LoadELF(m *mem.Memory, g Guest) (*Boot, error) {
	ramEnd, err := ramEndOf(m)
	if err != nil {
		return nil, err
	}
	e, err := armvirt.LoadELF(m, g.Kernel, loader.ARM64, ramEnd)
	if err != nil {
		return nil, err
	}
	return placeAbove(m, g, e.Entry, e.Span().End, ramEnd)
}

// LoadRaw loads g's kernel, a raw binary, at addr (0: RAMBase +
// RawOffset) and enters it there, with the device tree and initrd as
// LoadELF places them.
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
func ramEndOf(m *mem.Memory) (uint64, error) { return armvirt.RAMEnd(m, "arm64.MemoryRanges") }

// placeAbove puts the device tree 2 MiB aligned above an image ending at
// end, and the initrd above the device tree.
func placeAbove(m *mem.Memory, g Guest, entry, end, ramEnd uint64) (*Boot, error) {
	b := &Boot{KernelAddr: entry, DTBAddr: alignUp(end, align2M)}
	if b.DTBAddr+MaxDTBSize > ramEnd || b.DTBAddr < end {
		return nil, fmt.Errorf("kernel %s: the image ends at %#x and leaves no room above it for the device tree in guest RAM, which ends at %#x: give the guest more memory", g.Kernel, end, ramEnd)
	}
	if g.Initrd != "" {
		if err := b.loadInitrd(m, g.Initrd, b.DTBAddr+MaxDTBSize, ramEnd); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// CheckELF says what is wrong with the arm64 ELF executable at path, as
// LoadELF would, without guest memory. Its errors do not name the file.
func CheckELF(path string) error { return loader.CheckELF(path, loader.ARM64) }
