package watchdog

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/devfuzz"
)

const evAdvance = 0 // time passes: Value milliseconds, up to about 65 s

func advance(c *FakeClock, op devfuzz.Op) {
	if op.Event == evAdvance {
		c.Advance(time.Duration(op.Value%(1<<16)) * time.Millisecond)
	}
}

// FuzzSP805 drives the SP805's window with any sequence of reads, writes
// and time. It must not panic; the guest is reset (Expired) at most once
// and, once reset, the counter is frozen and writes are ignored;
// WdogValue never reads above WdogLoad; WdogMIS reads RIS only with
// INTEN.
func FuzzSP805(f *testing.F) {
	ping := []devfuzz.Op{devfuzz.W(regLock, 4, unlockKey), devfuzz.W(regLoad, 4, 999), devfuzz.W(regIntClr, 4, 1),
		devfuzz.W(regControl, 4, ctrlMask), devfuzz.W(regLock, 4, 1)}
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "linux-ping", Ops: append(append([]devfuzz.Op{devfuzz.R(0xfe0, 4)}, ping...),
			devfuzz.E64(evAdvance, 900), devfuzz.R(regValue, 4))},
		devfuzz.Seed{Name: "expire", Ops: append(append([]devfuzz.Op(nil), ping...),
			devfuzz.E64(evAdvance, 1500), devfuzz.R(regRIS, 4), devfuzz.E64(evAdvance, 1500), devfuzz.R(regValue, 4),
			devfuzz.W(regLock, 4, unlockKey), devfuzz.W(regLoad, 4, 5))},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewFakeClock()
		var expired atomic.Int32
		d := NewSP805(SP805Config{Rate: rate, Expired: func() { expired.Add(1) }, Clock: c})
		defer d.Close()
		devfuzz.Apply(d, devfuzz.Decode(data, SP805Size), func(op devfuzz.Op) { advance(c, op) },
			func(i int, op devfuzz.Op, got uint64) {
				if n := expired.Load(); n > 1 {
					t.Fatalf("after %v: the guest was reset %d times", op, n)
				}
				d.mu.Lock()
				defer d.mu.Unlock()
				if d.reset && d.valueLocked() != 0 {
					t.Fatalf("after %v: WdogValue %d after the reset, want 0", op, d.valueLocked())
				}
				if v := d.valueLocked(); v > d.load && d.ctrl&ctrlIntEnable != 0 && !d.reset {
					t.Fatalf("after %v: WdogValue %d above WdogLoad %d", op, v, d.load)
				}
				if op.Kind == devfuzz.Read && op.Off == regMIS && op.Size >= 4 && d.ctrl&ctrlIntEnable == 0 && got != 0 {
					t.Fatalf("after %v: MIS = %#x without INTEN", op, got)
				}
			})
		if d.Failed() {
			t.Fatal("the watchdog failed")
		}
	})
}

// FuzzPortWatchdog drives the WDAT port watchdog with any sequence of
// reads, writes and time. It must not panic; it expires at most once;
// the countdown stays within [MinCount, MaxCount] and the count left
// never exceeds it.
func FuzzPortWatchdog(f *testing.F) {
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "wdat-start-ping", Ops: []devfuzz.Op{
			devfuzz.W(PortCountdown, 4, 10), devfuzz.W(PortControl, 1, ControlRunning), devfuzz.E64(evAdvance, 900),
			devfuzz.W(PortPing, 1, PingValue), devfuzz.R(PortRemaining, 4), devfuzz.W(PortControl, 1, ControlRunning|ControlReboot),
		}},
		devfuzz.Seed{Name: "expire", Ops: []devfuzz.Op{
			devfuzz.W(PortCountdown, 4, 0xffffffff), devfuzz.W(PortControl, 1, 1), devfuzz.E64(evAdvance, 60000), devfuzz.R(PortRemaining, 4),
		}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := NewFakeClock()
		var expired atomic.Int32
		const minCount, maxCount = 2, 600
		d := NewPort(PortConfig{Period: 100 * time.Millisecond, MinCount: minCount, MaxCount: maxCount, Expired: func() { expired.Add(1) }, Clock: c})
		defer d.Close()
		devfuzz.Apply(d, devfuzz.Decode(data, PortSize), func(op devfuzz.Op) { advance(c, op) },
			func(i int, op devfuzz.Op, got uint64) {
				if n := expired.Load(); n > 1 {
					t.Fatalf("after %v: expired %d times", op, n)
				}
				d.mu.Lock()
				defer d.mu.Unlock()
				if d.countdown < minCount || d.countdown > maxCount {
					t.Fatalf("after %v: countdown %d outside [%d, %d]", op, d.countdown, minCount, maxCount)
				}
				if r := d.remainingLocked(); r > maxCount {
					t.Fatalf("after %v: %d periods left, more than MaxCount", op, r)
				}
			})
		if d.Failed() {
			t.Fatal("the watchdog failed")
		}
	})
}

// TestPeriodsSaturate: a countdown the guest sets to the largest count
// of a long period saturates instead of wrapping to a short timeout.
func TestPeriodsSaturate(t *testing.T) {
	if got := periods(^uint32(0), time.Hour); got <= 0 {
		t.Errorf("periods(2^32-1, 1h) = %v, want a long positive Duration", got)
	}
	if got := periods(10, time.Second); got != 10*time.Second {
		t.Errorf("periods(10, 1s) = %v, want 10s", got)
	}
}
