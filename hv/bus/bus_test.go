package bus

import (
	"errors"
	"fmt"
	"strings"
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

// faulty panics on every access at off 4: a device model's bug.
type faulty struct{ reads, writes int }

func (f *faulty) Read(off uint64, data []byte) {
	f.reads++
	data[0] = 0xaa
	if off == 4 {
		var table []byte
		data[1] = table[off] // index out of range
	}
}

func (f *faulty) Write(off uint64, data []byte) {
	f.writes++
	if off == 4 {
		panic("broken state")
	}
}

type lines struct{ got []string }

func (l *lines) Printf(format string, args ...any) {
	l.got = append(l.got, fmt.Sprintf(format, args...))
}

// TestDevicePanicContained: a device that panics is failed on its own —
// its range reads as zero and ignores writes, one warning names it and
// where it panicked — and the bus, its caller and the other devices go on.
func TestDevicePanicContained(t *testing.T) {
	for _, write := range []bool{false, true} {
		t.Run(fmt.Sprintf("write=%v", write), func(t *testing.T) {
			var b Bus
			log := &lines{}
			b.SetWarnings(log)
			bad, good := &faulty{}, &offsets{}
			if err := b.Insert(bad, 0x1000, 0x10); err != nil {
				t.Fatal(err)
			}
			if err := b.Insert(good, 0x2000, 0x10); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 2)
			if write {
				if !b.Write(0x1004, data) {
					t.Errorf("Write to the panicking device = false, want true (it is still there)")
				}
			} else if !b.Read(0x1004, data) || data[0] != 0 {
				t.Errorf("Read from the panicking device = %x, want zeros", data)
			}
			if !b.Failed(0x1000) {
				t.Errorf("Failed(0x1000) = false after a panic")
			}
			calls := bad.reads + bad.writes
			for i := 0; i < 3; i++ {
				data[0] = 0xff
				if !b.Read(0x1000, data) || data[0] != 0 {
					t.Errorf("Read from the failed device = %x, want zeros", data)
				}
				b.Write(0x1000, data)
			}
			if got := bad.reads + bad.writes; got != calls {
				t.Errorf("failed device called %d more times, want 0", got-calls)
			}
			if len(log.got) != 1 {
				t.Fatalf("warnings = %q, want exactly one", log.got)
			}
			want := "bus.(*faulty).Read (bus_test.go:"
			if write {
				want = "bus.(*faulty).Write (bus_test.go:"
			}
			if !strings.Contains(log.got[0], "*bus.faulty at 0x1000 failed: panic: ") || !strings.Contains(log.got[0], want) {
				t.Errorf("warning = %q, want it to name *bus.faulty at 0x1000 and %s", log.got[0], want)
			}
			if !b.Read(0x2003, data) || data[0] != 3 || b.Failed(0x2000) {
				t.Errorf("the other device: Read = %x, failed %v; want 03, false", data, b.Failed(0x2000))
			}
		})
	}
}

// counter is a device that neither allocates nor records: the bus's own
// cost is all an access pays.
type counter struct{ n int }

func (c *counter) Read(off uint64, data []byte)  { c.n++ }
func (c *counter) Write(off uint64, data []byte) { c.n++ }

// TestAccessAllocatesNothing: a dispatched access (the vCPU exit path)
// allocates nothing, whichever of several devices it reaches.
func TestAccessAllocatesNothing(t *testing.T) {
	var b Bus
	devs := make([]*counter, 8)
	for i := range devs {
		devs[i] = &counter{}
		if err := b.Insert(devs[i], uint64(0x1000*(i+1)), 0x200); err != nil {
			t.Fatal(err)
		}
	}
	data := make([]byte, 4)
	for _, tt := range []struct {
		name string
		fn   func()
	}{
		{"read", func() { b.Read(0x3050, data) }},
		{"write", func() { b.Write(0x8050, data) }},
		{"miss", func() { b.Write(0x9000, data) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
				t.Errorf("%s: %v allocations per access, want 0", tt.name, n)
			}
		})
	}
}

// TestLookupDuringInsert: accesses on other goroutines while devices are
// inserted see either the old table or the new one, never a torn one
// (run under -race: the lookup takes no lock).
func TestLookupDuringInsert(t *testing.T) {
	var b Bus
	first := &counter{}
	if err := b.Insert(first, 0x1000, 0x100); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	missed := make(chan uint64, 1)
	go func() {
		defer close(done)
		data := make([]byte, 4)
		for i := 0; i < 20000; i++ {
			if !b.Read(0x1010, data) {
				missed <- 0x1010
				return
			}
		}
	}()
	for i := 2; i < 66; i++ {
		if err := b.Insert(&offsets{}, uint64(0x1000*i), 0x100); err != nil {
			t.Fatal(err)
		}
	}
	<-done
	select {
	case a := <-missed:
		t.Errorf("Read(%#x) found nothing while other devices were inserted", a)
	default:
	}
	data := make([]byte, 1)
	for i := 2; i < 66; i++ {
		if !b.Read(uint64(0x1000*i)+7, data) || data[0] != 7 {
			t.Errorf("Read(%#x) = %x, want device offset 7", 0x1000*i+7, data)
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	var bus Bus
	for i := 0; i < 16; i++ {
		if err := bus.Insert(&counter{}, uint64(0x1000*(i+1)), 0x200); err != nil {
			b.Fatal(err)
		}
	}
	data := make([]byte, 4)
	for b.Loop() {
		bus.Write(0xa050, data)
	}
}
