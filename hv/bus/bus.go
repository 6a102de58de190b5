// Package bus dispatches guest MMIO and port-I/O accesses to devices.
//
// A device is inserted at a base address with a size and sees only offsets
// into its own range, never absolute guest addresses (Firecracker and crosvm
// do the same), so one device model serves any placement.
//
// # Containment
//
// The bus is where every register access of a guest enters a device model,
// so it is also where a device model's bug is contained: a device that
// panics while handling an access is failed, on its own. The panic is
// recovered, a warning names the device and where it panicked (once: a
// failed device is never called again), and from then on the device's
// range still decodes but reads as zero and ignores writes, as a device
// that has stopped responding would. The vCPU, the VM and every other
// device go on. A device that wants a gentler end for its own bugs (the
// virtio transport sets DEVICE_NEEDS_RESET) recovers them itself, before
// the bus sees them.
package bus

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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

// Logger takes the bus's warnings; *devices.RateLimited is one.
type Logger interface {
	Printf(format string, args ...any)
}

// slot is one device on the bus. failed is set, once, when the device
// panics; it is read on every access without a lock.
type slot struct {
	base, size uint64
	dev        Device
	failed     atomic.Bool
}

// Bus is a set of non-overlapping device ranges.
//
// Lookups take no lock: every vCPU exit that reaches user space goes
// through find, and a lock word shared by all vCPU threads would bounce
// between their cores on each one. Insert builds a new sorted table and
// publishes it whole; a lookup reads whichever table was published last.
// Devices are inserted while the VM is built, before any vCPU runs, so in
// practice the table never changes under a lookup.
type Bus struct {
	// table is the published, immutable table: sorted by base.
	table atomic.Pointer[table]
	// mu serialises Insert and SetWarnings, and protects warn.
	mu   sync.Mutex
	warn Logger
}

// table is one published state of the bus. It is never modified once
// published.
type table struct {
	slots []*slot // sorted by base
}

// SetWarnings sends the bus's warnings (a device failed) to l; nil, the
// default, writes them to standard error.
func (b *Bus) SetWarnings(l Logger) {
	b.mu.Lock()
	b.warn = l
	b.mu.Unlock()
}

// Insert adds d at [base, base+size).
func (b *Bus) Insert(d Device, base, size uint64) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("bus range %#x+%#x: empty or wraps", base, size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var old []*slot
	if t := b.table.Load(); t != nil {
		old = t.slots
	}
	i := sort.Search(len(old), func(i int) bool { return old[i].base >= base })
	if i > 0 && old[i-1].base+old[i-1].size > base {
		return fmt.Errorf("bus range %#x+%#x: %w", base, size, ErrOverlap)
	}
	if i < len(old) && old[i].base < base+size {
		return fmt.Errorf("bus range %#x+%#x: %w", base, size, ErrOverlap)
	}
	slots := make([]*slot, 0, len(old)+1)
	slots = append(slots, old[:i]...)
	slots = append(slots, &slot{base: base, size: size, dev: d})
	slots = append(slots, old[i:]...)
	b.table.Store(&table{slots: slots})
	return nil
}

// find returns the device covering [addr, addr+n) and the offset into it:
// a binary search of the published table, with no lock, no allocation and
// no call through a closure.
func (b *Bus) find(addr uint64, n int) (*slot, uint64, bool) {
	t := b.table.Load()
	if t == nil {
		return nil, 0, false
	}
	// lo ends as the number of slots whose base is at or below addr.
	lo, hi := 0, len(t.slots)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.slots[m].base <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil, 0, false
	}
	s := t.slots[lo-1]
	off := addr - s.base
	if off >= s.size || uint64(n) > s.size-off {
		return nil, 0, false
	}
	return s, off, true
}

// Read dispatches a read. It reports false, leaving data zeroed, when no
// device covers the whole access. A failed device reads as zero.
func (b *Bus) Read(addr uint64, data []byte) (found bool) {
	s, off, found := b.find(addr, len(data))
	if !found || s.failed.Load() {
		clear(data)
		return found
	}
	// found is named so that it stays true when a panic is recovered.
	// recover is called in the deferred function itself, with no
	// wrapper between: this runs on every exit.
	defer func() {
		if p := recover(); p != nil {
			b.contain(s, data, p)
		}
	}()
	s.dev.Read(off, data)
	return found
}

// Write dispatches a write. It reports false when no device covers the
// whole access; the write is dropped. A failed device ignores it.
func (b *Bus) Write(addr uint64, data []byte) (found bool) {
	s, off, found := b.find(addr, len(data))
	if !found || s.failed.Load() {
		return found
	}
	defer func() {
		if p := recover(); p != nil {
			b.contain(s, nil, p)
		}
	}()
	s.dev.Write(off, data)
	return found
}

// Failed reports whether the device at addr has been failed by a panic.
func (b *Bus) Failed(addr uint64) bool {
	s, _, ok := b.find(addr, 1)
	return ok && s.failed.Load()
}

// contain handles a device's panic p, recovered around a call into it:
// it fails the device and zeroes what a read had filled.
func (b *Bus) contain(s *slot, data []byte, p any) {
	clear(data)
	f := NewFault(p)
	if !s.failed.CompareAndSwap(false, true) {
		return
	}
	b.mu.Lock()
	w := b.warn
	b.mu.Unlock()
	msg := fmt.Sprintf("%s at %#x failed: %v; it reads as zero and ignores writes from now on, and the guest goes on", deviceName(s.dev), s.base, f)
	if w == nil {
		fmt.Fprintf(os.Stderr, "tandem: warning: %s\n", msg)
		return
	}
	w.Printf("%s", msg)
}

// deviceName is a device's own name where it has one (virtio transports
// do), else its Go type: "*serial.UART".
func deviceName(d Device) string {
	if n, ok := d.(interface{ Name() string }); ok {
		return n.Name()
	}
	return fmt.Sprintf("%T", d)
}

// A Fault is a device model's panic, recovered: its value and the
// function and line that panicked.
type Fault struct {
	Value any
	Site  string // "serial.(*UART).Write (serial.go:201)", or "" if unknown
}

func (f *Fault) Error() string {
	if f.Site == "" {
		return fmt.Sprintf("panic: %v", f.Value)
	}
	return fmt.Sprintf("panic: %v in %s", f.Value, f.Site)
}

// NewFault describes the panic p. Call it from the deferred function that
// recovered p, while the panicking frames are still on the stack: it
// finds the first frame below runtime.gopanic that is not the runtime's
// own (an index check, a nil dereference), which is the device's code.
func NewFault(p any) *Fault {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(2, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	panicking := false
	for {
		fr, more := frames.Next()
		switch {
		case fr.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(fr.Function, "runtime."):
			fn := fr.Function
			if i := strings.LastIndex(fn, "/"); i >= 0 {
				fn = fn[i+1:]
			}
			file := fr.File
			if i := strings.LastIndex(file, "/"); i >= 0 {
				file = file[i+1:]
			}
			return &Fault{Value: p, Site: fmt.Sprintf("%s (%s:%d)", fn, file, fr.Line)}
		}
		if !more {
			return &Fault{Value: p}
		}
	}
}
