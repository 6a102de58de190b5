// Package pl031 models an ARM PrimeCell real-time clock (PL031): a
// seconds counter read from the host's clock, with a match interrupt, as
// Linux's rtc-pl031 driver uses it.
//
// Registers follow the PrimeCell Real Time Clock (PL031) Technical
// Reference Manual (ARM DDI 0224C), section 3.
//
// The interrupt line is edge-triggered (an irqfd; see package pl011 for
// why): an edge is sent when the masked status RTCMIS becomes set. The
// match interrupt is level in the PL031 and stays set until RTCICR
// clears it; Linux's handler clears it every time, so one edge per match
// is what the driver sees from a level too.
//
// # Bounds
//
// The RTC holds nothing that grows: a write to RTCMR or RTCLR replaces the
// one match timer, and the wait until a match, at most 2^32 seconds, fits
// a time.Duration.
package pl031

import (
	"sync"
	"time"

	"github.com/tandem-hv/tandem/hv/devices"
)

// Register offsets (DDI 0224C table 3-1).
const (
	regDR   = 0x000 // data: the counter (read only)
	regMR   = 0x004 // match
	regLR   = 0x008 // load: sets the counter
	regCR   = 0x00c // control: bit 0 starts the counter
	regIMSC = 0x010 // interrupt mask set/clear
	regRIS  = 0x014 // raw interrupt status
	regMIS  = 0x018 // masked interrupt status
	regICR  = 0x01c // interrupt clear (write only)
	regID   = 0xfe0 // RTCPeriphID0-3, RTCPCellID0-3: 0xfe0-0xffc

	// Size is the register window (4 KiB).
	Size = 0x1000

	intMatch = 1 // the only interrupt: RTCDR reached RTCMR
	crStart  = 1
)

// id holds RTCPeriphID0-3 and RTCPCellID0-3: part 0x031, designer ARM,
// revision 1, PrimeCell id 0xb105f00d. Linux's AMBA bus matches the
// driver on 0x00041031.
var id = [8]uint8{0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1}

// RTC is one PL031. It implements bus.Device for the MMIO bus.
type RTC struct {
	irq devices.Interrupt
	now func() time.Time
	// Guard contains a panic in the match timer's callback.
	devices.Guard

	// mu protects the registers and the match timer.
	mu sync.Mutex
	// offset is what the guest's counter is ahead of the host's clock,
	// in seconds: RTCLR sets it.
	offset int64
	mr     uint32
	imsc   uint32
	ris    uint32
	timer  *time.Timer
	closed bool
}

// New returns an RTC that counts from the host's clock (UTC seconds since
// the epoch, as Linux expects of a PL031) and raises irq on a match. now
// is the clock; nil means time.Now.
func New(irq devices.Interrupt, now func() time.Time) *RTC {
	if now == nil {
		now = time.Now
	}
	return &RTC{irq: irq, now: now}
}

// counter is RTCDR. Caller holds mu.
func (r *RTC) counter() uint32 { return uint32(r.now().Unix() + r.offset) }

// Read implements bus.Device.
func (r *RTC) Read(off uint64, data []byte) {
	clear(data)
	if len(data) == 0 || r.Failed() {
		return
	}
	r.mu.Lock()
	var v uint32
	switch {
	case off == regDR:
		v = r.counter()
	case off == regMR:
		v = r.mr
	case off == regLR:
		v = r.counter()
	case off == regCR:
		v = crStart // the counter always runs, as in QEMU's model
	case off == regIMSC:
		v = r.imsc
	case off == regRIS:
		v = r.ris
	case off == regMIS:
		v = r.ris & r.imsc
	case off >= regID && off < Size && off%4 == 0:
		v = uint32(id[(off-regID)/4])
	}
	r.mu.Unlock()
	for i := range data {
		if i < 4 {
			data[i] = byte(v >> (8 * i))
		}
	}
}

// Write implements bus.Device.
func (r *RTC) Write(off uint64, data []byte) {
	if len(data) == 0 || r.Failed() {
		return
	}
	var v uint32
	for i := 0; i < len(data) && i < 4; i++ {
		v |= uint32(data[i]) << (8 * i)
	}
	r.mu.Lock()
	before := r.ris & r.imsc
	switch off {
	case regMR:
		r.mr = v
		r.armLocked()
	case regLR:
		r.offset = int64(v) - r.now().Unix()
		r.armLocked()
	case regIMSC:
		r.imsc = v & intMatch
	case regICR:
		r.ris &^= v & intMatch
	}
	raise := r.ris&r.imsc&^before != 0
	r.mu.Unlock()
	if raise {
		r.trigger()
	}
}

func (r *RTC) trigger() {
	if r.irq != nil {
		r.irq.Trigger()
	}
}

// armLocked (re)starts the match timer for the current RTCMR. The
// counter wraps at 2^32 seconds, so a match is always at most that far
// ahead. Caller holds mu.
func (r *RTC) armLocked() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if r.closed {
		return
	}
	wait := time.Duration(r.mr-r.counter()) * time.Second
	r.timer = time.AfterFunc(wait, r.match)
}

// match sets the match interrupt once the counter has reached RTCMR.
func (r *RTC) match() {
	defer r.Contain("PL031 RTC")
	if r.Failed() {
		return
	}
	r.mu.Lock()
	if d := int32(r.counter() - r.mr); r.closed || d < 0 || d > 1 {
		// The guest moved the counter or the match since (armLocked
		// has made a new timer), or this timer is that far late.
		r.mu.Unlock()
		return
	}
	before := r.ris & r.imsc
	r.ris |= intMatch
	raise := r.ris&r.imsc&^before != 0
	r.mu.Unlock()
	if raise {
		r.trigger()
	}
}

// Close stops the match timer.
func (r *RTC) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	return nil
}
