package arm32

import (
	"errors"
	"fmt"
	"io"
	"os"

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
	e, f, err := loader.OpenELF(g.Kernel, loader.AArch32)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	defer f.Close()
	if err := e.Load(m, f, nil); err != nil {
		return nil, placementError(g.Kernel, err, ramEnd)
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
	if addr%4 != 0 {
		return nil, fmt.Errorf("kernel %s: load address %#x is not a multiple of 4: ARM instructions are 4-byte aligned", g.Kernel, addr)
	}
	span, err := loader.LoadRawFile(m, g.Kernel, addr, nil)
	if err != nil {
		return nil, placementError(g.Kernel, err, ramEnd)
	}
	return placeAbove(m, g, addr, span.End, ramEnd)
}

// ramEndOf returns the end of guest RAM, which must be laid out by
// MemoryRanges.
func ramEndOf(m *mem.Memory) (uint64, error) {
	regions := m.Regions()
	if len(regions) != 1 || regions[0].GPA != RAMBase {
		return 0, fmt.Errorf("guest memory is not laid out by arm32.MemoryRanges")
	}
	return RAMBase + regions[0].Size, nil
}

// placementError names the file and, for an image that does not fit,
// where guest RAM is.
func placementError(path string, err error, ramEnd uint64) error {
	if errors.Is(err, loader.ErrPlacement) {
		return fmt.Errorf("kernel %s: %w (guest RAM is [%#x, %#x))", path, err, uint64(RAMBase), ramEnd)
	}
	return fmt.Errorf("kernel %s: %w", path, err)
}

// placeAbove puts the device tree 1 MiB aligned above an image ending at
// end, and the initrd page aligned above the device tree.
func placeAbove(m *mem.Memory, g Guest, entry, end, ramEnd uint64) (*Boot, error) {
	b := &Boot{KernelAddr: entry, DTBAddr: alignUp(end, align1M)}
	var initrdSize uint64
	if g.Initrd != "" {
		st, err := os.Stat(g.Initrd)
		if err != nil {
			return nil, fmt.Errorf("initrd: %w", err)
		}
		initrdSize = uint64(st.Size())
	}
	initrd := b.DTBAddr + MaxDTBSize
	if b.DTBAddr < end || initrd+initrdSize > ramEnd {
		return nil, fmt.Errorf("kernel %s: the image ends at %#x and leaves no room above it for the device tree (%d MiB) and initrd (%d KiB) in guest RAM, which ends at %#x: give the guest more memory", g.Kernel, end, MaxDTBSize>>20, initrdSize>>10, ramEnd)
	}
	if g.Initrd == "" {
		return b, nil
	}
	dst, err := m.Slice(initrd, initrdSize)
	if err != nil {
		return nil, fmt.Errorf("initrd %s: %w", g.Initrd, err)
	}
	f, err := os.Open(g.Initrd)
	if err != nil {
		return nil, fmt.Errorf("opening initrd: %w", err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, dst); err != nil {
		return nil, fmt.Errorf("reading initrd %s: %w", g.Initrd, err)
	}
	b.InitrdAddr, b.InitrdSize = initrd, initrdSize
	return b, nil
}

// CheckELF says what is wrong with the 32-bit ARM ELF executable at
// path, as LoadELF would, without guest memory. Its errors do not name
// the file.
func CheckELF(path string) error { return loader.CheckELF(path, loader.AArch32) }
