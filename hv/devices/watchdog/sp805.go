package watchdog

import (
	"math"
	"math/bits"
	"sync"
	"time"

	"github.com/tandem-hv/tandem/hv/devices"
)

// SP805 registers (ARM Watchdog Module (SP805) Technical Reference Manual,
// ARM DDI 0270B, section 3.2, table 3-1).
const (
	regLoad    = 0x000 // WdogLoad: the count the counter restarts from
	regValue   = 0x004 // WdogValue: the counter (read only)
	regControl = 0x008 // WdogControl: INTEN, RESEN
	regIntClr  = 0x00c // WdogIntClr: any write clears the interrupt and reloads
	regRIS     = 0x010 // WdogRIS: raw interrupt status
	regMIS     = 0x014 // WdogMIS: RIS masked by INTEN
	regLock    = 0xc00 // WdogLock: write access to the other registers
	regITCR    = 0xf00 // WdogITCR: integration test control (not modelled)
	regITOP    = 0xf04 // WdogITOP: integration test output (not modelled)
	regID      = 0xfe0 // WdogPeriphID0-3, WdogPCellID0-3: 0xfe0-0xffc

	// SP805Size is the register window (4 KiB).
	SP805Size = 0x1000

	ctrlIntEnable   = 1 << 0 // INTEN: runs the counter and enables WDOGINT
	ctrlResetEnable = 1 << 1 // RESEN: enables WDOGRES
	ctrlMask        = ctrlIntEnable | ctrlResetEnable
	risInt          = 1 << 0

	// unlockKey is the one WdogLock value that enables writes; any other
	// value disables them. WdogLock reads 1 while writes are disabled.
	unlockKey = 0x1acce551
	lockedBit = 1

	loadReset = 0xffffffff // WdogLoad and WdogValue at reset
)

// sp805ID holds WdogPeriphID0-3 and WdogPCellID0-3 (DDI 0270B §3.3): part
// 0x805, designer ARM (0x41), revision 1, PrimeCell id 0xb105f00d. Linux's
// AMBA bus matches sp805_wdt on 0x00141805.
var sp805ID = [8]uint8{0x05, 0x18, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

// SP805Config is what an SP805 needs from the VMM.
type SP805Config struct {
	// Rate is WDOGCLK in Hz: the device tree's clock for the counter.
	Rate uint64
	// IRQ is WDOGINT, raised on the first expiry.
	IRQ devices.Interrupt
	// Expired is called, once, when WDOGRES is asserted: the counter
	// reached zero a second time with the interrupt not cleared.
	Expired func()
	// Boot, when above 0, starts the watchdog at power-on, as firmware
	// that arms it before the OS would: both stages together take Boot.
	Boot time.Duration
	// Clock is the time base; nil is the host's clock.
	Clock Clock
}

// SP805 is one ARM SP805 watchdog. It implements bus.Device for the MMIO
// bus.
//
// The counter runs while INTEN is set. It counts WdogLoad+1 ticks of
// WDOGCLK down to zero; at zero it sets the interrupt and reloads. If the
// interrupt is still set at the next zero and RESEN is set, the model
// asserts reset: Expired is called and the counter stops. Writing
// WdogLoad, WdogIntClr, or setting INTEN reloads the counter. Linux's
// sp805_wdt pings by unlocking, writing WdogLoad and WdogIntClr, and
// locking again; it programs WdogLoad for half its timeout, since the
// timeout spans both stages.
type SP805 struct {
	cfg   SP805Config
	clock Clock
	// Guard contains a panic in the counter timer's callback.
	devices.Guard

	// mu protects the registers, the countdown and the timer.
	mu     sync.Mutex
	load   uint32
	ctrl   uint32
	ris    uint32
	locked bool
	// frozen is WdogValue while the counter is stopped.
	frozen uint32
	// zeroAt is when the running counter reaches zero.
	zeroAt time.Time
	timer  Timer
	gen    uint64 // counts arms, so a stale timer does nothing
	reset  bool   // WDOGRES asserted: the model has stopped for good
	closed bool
}

// NewSP805 returns an SP805 in its reset state, or already running when
// cfg.Boot is set.
func NewSP805(cfg SP805Config) *SP805 {
	if cfg.Rate == 0 {
		cfg.Rate = 1
	}
	w := &SP805{cfg: cfg, clock: cfg.Clock, load: loadReset, frozen: loadReset}
	if w.clock == nil {
		w.clock = HostClock{}
	}
	if cfg.Boot > 0 {
		ticks := mulDiv(uint64(cfg.Boot/2), cfg.Rate, uint64(time.Second))
		w.load = uint32(min(max(ticks, 1)-1, loadReset))
		w.ctrl = ctrlMask
		w.mu.Lock()
		w.reloadLocked()
		w.mu.Unlock()
	}
	return w
}

// mulDiv returns a*b/c, saturating instead of overflowing.
func mulDiv(a, b, c uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi >= c {
		return math.MaxUint64
	}
	q, _ := bits.Div64(hi, lo, c)
	return q
}

// period is how long the counter takes from WdogLoad to zero.
func (w *SP805) period() time.Duration {
	return time.Duration(mulDiv(uint64(w.load)+1, uint64(time.Second), w.cfg.Rate))
}

// valueLocked is WdogValue. Caller holds mu.
func (w *SP805) valueLocked() uint32 {
	if w.ctrl&ctrlIntEnable == 0 || w.reset {
		return w.frozen
	}
	left := w.zeroAt.Sub(w.clock.Now())
	if left <= 0 {
		return 0
	}
	return uint32(min(mulDiv(uint64(left), w.cfg.Rate, uint64(time.Second)), uint64(w.load)))
}

// reloadLocked restarts the counter from WdogLoad if it runs. Caller
// holds mu.
func (w *SP805) reloadLocked() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	w.gen++
	if w.ctrl&ctrlIntEnable == 0 || w.reset || w.closed {
		return
	}
	d := w.period()
	w.zeroAt = w.clock.Now().Add(d)
	gen := w.gen
	w.timer = w.clock.AfterFunc(d, func() { w.zero(gen) })
}

// zero is the counter reaching zero.
func (w *SP805) zero(gen uint64) {
	defer w.Contain("SP805 watchdog")
	if w.Failed() {
		return
	}
	w.mu.Lock()
	if gen != w.gen || w.reset || w.closed {
		w.mu.Unlock()
		return
	}
	var raise, expire bool
	switch {
	case w.ris == 0:
		w.ris = risInt
		raise = true
		w.reloadLocked()
	case w.ctrl&ctrlResetEnable != 0:
		w.reset = true
		w.frozen = 0
		expire = true
	default:
		w.reloadLocked()
	}
	w.mu.Unlock()
	if raise && w.cfg.IRQ != nil {
		w.cfg.IRQ.Trigger()
	}
	if expire && w.cfg.Expired != nil {
		w.cfg.Expired()
	}
}

// Read implements bus.Device.
func (w *SP805) Read(off uint64, data []byte) {
	clear(data)
	if len(data) == 0 || w.Failed() {
		return
	}
	w.mu.Lock()
	var v uint32
	switch {
	case off == regLoad:
		v = w.load
	case off == regValue:
		v = w.valueLocked()
	case off == regControl:
		v = w.ctrl
	case off == regRIS:
		v = w.ris
	case off == regMIS:
		if w.ctrl&ctrlIntEnable != 0 {
			v = w.ris
		}
	case off == regLock:
		if w.locked {
			v = lockedBit
		}
	case off >= regID && off < SP805Size && off%4 == 0:
		v = uint32(sp805ID[(off-regID)/4])
	}
	w.mu.Unlock()
	for i := range data {
		if i < 4 {
			data[i] = byte(v >> (8 * i))
		}
	}
}

// Write implements bus.Device. While WdogLock is locked, writes to every
// other register are ignored.
func (w *SP805) Write(off uint64, data []byte) {
	if len(data) == 0 || w.Failed() {
		return
	}
	var v uint32
	for i := 0; i < len(data) && i < 4; i++ {
		v |= uint32(data[i]) << (8 * i)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if off == regLock {
		w.locked = v != unlockKey
		return
	}
	if w.locked || w.reset {
		return
	}
	switch off {
	case regLoad:
		w.load = v
		w.frozen = v
		w.reloadLocked()
	case regControl:
		was := w.ctrl
		if was&ctrlIntEnable != 0 && v&ctrlIntEnable == 0 {
			w.frozen = w.valueLocked() // the counter stops where it is
		}
		w.ctrl = v & ctrlMask
		if (was^w.ctrl)&ctrlIntEnable != 0 {
			w.reloadLocked() // starts the counter from WdogLoad, or stops it
		}
	case regIntClr:
		w.ris = 0
		w.reloadLocked()
	}
}

// Close stops the counter.
func (w *SP805) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	w.reloadLocked()
	return nil
}
