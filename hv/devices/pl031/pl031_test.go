package pl031

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"
)

type countIRQ struct{ n atomic.Int32 }

func (c *countIRQ) Trigger() error { c.n.Add(1); return nil }

func read32(r *RTC, off uint64) uint32 {
	b := make([]byte, 4)
	r.Read(off, b)
	return binary.LittleEndian.Uint32(b)
}

func write32(r *RTC, off uint64, v uint32) {
	b := binary.LittleEndian.AppendUint32(nil, v)
	r.Write(off, b)
}

func TestRTC(t *testing.T) {
	base := time.Unix(1700000000, 0)
	type access struct {
		write bool
		off   uint64
		val   uint32 // written, or expected when read
	}
	tests := []struct {
		name    string
		seq     []access
		wantIRQ int32
	}{
		{"counter is the host's clock", []access{{false, regDR, 1700000000}, {false, regCR, crStart}}, 0},
		{"load moves the counter", []access{{true, regLR, 1000}, {false, regDR, 1000}, {false, regLR, 1000}}, 0},
		{"match register holds its value", []access{{true, regMR, 0x12345678}, {false, regMR, 0x12345678}}, 0},
		{"mask register", []access{{true, regIMSC, 0xff}, {false, regIMSC, intMatch}, {false, regMIS, 0}}, 0},
		{"PrimeCell ids", []access{
			{false, 0xfe0, 0x31}, {false, 0xfe4, 0x10}, {false, 0xfe8, 0x14}, {false, 0xfec, 0x00},
			{false, 0xff0, 0x0d}, {false, 0xff4, 0xf0}, {false, 0xff8, 0x05}, {false, 0xffc, 0xb1},
		}, 0},
		{"hole reads zero", []access{{false, 0x100, 0}, {true, 0x100, 7}, {false, 0x100, 0}}, 0},
		{"match now raises the interrupt once unmasked", []access{
			{true, regIMSC, intMatch}, {true, regMR, 1700000000},
		}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			irq := &countIRQ{}
			r := New(irq, func() time.Time { return base })
			defer r.Close()
			for i, a := range tt.seq {
				if a.write {
					write32(r, a.off, a.val)
					continue
				}
				if got := read32(r, a.off); got != a.val {
					t.Errorf("step %d: read %#x = %#x, want %#x", i, a.off, got, a.val)
				}
			}
			// A match at the current second fires at once.
			deadline := time.Now().Add(2 * time.Second)
			for irq.n.Load() < tt.wantIRQ && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := irq.n.Load(); got != tt.wantIRQ {
				t.Errorf("interrupts = %d, want %d", got, tt.wantIRQ)
			}
		})
	}
}

// TestMatchClear shows the match interrupt stays in RTCRIS until RTCICR
// clears it, and that RTCMIS follows the mask.
func TestMatchClear(t *testing.T) {
	base := time.Unix(5000, 0)
	irq := &countIRQ{}
	r := New(irq, func() time.Time { return base })
	defer r.Close()
	write32(r, regMR, 5000)
	deadline := time.Now().Add(2 * time.Second)
	for read32(r, regRIS) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := read32(r, regRIS); got != intMatch {
		t.Fatalf("RTCRIS = %d, want %d", got, intMatch)
	}
	if got := irq.n.Load(); got != 0 {
		t.Errorf("masked match raised %d interrupts, want 0", got)
	}
	write32(r, regIMSC, intMatch)
	if got, want := read32(r, regMIS), uint32(intMatch); got != want || irq.n.Load() != 1 {
		t.Errorf("after unmasking: RTCMIS = %d, interrupts %d, want %d, 1", got, irq.n.Load(), want)
	}
	write32(r, regICR, intMatch)
	if got := read32(r, regRIS); got != 0 {
		t.Errorf("RTCRIS after RTCICR = %d, want 0", got)
	}
}
