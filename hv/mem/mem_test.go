package mem

import (
	"errors"
	"strconv"
	"testing"
)

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name   string
		ranges []Range
	}{
		{"empty range", []Range{{0, 0}}},
		{"unaligned base", []Range{{0x10, 0x1000}}},
		{"unaligned size", []Range{{0, 0x1001}}},
		{"overlap", []Range{{0, 0x2000}, {0x1000, 0x1000}}},
		{"wraps", []Range{{^uint64(0) &^ 0xfff, 0x2000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, err := New(tt.ranges, Options{}); err == nil {
				m.Close()
				t.Errorf("New(%v) = nil error, want one", tt.ranges)
			}
		})
	}
}

func TestBoundsChecked(t *testing.T) {
	// Two regions with a hole between them, as x86 has around 3-4 GiB.
	m, err := New([]Range{{0, 0x2000}, {0x10000, 0x1000}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	tests := []struct {
		name string
		gpa  uint64
		n    uint64
		ok   bool
	}{
		{"start of RAM", 0, 8, true},
		{"last byte of a region", 0x1fff, 1, true},
		{"second region", 0x10000, 0x1000, true},
		{"crosses the end of a region", 0x1ffc, 8, false},
		{"in the hole", 0x3000, 4, false},
		{"spans the hole", 0x1000, 0x10000, false},
		{"past the end", 0x11000, 1, false},
		{"wraps around", ^uint64(0) - 2, 8, false},
		{"huge length", 0, ^uint64(0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := m.Slice(tt.gpa, tt.n)
			if tt.ok {
				if err != nil || uint64(len(b)) != tt.n {
					t.Errorf("Slice(%#x, %#x) = %d bytes, %v; want %d bytes", tt.gpa, tt.n, len(b), err, tt.n)
				}
				return
			}
			if !errors.Is(err, ErrOutOfRange) {
				t.Errorf("Slice(%#x, %#x) error = %v, want ErrOutOfRange", tt.gpa, tt.n, err)
			}
		})
	}
}

func TestAccessors(t *testing.T) {
	m, err := New([]Range{{0x100000, 0x1000}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.PutUint64(0x100008, 0x1122334455667788); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Uint64(0x100008); v != 0x1122334455667788 {
		t.Errorf("Uint64 = %#x, want 0x1122334455667788", v)
	}
	if v, _ := m.Uint32(0x100008); v != 0x55667788 {
		t.Errorf("Uint32 = %#x, want 0x55667788 (little-endian)", v)
	}
	if v, _ := m.Uint16(0x10000e); v != 0x1122 {
		t.Errorf("Uint16 = %#x, want 0x1122", v)
	}
	if err := m.PutUint32(0x100ffe, 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("PutUint32 across the end = %v, want ErrOutOfRange", err)
	}
	if m.Size() != 0x1000 {
		t.Errorf("Size() = %#x, want 0x1000", m.Size())
	}
}

// TestNewAddressSpace checks guest RAM against the VMM's own address
// space: a 64-bit VMM maps it all (lazily), a 32-bit one (an ARMv7 host)
// refuses more than an int holds, naming the limit, instead of mapping a
// length cut to 32 bits (5 GiB would have become 1 GiB that the guest
// was told is 5).
func TestNewAddressSpace(t *testing.T) {
	const gib = 1 << 30
	tests := []struct {
		name   string
		ranges []Range
		// fits32 says it fits a 32-bit VMM; every case fits a 64-bit one.
		fits32 bool
	}{
		{"1 GiB", []Range{{0, gib}}, true},
		{"3 GiB in one range", []Range{{0, 3 * gib}}, false},
		{"two ranges of 1.5 GiB", []Range{{0, 3 * gib / 2}, {4 * gib, 3 * gib / 2}}, false},
		{"5 GiB, whose length is 1 GiB cut to 32 bits", []Range{{0, 5 * gib}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.ranges, Options{})
			fits := tt.fits32 || strconv.IntSize == 64
			switch {
			case fits && err != nil:
				t.Fatalf("New() = %v, want the memory mapped (%d-bit VMM)", err, strconv.IntSize)
			case !fits && !errors.Is(err, ErrAddressSpace):
				t.Fatalf("New() = %v, want ErrAddressSpace (%d-bit VMM)", err, strconv.IntSize)
			}
			if m == nil {
				return
			}
			defer m.Close()
			var want uint64
			for _, r := range tt.ranges {
				want += r.Size
			}
			if got := m.Size(); got != want {
				t.Errorf("Size() = %d MiB, want %d MiB", got>>20, want>>20)
			}
		})
	}
}
