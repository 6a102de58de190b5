// Package mem owns a guest's RAM: anonymous host mappings placed at
// guest-physical addresses, and bounds-checked access to them.
//
// Every accessor checks that the whole range [gpa, gpa+n) lies inside one
// region. A guest controls the addresses it hands to devices (virtqueue
// descriptors, DMA buffers), so an out-of-range or wrapping address is an
// ordinary error here, never a panic and never an access outside the
// guest's own memory.
//
// Each region's mapping sits between two PROT_NONE guard pages, so an
// access that runs off either end of guest RAM — from code that reaches
// guest memory without Go's bounds checks: a system call given an iovec
// (preadv, writev), KVM itself — faults at once instead of reading or
// corrupting whatever the host mapped next to it. The adversarial
// virtqueue tests rely on it: any access outside guest RAM crashes them.
package mem

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrOutOfRange is returned when an access is not wholly inside guest RAM.
var ErrOutOfRange = errors.New("guest-physical range outside guest memory")

// ErrOverlap is returned when two regions would share guest-physical addresses.
var ErrOverlap = errors.New("guest memory regions overlap")

// ErrAddressSpace is returned when guest RAM does not fit the VMM's own
// address space: on a 32-bit host (ARMv7) a process maps at most 2 GiB
// in one piece, and less in all.
var ErrAddressSpace = errors.New("does not fit this VMM's address space")

// maxMapping bounds one region and all of them together: what an int (a
// mapping's length) holds, 2 GiB - 1 on a 32-bit host.
const maxMapping = uint64(math.MaxInt)

// Range is a guest-physical address range.
type Range struct {
	GPA  uint64
	Size uint64
}

// End returns the first address past the range.
func (r Range) End() uint64 { return r.GPA + r.Size }

// Region is one contiguous block of guest RAM backed by a host mapping.
type Region struct {
	Range
	// Host is the host mapping; len(Host) == Size.
	Host []byte
	// mapping is Host with a guard page on each side, as mapped.
	mapping []byte
}

// Memory is a guest's RAM: a sorted set of non-overlapping regions.
// It is safe for concurrent use once built: regions are never added or
// removed after New returns, and accesses to guest RAM are as racy as the
// guest's own (the guest writes it concurrently anyway).
type Memory struct {
	regions []Region
}

// Options tune how guest RAM is mapped.
type Options struct {
	// Lock pins the mapping in host RAM (mlock), so a control guest never
	// waits on a page fault to swap. Locked memory is asked for huge
	// pages too: it is all resident anyway, so they cost no memory, and
	// the guest then takes one fault into KVM per huge page it touches
	// first instead of one per 4 KiB page.
	Lock bool
	// HugePages asks the kernel to back the mapping with transparent huge
	// pages where it can (madvise; best effort). The host's memory grows
	// a huge page at a time as the guest touches it.
	HugePages bool
}

// New maps anonymous host memory for each range. Ranges must not overlap
// and must be page-aligned.
func New(ranges []Range, opt Options) (*Memory, error) {
	rs := append([]Range(nil), ranges...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].GPA < rs[j].GPA })
	page := uint64(unix.Getpagesize())
	m := &Memory{}
	var total uint64
	for i, r := range rs {
		if r.Size == 0 || r.GPA%page != 0 || r.Size%page != 0 {
			m.Close()
			return nil, fmt.Errorf("guest memory range %#x+%#x: must be non-empty and %d-byte aligned", r.GPA, r.Size, page)
		}
		if r.End() < r.GPA {
			m.Close()
			return nil, fmt.Errorf("guest memory range %#x+%#x: wraps the address space", r.GPA, r.Size)
		}
		if i > 0 && rs[i-1].End() > r.GPA {
			m.Close()
			return nil, fmt.Errorf("guest memory range %#x+%#x: %w", r.GPA, r.Size, ErrOverlap)
		}
		if total += r.Size; r.Size > maxMapping || total > maxMapping {
			m.Close()
			return nil, fmt.Errorf("%d MiB of guest memory %w (at most %d MiB on a %d-bit host): give the guest less memory",
				total>>20, ErrAddressSpace, maxMapping>>20, strconv.IntSize)
		}
		mapping, b, err := mapGuarded(r.Size, page, r.GPA)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("mapping %d MiB of guest memory: %w", r.Size>>20, err)
		}
		if opt.HugePages || opt.Lock {
			_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // best effort: THP may be off
		}
		if opt.Lock {
			if err := unix.Mlock(b); err != nil {
				unmap(mapping)
				m.Close()
				return nil, fmt.Errorf("locking %d MiB of guest memory (raise RLIMIT_MEMLOCK or run as root): %w", r.Size>>20, err)
			}
		}
		m.regions = append(m.regions, Region{Range: r, Host: b, mapping: mapping})
	}
	return m, nil
}

// mapGuarded maps size bytes of anonymous memory with an inaccessible
// page on each side: it reserves the span PROT_NONE, then opens the
// middle. It returns the whole mapping and the usable part.
//
// The usable part starts at the phase gpa has within a host huge page
// (hugePageSize), so that each huge-page-aligned block of guest-physical
// memory is one huge-page-aligned block of host memory. Only then can
// the kernel's transparent huge pages back it and KVM map it to the
// guest as one block (arm64 stage 2, x86 NPT/EPT); otherwise every 4 KiB
// page the guest first touches is a separate fault into KVM, which a
// stock kernel's boot takes thousands of (docs/bench-notes.md). The
// reservation is a huge page larger, and what the phase leaves over on
// either side is unmapped again.
func mapGuarded(size, page, gpa uint64) (mapping, usable []byte, err error) {
	if size > maxMapping-2*page {
		return nil, nil, fmt.Errorf("%d bytes and two guard pages %w", size, ErrAddressSpace)
	}
	span := size + 2*page
	huge := hugePageSize()
	slack := uint64(0)
	if huge > page && size >= huge && span <= maxMapping-huge {
		slack = huge
	}
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(span+slack), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, nil, err
	}
	base := uint64(uintptr(p))
	start := base + page
	if slack > 0 {
		start += (gpa%huge + huge - start%huge) % huge
		if lead := start - page - base; lead > 0 {
			unix.MunmapPtr(p, uintptr(lead))
		}
		if trail := base + span + slack - (start + size + page); trail > 0 {
			unix.MunmapPtr(unsafe.Add(p, start+size+page-base), uintptr(trail))
		}
	}
	mapping = unsafe.Slice((*byte)(unsafe.Add(p, start-page-base)), span)
	usable = mapping[page : page+size : page+size]
	if err := unix.Mprotect(usable, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		unmap(mapping)
		return nil, nil, err
	}
	return mapping, usable, nil
}

// unmap unmaps a mapping made by mapGuarded.
func unmap(mapping []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(mapping)), uintptr(len(mapping)))
}

// hugePageSize is the size of the host's transparent huge pages (the
// span of a page-table entry one level above the page's), or 0 when the
// kernel has none.
var hugePageSize = sync.OnceValue(func() uint64 {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n&(n-1) != 0 {
		return 0
	}
	return n
})

// Close unmaps all regions. The Memory must not be used afterwards.
func (m *Memory) Close() error {
	var first error
	for _, r := range m.regions {
		if err := unmap(r.mapping); err != nil && first == nil {
			first = err
		}
	}
	m.regions = nil
	return first
}

// Regions returns the regions in guest-physical order.
func (m *Memory) Regions() []Region { return m.regions }

// Size returns the total guest RAM in bytes.
func (m *Memory) Size() uint64 {
	var n uint64
	for _, r := range m.regions {
		n += r.Size
	}
	return n
}

// Slice returns the host bytes backing [gpa, gpa+n). The range must lie
// inside one region. The slice aliases guest memory.
func (m *Memory) Slice(gpa, n uint64) ([]byte, error) {
	end := gpa + n
	if end < gpa {
		return nil, fmt.Errorf("%#x+%#x: %w", gpa, n, ErrOutOfRange)
	}
	// Regions are few (one or two); a linear scan beats a search.
	for _, r := range m.regions {
		if gpa >= r.GPA && end <= r.End() {
			off := gpa - r.GPA
			return r.Host[off : off+n : off+n], nil
		}
	}
	return nil, fmt.Errorf("%#x+%#x: %w", gpa, n, ErrOutOfRange)
}

// ReadAt copies guest memory at gpa into p.
func (m *Memory) ReadAt(p []byte, gpa uint64) error {
	b, err := m.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(p, b)
	return nil
}

// WriteAt copies p into guest memory at gpa.
func (m *Memory) WriteAt(p []byte, gpa uint64) error {
	b, err := m.Slice(gpa, uint64(len(p)))
	if err != nil {
		return err
	}
	copy(b, p)
	return nil
}

// Uint16 reads a little-endian 16-bit value.
func (m *Memory) Uint16(gpa uint64) (uint16, error) {
	b, err := m.Slice(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// Uint32 reads a little-endian 32-bit value.
func (m *Memory) Uint32(gpa uint64) (uint32, error) {
	b, err := m.Slice(gpa, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// Uint64 reads a little-endian 64-bit value.
func (m *Memory) Uint64(gpa uint64) (uint64, error) {
	b, err := m.Slice(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// PutUint16 writes a little-endian 16-bit value.
func (m *Memory) PutUint16(gpa uint64, v uint16) error {
	b, err := m.Slice(gpa, 2)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(b, v)
	return nil
}

// PutUint32 writes a little-endian 32-bit value.
func (m *Memory) PutUint32(gpa uint64, v uint32) error {
	b, err := m.Slice(gpa, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b, v)
	return nil
}

// PutUint64 writes a little-endian 64-bit value.
func (m *Memory) PutUint64(gpa uint64, v uint64) error {
	b, err := m.Slice(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}

// HostAddr is the host virtual address of the region's first byte, as it
// appears in /proc/self/maps.
func (r Region) HostAddr() uint64 { return uint64(uintptr(unsafe.Pointer(&r.Host[0]))) }
