package watchdog

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/bus"
)

type countIRQ struct{ n atomic.Int32 }

func (c *countIRQ) Trigger() error { c.n.Add(1); return nil }

// step is one thing a test does to a device: write a register, read one
// and compare, or let time pass. width is the access size (4 if 0).
type step struct {
	op    byte // 'w' write, 'r' read, 't' advance the clock
	off   uint64
	val   uint32
	d     time.Duration
	width int
}

func w(off uint64, v uint32) step  { return step{op: 'w', off: off, val: v} }
func r(off uint64, v uint32) step  { return step{op: 'r', off: off, val: v} }
func wb(off uint64, v uint32) step { return step{op: 'w', off: off, val: v, width: 1} }
func rb(off uint64, v uint32) step { return step{op: 'r', off: off, val: v, width: 1} }
func after(d time.Duration) step   { return step{op: 't', d: d} }
func run(t *testing.T, dev bus.Device, c *FakeClock, seq []step) {
	t.Helper()
	for i, s := range seq {
		n := s.width
		if n == 0 {
			n = 4
		}
		b := make([]byte, n)
		switch s.op {
		case 'w':
			for j := range b {
				b[j] = byte(s.val >> (8 * j))
			}
			dev.Write(s.off, b)
		case 'r':
			dev.Read(s.off, b)
			var got uint32
			for j := range b {
				got |= uint32(b[j]) << (8 * j)
			}
			if got != s.val {
				t.Errorf("step %d: read %#x = %#x, want %#x", i, s.off, got, s.val)
			}
		case 't':
			c.Advance(s.d)
		}
	}
}

// rate is a 1 kHz WDOGCLK: a load of 999 is one second.
const rate = 1000

func TestSP805(t *testing.T) {
	// ping is what Linux's sp805_wdt does to start or pet the watchdog.
	ping := func(load uint32) []step {
		return []step{w(regLock, unlockKey), w(regLoad, load), w(regIntClr, 1), w(regControl, ctrlMask), w(regLock, 1)}
	}
	cat := func(parts ...[]step) []step {
		var out []step
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name       string
		boot       time.Duration
		seq        []step
		wantIRQ    int32
		wantExpiry int32
	}{
		{"reset values", 0, []step{
			r(regLoad, loadReset), r(regValue, loadReset), r(regControl, 0), r(regRIS, 0), r(regMIS, 0), r(regLock, 0),
		}, 0, 0},
		{"PrimeCell ids match sp805_wdt's 0x00141805", 0, []step{
			r(0xfe0, 0x05), r(0xfe4, 0x18), r(0xfe8, 0x14), r(0xfec, 0x00),
			r(0xff0, 0x0d), r(0xff4, 0xf0), r(0xff8, 0x05), r(0xffc, 0xb1),
		}, 0, 0},
		{"counter stopped without INTEN", 0, []step{
			w(regLoad, 999), after(10 * time.Second), r(regValue, 999), r(regRIS, 0),
		}, 0, 0},
		{"counter counts down while INTEN is set", 0, []step{
			w(regLoad, 999), w(regControl, ctrlIntEnable), after(250 * time.Millisecond), r(regValue, 750),
		}, 0, 0},
		{"first zero raises the interrupt and reloads", 0, []step{
			w(regLoad, 999), w(regControl, ctrlMask), after(time.Second),
			r(regRIS, risInt), r(regMIS, risInt), r(regValue, 999),
		}, 1, 0},
		{"second zero with the interrupt set resets", 0, cat(ping(999), []step{after(2 * time.Second)}), 1, 1},
		{"no reset without RESEN: the counter goes on", 0, []step{
			w(regLoad, 999), w(regControl, ctrlIntEnable), after(5 * time.Second), r(regRIS, risInt),
		}, 1, 0},
		{"clearing the interrupt in time prevents the reset", 0, cat(ping(999), []step{
			after(1500 * time.Millisecond), w(regLock, unlockKey), w(regIntClr, 1), r(regRIS, 0), after(1900 * time.Millisecond),
		}), 2, 0},
		{"pinging every half period never fires", 0, cat(
			ping(999), []step{after(900 * time.Millisecond)},
			ping(999), []step{after(900 * time.Millisecond)},
			ping(999), []step{after(900 * time.Millisecond)},
		), 0, 0},
		{"MIS is RIS masked by INTEN", 0, cat(ping(999), []step{
			after(time.Second), w(regLock, unlockKey), w(regControl, ctrlResetEnable), r(regRIS, risInt), r(regMIS, 0),
		}), 1, 0},
		{"clearing INTEN freezes the counter", 0, cat(ping(999), []step{
			after(400 * time.Millisecond), w(regLock, unlockKey), w(regControl, 0), after(10 * time.Second), r(regValue, 600),
		}), 0, 0},
		{"lock ignores writes", 0, []step{
			w(regLock, 1), r(regLock, lockedBit), w(regLoad, 5), w(regControl, ctrlMask), r(regLoad, loadReset), r(regControl, 0),
			w(regLock, unlockKey), r(regLock, 0), w(regLoad, 5), r(regLoad, 5),
		}, 0, 0},
		{"any other lock value locks", 0, []step{w(regLock, unlockKey+1), r(regLock, lockedBit)}, 0, 0},
		{"load write reloads a running counter", 0, cat(ping(999), []step{
			after(800 * time.Millisecond), w(regLock, unlockKey), w(regLoad, 1999), r(regValue, 1999), after(1900 * time.Millisecond), r(regRIS, 0),
		}), 0, 0},
		{"hole reads zero and ignores writes", 0, []step{r(0x100, 0), w(0x100, 7), r(0x100, 0), r(regITCR, 0), r(regITOP, 0)}, 0, 0},
		{"boot arms both stages", 4 * time.Second, []step{
			r(regControl, ctrlMask), r(regLoad, 1999), after(2 * time.Second), r(regRIS, risInt), after(2 * time.Second),
		}, 1, 1},
		{"reset is final", 0, cat(ping(0), []step{after(10 * time.Millisecond), r(regValue, 0)}, ping(999), []step{after(10 * time.Second)}), 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewFakeClock()
			irq := &countIRQ{}
			var expired atomic.Int32
			d := NewSP805(SP805Config{Rate: rate, IRQ: irq, Expired: func() { expired.Add(1) }, Boot: tt.boot, Clock: c})
			defer d.Close()
			run(t, d, c, tt.seq)
			if got := irq.n.Load(); got != tt.wantIRQ {
				t.Errorf("interrupts = %d, want %d", got, tt.wantIRQ)
			}
			if got := expired.Load(); got != tt.wantExpiry {
				t.Errorf("resets = %d, want %d", got, tt.wantExpiry)
			}
		})
	}
}

// TestSP805LinuxTimeout follows sp805_wdt's arithmetic: a load of
// rate/2*timeout-1 resets the guest timeout seconds after the last ping.
func TestSP805LinuxTimeout(t *testing.T) {
	const rate24 = 24000000
	for _, timeout := range []uint32{1, 10, 60} {
		c := NewFakeClock()
		var at time.Duration
		start := c.Now()
		d := NewSP805(SP805Config{Rate: rate24, Expired: func() { at = c.Now().Sub(start) }, Clock: c})
		for _, s := range []step{w(regLock, unlockKey), w(regLoad, rate24/2*timeout-1), w(regIntClr, 1), w(regControl, ctrlMask), w(regLock, 1)} {
			run(t, d, c, []step{s})
		}
		c.Advance(time.Duration(timeout+1) * time.Second)
		if want := time.Duration(timeout) * time.Second; at != want {
			t.Errorf("timeout %ds: reset after %v, want %v", timeout, at, want)
		}
		d.Close()
	}
}

func TestPort(t *testing.T) {
	const period = 100 * time.Millisecond
	tests := []struct {
		name       string
		boot       time.Duration
		seq        []step
		wantExpiry int32
	}{
		{"reset state: stopped, countdown at max, reboot set", 0, []step{
			r(PortCountdown, 50), r(PortRemaining, 50), rb(PortControl, ControlReboot), rb(PortStatus, 0),
		}, 0},
		{"stopped never expires", 0, []step{after(time.Hour)}, 0},
		{"countdown write is clamped to min and max", 0, []step{
			w(PortCountdown, 0), r(PortCountdown, 2), w(PortCountdown, 1000), r(PortCountdown, 50), w(PortCountdown, 7), r(PortCountdown, 7),
		}, 0},
		{"start runs the countdown", 0, []step{
			w(PortCountdown, 10), wb(PortControl, ControlRunning), rb(PortControl, ControlRunning|ControlReboot),
			after(300 * time.Millisecond), r(PortRemaining, 7), after(700 * time.Millisecond),
		}, 1},
		{"ping reloads", 0, []step{
			w(PortCountdown, 10), wb(PortControl, ControlRunning), after(900 * time.Millisecond), wb(PortPing, PingValue),
			r(PortRemaining, 10), after(900 * time.Millisecond), wb(PortPing, PingValue), after(900 * time.Millisecond),
		}, 0},
		{"ping of another value does nothing", 0, []step{
			w(PortCountdown, 10), wb(PortControl, ControlRunning), after(900 * time.Millisecond), wb(PortPing, 2), after(100 * time.Millisecond),
		}, 1},
		{"stop cancels", 0, []step{
			w(PortCountdown, 10), wb(PortControl, ControlRunning), after(900 * time.Millisecond), wb(PortControl, 0),
			rb(PortControl, ControlReboot), after(time.Hour),
		}, 0},
		{"setting the countdown does not reload a running one", 0, []step{
			w(PortCountdown, 10), wb(PortControl, ControlRunning), after(500 * time.Millisecond), w(PortCountdown, 40),
			r(PortRemaining, 5), after(500 * time.Millisecond),
		}, 1},
		{"SET_REBOOT's preserved write keeps it running", 0, []step{
			w(PortCountdown, 10), wb(PortControl, ControlRunning), wb(PortControl, ControlRunning|ControlReboot),
			rb(PortControl, ControlRunning|ControlReboot), after(time.Second),
		}, 1},
		{"boot arms it before the OS", 3 * time.Second, []step{
			rb(PortControl, ControlRunning|ControlReboot), r(PortRemaining, 30), after(3 * time.Second), r(PortRemaining, 0),
		}, 1},
		{"expiry is final", 0, []step{
			w(PortCountdown, 2), wb(PortControl, ControlRunning), after(time.Second), wb(PortPing, PingValue), after(time.Hour),
		}, 1},
		{"hole reads zero", 0, []step{r(0xc, 0), wb(PortStatus, 0), rb(PortStatus, 0)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewFakeClock()
			var expired atomic.Int32
			d := NewPort(PortConfig{Period: period, MinCount: 2, MaxCount: 50, Expired: func() { expired.Add(1) }, Boot: tt.boot, Clock: c})
			defer d.Close()
			run(t, d, c, tt.seq)
			if got := expired.Load(); got != tt.wantExpiry {
				t.Errorf("expiries = %d, want %d", got, tt.wantExpiry)
			}
		})
	}
}

// TestHostClock runs an SP805 on the host's clock: a 20 ms timeout fires.
func TestHostClock(t *testing.T) {
	done := make(chan struct{})
	d := NewSP805(SP805Config{Rate: rate, Expired: func() { close(done) }})
	defer d.Close()
	le := binary.LittleEndian
	d.Write(regLoad, le.AppendUint32(nil, 9))
	d.Write(regControl, le.AppendUint32(nil, ctrlMask))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an SP805 with a 20 ms timeout did not reset within 5 s")
	}
}
