package bus

import (
	"errors"
	"testing"
)

type offsets struct{ seen []uint64 }

func (o *offsets) Read(off uint64, data []byte)  { o.seen = append(o.seen, off); data[0] = byte(off) }
func (o *offsets) Write(off uint64, data []byte) { o.seen = append(o.seen, off) }

func TestInsertOverlap(t *testing.T) {
	tests := []struct {
		name       string
		base, size uint64
		want       error
	}{
		{"below", 0x0, 0x1000, nil},
		{"touching below", 0x1000, 0x1000, nil},
		{"touching above", 0x3000, 0x10, nil},
		{"inside", 0x2100, 0x10, ErrOverlap},
		{"covering", 0x1f00, 0x200, ErrOverlap},
		{"straddling the end", 0x2ff0, 0x20, ErrOverlap},
		{"same range", 0x2000, 0x1000, ErrOverlap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b Bus
			if err := b.Insert(&offsets{}, 0x2000, 0x1000); err != nil {
				t.Fatal(err)
			}
			err := b.Insert(&offsets{}, tt.base, tt.size)
			if !errors.Is(err, tt.want) {
				t.Errorf("Insert(%#x, %#x) = %v, want %v", tt.base, tt.size, err, tt.want)
			}
		})
	}
	var b Bus
	for _, r := range [][2]uint64{{0, 0}, {^uint64(0), 2}} {
		if err := b.Insert(&offsets{}, r[0], r[1]); err == nil {
			t.Errorf("Insert(%#x, %#x) = nil, want an error for an empty or wrapping range", r[0], r[1])
		}
	}
}

func TestDevicesSeeOffsets(t *testing.T) {
	var b Bus
	d := &offsets{}
	if err := b.Insert(d, 0xd0000000, 0x1000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		addr uint64
		n    int
		ok   bool
		off  uint64
	}{
		{"first byte", 0xd0000000, 4, true, 0},
		{"register", 0xd0000070, 4, true, 0x70},
		{"last word", 0xd0000ffc, 4, true, 0xffc},
		{"runs past the end", 0xd0000ffe, 4, false, 0},
		{"before", 0xcffffffc, 4, false, 0},
		{"after", 0xd0001000, 1, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d.seen = nil
			data := make([]byte, tt.n)
			data[0] = 0xee
			ok := b.Read(tt.addr, data)
			if ok != tt.ok {
				t.Fatalf("Read(%#x) = %v, want %v", tt.addr, ok, tt.ok)
			}
			if !ok {
				if data[0] != 0 {
					t.Errorf("unclaimed read left %#x, want zeros", data[0])
				}
				return
			}
			if len(d.seen) != 1 || d.seen[0] != tt.off {
				t.Errorf("device saw offsets %#x, want [%#x]", d.seen, tt.off)
			}
		})
	}
}
