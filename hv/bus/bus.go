// Package bus dispatches guest MMIO and port-I/O accesses to devices.
//
// A device is inserted at a base address with a size and sees only offsets
// into its own range, never absolute guest addresses (Firecracker and crosvm
// do the same), so one device model serves any placement.
package bus

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// ErrOverlap is returned by Insert when a range overlaps one already on the bus.
var ErrOverlap = errors.New("bus range overlaps an existing device")

// A Device handles accesses to its range. off is relative to the device's
// base; len(data) is the access width (1, 2, 4 or 8 bytes, or more for a
// string I/O instruction split by the caller). Read fills data.
type Device interface {
	Read(off uint64, data []byte)
	Write(off uint64, data []byte)
}

type entry struct {
	base, size uint64
	dev        Device
}

// Bus is a set of non-overlapping device ranges.
type Bus struct {
	// mu protects ranges. Accesses take it for reading, so vCPUs dispatch
	// concurrently; a device serialises itself where it needs to.
	mu     sync.RWMutex
	ranges []entry // sorted by base
}

// Insert adds d at [base, base+size).
func (b *Bus) Insert(d Device, base, size uint64) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("bus range %#x+%#x: empty or wraps", base, size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base >= base })
	if i > 0 && b.ranges[i-1].base+b.ranges[i-1].size > base {
		return fmt.Errorf("bus range %#x+%#x: %w", base, size, ErrOverlap)
	}
	if i < len(b.ranges) && b.ranges[i].base < base+size {
		return fmt.Errorf("bus range %#x+%#x: %w", base, size, ErrOverlap)
	}
	b.ranges = append(b.ranges, entry{})
	copy(b.ranges[i+1:], b.ranges[i:])
	b.ranges[i] = entry{base, size, d}
	return nil
}

// find returns the device covering [addr, addr+n) and the offset into it.
func (b *Bus) find(addr uint64, n int) (Device, uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i := sort.Search(len(b.ranges), func(i int) bool { return b.ranges[i].base > addr }) - 1
	if i < 0 {
		return nil, 0, false
	}
	e := b.ranges[i]
	off := addr - e.base
	if off >= e.size || uint64(n) > e.size-off {
		return nil, 0, false
	}
	return e.dev, off, true
}

// Read dispatches a read. It reports false, leaving data zeroed, when no
// device covers the whole access.
func (b *Bus) Read(addr uint64, data []byte) bool {
	d, off, ok := b.find(addr, len(data))
	if !ok {
		clear(data)
		return false
	}
	d.Read(off, data)
	return true
}

// Write dispatches a write. It reports false when no device covers the
// whole access; the write is dropped.
func (b *Bus) Write(addr uint64, data []byte) bool {
	d, off, ok := b.find(addr, len(data))
	if !ok {
		return false
	}
	d.Write(off, data)
	return true
}
