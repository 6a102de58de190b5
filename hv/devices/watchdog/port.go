package watchdog

import (
	"math"
	"sync"
	"time"

	"github.com/tandem-hv/tandem/hv/devices"
)

// The port watchdog's registers, as offsets from its base port. It is
// made for an ACPI WDAT table (Microsoft's Hardware Watchdog Timers
// Design Specification; Linux's drivers/watchdog/wdat_wdt.c): each WDAT
// action is one read or write of one register, so no action needs a
// read-modify-write except SET_REBOOT.
const (
	// PortCountdown (32 bits, read/write) is the count, in periods, that
	// a start or a ping loads: SET_COUNTDOWN, GET_COUNTDOWN. Writes are
	// clamped to [MinCount, MaxCount].
	PortCountdown = 0x0
	// PortRemaining (32 bits, read only) is the count left:
	// GET_CURRENT_COUNTDOWN.
	PortRemaining = 0x4
	// PortControl (8 bits): bit 0 runs the watchdog (SET_RUNNING_STATE,
	// SET_STOPPED_STATE, GET_RUNNING_STATE, GET_STOPPED_STATE); bit 1 says
	// an expiry resets the guest (GET_REBOOT, SET_REBOOT): it always
	// reads 1, as nothing else is modelled.
	PortControl = 0x8
	// PortPing (8 bits, write only): writing PingValue reloads the count
	// (the WDAT RESET action).
	PortPing = 0x9
	// PortStatus (8 bits): bit 0 would say the last reset was the
	// watchdog's (GET_STATUS); writing 0 clears it (SET_STATUS). A guest
	// always starts in a fresh VMM, so it reads 0.
	PortStatus = 0xa
	// PortSize is the span of ports the device decodes.
	PortSize = 0x10

	ControlRunning = 1 << 0
	ControlReboot  = 1 << 1
	// ControlRebootShift is bit 1's position, the WDAT entries' bit offset.
	ControlRebootShift = 1
	PingValue          = 1
	StatusFired        = 1 << 0
)

// PortConfig is what a port watchdog needs from the VMM.
type PortConfig struct {
	// Period is one count (the WDAT's Timer Period).
	Period time.Duration
	// MinCount and MaxCount bound the countdown (the WDAT's Min Count and
	// Max Count); the countdown starts at MaxCount.
	MinCount, MaxCount uint32
	// Expired is called, once, when the count runs out.
	Expired func()
	// Boot, when above 0, starts the watchdog at power-on with this long
	// to its expiry, as firmware that arms it before the OS would.
	Boot time.Duration
	// Clock is the time base; nil is the host's clock.
	Clock Clock
}

// Port is a port-I/O watchdog: a countdown in periods that a start or a
// ping reloads and whose end calls Expired. It implements bus.Device for
// the port bus.
type Port struct {
	cfg   PortConfig
	clock Clock
	// Guard contains a panic in the countdown timer's callback.
	devices.Guard

	// mu protects the fields below.
	mu        sync.Mutex
	countdown uint32
	running   bool
	expireAt  time.Time
	timer     Timer
	gen       uint64
	fired     bool
	closed    bool
}

// NewPort returns a port watchdog, stopped unless cfg.Boot is set.
func NewPort(cfg PortConfig) *Port {
	if cfg.Period <= 0 {
		cfg.Period = time.Second
	}
	cfg.MinCount = max(cfg.MinCount, 1)
	cfg.MaxCount = max(cfg.MaxCount, cfg.MinCount)
	p := &Port{cfg: cfg, clock: cfg.Clock, countdown: cfg.MaxCount}
	if p.clock == nil {
		p.clock = HostClock{}
	}
	if cfg.Boot > 0 {
		p.mu.Lock()
		p.running = true
		p.armLocked(cfg.Boot)
		p.mu.Unlock()
	}
	return p
}

// armLocked (re)starts the countdown to expire after d, or stops it when
// the watchdog does not run. Caller holds mu.
func (p *Port) armLocked(d time.Duration) {
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.gen++
	if !p.running || p.fired || p.closed {
		return
	}
	p.expireAt = p.clock.Now().Add(d)
	gen := p.gen
	p.timer = p.clock.AfterFunc(d, func() { p.expire(gen) })
}

func (p *Port) reloadLocked() {
	p.armLocked(periods(p.countdown, p.cfg.Period))
}

// periods is n periods, saturating at the longest Duration rather than
// wrapping: the guest chooses n (up to MaxCount), and a count of 2^32-1
// periods of over two seconds each is longer than a Duration holds.
func periods(n uint32, period time.Duration) time.Duration {
	if period > 0 && time.Duration(n) > math.MaxInt64/period {
		return math.MaxInt64
	}
	return time.Duration(n) * period
}

func (p *Port) expire(gen uint64) {
	defer p.Contain("port watchdog")
	if p.Failed() {
		return
	}
	p.mu.Lock()
	if gen != p.gen || p.fired || p.closed {
		p.mu.Unlock()
		return
	}
	p.fired = true
	p.mu.Unlock()
	if p.cfg.Expired != nil {
		p.cfg.Expired()
	}
}

// remainingLocked is the count left. Caller holds mu.
func (p *Port) remainingLocked() uint32 {
	switch {
	case p.fired:
		return 0
	case !p.running:
		return p.countdown
	}
	left := p.expireAt.Sub(p.clock.Now())
	if left <= 0 {
		return 0
	}
	return uint32(min(int64(left/p.cfg.Period), int64(^uint32(0))))
}

// Read implements bus.Device.
func (p *Port) Read(off uint64, data []byte) {
	clear(data)
	if p.Failed() {
		return
	}
	p.mu.Lock()
	var v uint32
	switch off {
	case PortCountdown:
		v = p.countdown
	case PortRemaining:
		v = p.remainingLocked()
	case PortControl:
		v = ControlReboot
		if p.running {
			v |= ControlRunning
		}
	}
	p.mu.Unlock()
	for i := range data {
		if i < 4 {
			data[i] = byte(v >> (8 * i))
		}
	}
}

// Write implements bus.Device.
func (p *Port) Write(off uint64, data []byte) {
	if len(data) == 0 || p.Failed() {
		return
	}
	var v uint32
	for i := 0; i < len(data) && i < 4; i++ {
		v |= uint32(data[i]) << (8 * i)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fired {
		return
	}
	switch off {
	case PortCountdown:
		p.countdown = min(max(v, p.cfg.MinCount), p.cfg.MaxCount)
	case PortControl:
		run := v&ControlRunning != 0
		if run != p.running {
			p.running = run
			p.reloadLocked() // a start loads the countdown; a stop cancels it
		}
	case PortPing:
		if v&0xff == PingValue && p.running {
			p.reloadLocked()
		}
	case PortStatus:
		// Writing 0 clears a status that is never set.
	}
}

// Close stops the countdown.
func (p *Port) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.armLocked(0)
	return nil
}
