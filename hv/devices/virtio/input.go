package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// virtio-input (spec §5.8): a keyboard or a single-touch screen that
// the host feeds with Linux input events (include/uapi/linux/input.h and
// input-event-codes.h), one struct virtio_input_event per eventq buffer.
//
// Bounds: at most maxInputPending events wait for eventq buffers; a
// report that would pass that is dropped whole (the host's Key or Touch
// returns ErrInputFull).

// virtio-input queues (spec §5.8.2).
const (
	inputEventQueue  = 0
	inputStatusQueue = 1
)

// Configuration selectors (spec §5.8.4, enum virtio_input_config_select).
const (
	inputCfgUnset    = 0x00
	inputCfgIDName   = 0x01
	inputCfgIDSerial = 0x02
	inputCfgIDDevids = 0x03
	inputCfgPropBits = 0x10
	inputCfgEVBits   = 0x11
	inputCfgAbsInfo  = 0x12
)

// struct virtio_input_config (spec §5.8.4): select, subsel, size,
// reserved[5], then a 128-byte union.
const (
	inputCfgOffSelect = 0
	inputCfgOffSubsel = 1
	inputCfgOffSize   = 2
	inputCfgOffUnion  = 8
	inputCfgUnionSize = 128
	inputConfigSize   = inputCfgOffUnion + inputCfgUnionSize
)

// inputEventSize is struct virtio_input_event: type u16, code u16, value u32.
const inputEventSize = 8

// Linux input event types and codes (include/uapi/linux/input-event-codes.h).
const (
	evSyn = 0x00
	evKey = 0x01
	evAbs = 0x03
	evLed = 0x11
	evRep = 0x14

	synReport  = 0
	absX       = 0x00
	absY       = 0x01
	btnTouch   = 0x14a
	ledNumL    = 0x00
	ledCapsL   = 0x01
	ledScrollL = 0x02

	inputPropDirect = 0x01 // INPUT_PROP_DIRECT: a touch screen, not a pad
	busVirtual      = 0x06 // BUS_VIRTUAL (include/uapi/linux/input.h)

	// MaxKeyCode is the highest key code a Keyboard sends: the keys of
	// a full PC keyboard and its media keys (KEY_ESC 1 to 255).
	MaxKeyCode = 0xff
)

// maxInputPending bounds the events held while the guest posts no
// eventq buffers: a few seconds of typing.
const maxInputPending = 256

var (
	// ErrInputFull is returned when a report is dropped because the
	// guest is not taking events.
	ErrInputFull = errors.New("input events dropped: the guest is not taking them")
	// ErrInputNoDriver is returned for an event while no driver runs the
	// device: it is dropped, not replayed at the next boot.
	ErrInputNoDriver = errors.New("input event dropped: no driver has the device")
	// ErrInputCode is returned for a key or position the device does not
	// announce.
	ErrInputCode = errors.New("input event outside what the device announces")
)

// Input is a virtio-input device: a keyboard (NewKeyboard) or a touch
// screen (NewTouchscreen).
type Input struct {
	workerGuard
	name, serial  string
	product       uint16
	props         []byte           // PROP_BITS bitmap
	evBits        map[uint8][]byte // EV_BITS bitmaps by event type
	abs           map[uint8][5]uint32
	width, height uint32 // a touch screen's coordinates: [0, width) × [0, height)

	// mu guards everything below. Lock order: MMIO.mu before Input.mu.
	mu      sync.Mutex
	sel     uint8
	subsel  uint8
	events  *Queue
	status  *Queue
	chain   Chain
	pending []byte // whole events, inputEventSize bytes each
}

func setBit(b []byte, bit int) { b[bit/8] |= 1 << (bit % 8) }

// NewKeyboard returns a keyboard with every key from 1 to MaxKeyCode,
// autorepeat and the three lock LEDs.
func NewKeyboard() *Input {
	keys := make([]byte, MaxKeyCode/8+1)
	for k := 1; k <= MaxKeyCode; k++ {
		setBit(keys, k)
	}
	leds := make([]byte, 1)
	setBit(leds, ledNumL)
	setBit(leds, ledCapsL)
	setBit(leds, ledScrollL)
	return &Input{
		name: "Tandem virtio keyboard", serial: "tandem-keyboard", product: 1,
		evBits: map[uint8][]byte{evKey: keys, evLed: leds, evRep: {0}},
	}
}

// NewTouchscreen returns a single-touch screen whose coordinates are the
// pixels of a width×height display.
func NewTouchscreen(width, height int) (*Input, error) {
	if width < 1 || height < 1 || width > MaxDisplayWidth || height > MaxDisplayHeight {
		return nil, fmt.Errorf("touch screen of %dx%d: %w: from 1x1 to %dx%d", width, height, ErrDisplaySize, MaxDisplayWidth, MaxDisplayHeight)
	}
	keys := make([]byte, btnTouch/8+1)
	setBit(keys, btnTouch)
	axes := make([]byte, 1)
	setBit(axes, absX)
	setBit(axes, absY)
	props := make([]byte, 1)
	setBit(props, inputPropDirect)
	return &Input{
		name: "Tandem virtio touchscreen", serial: "tandem-touchscreen", product: 2,
		props:  props,
		evBits: map[uint8][]byte{evKey: keys, evAbs: axes},
		// struct virtio_input_absinfo: min, max, fuzz, flat, res.
		abs:   map[uint8][5]uint32{absX: {0, uint32(width - 1), 0, 0, 0}, absY: {0, uint32(height - 1), 0, 0, 0}},
		width: uint32(width), height: uint32(height),
	}, nil
}

func (in *Input) DeviceID() uint32 { return IDInput }
func (in *Input) Name() string     { return "virtio-input" }
func (in *Input) Features() uint64 { return 0 }
func (in *Input) QueueMax() []uint16 {
	return []uint16{defaultQueueMax, defaultQueueMax}
}

// config returns the configuration space for the driver's current
// select and subsel (spec §5.8.5: size is 0 for what the device does not
// have). The caller holds mu.
func (in *Input) config() [inputConfigSize]byte {
	var c [inputConfigSize]byte
	c[inputCfgOffSelect], c[inputCfgOffSubsel] = in.sel, in.subsel
	u := c[inputCfgOffUnion:]
	var n int
	switch in.sel {
	case inputCfgIDName:
		if in.subsel == 0 {
			n = copy(u, in.name)
		}
	case inputCfgIDSerial:
		if in.subsel == 0 {
			n = copy(u, in.serial)
		}
	case inputCfgIDDevids:
		if in.subsel == 0 {
			for i, v := range []uint16{busVirtual, 0, in.product, 1} {
				binary.LittleEndian.PutUint16(u[2*i:], v)
			}
			n = 8
		}
	case inputCfgPropBits:
		if in.subsel == 0 {
			n = copy(u, in.props)
		}
	case inputCfgEVBits:
		n = copy(u, in.evBits[in.subsel])
	case inputCfgAbsInfo:
		if a, ok := in.abs[in.subsel]; ok {
			for i, v := range a {
				binary.LittleEndian.PutUint32(u[4*i:], v)
			}
			n = 20
		}
	}
	c[inputCfgOffSize] = byte(n)
	return c
}

// ReadConfig reads struct virtio_input_config.
func (in *Input) ReadConfig(off uint64, data []byte) {
	in.mu.Lock()
	c := in.config()
	in.mu.Unlock()
	readConfigBytes(c[:], off, data)
}

// WriteConfig takes select and subsel; the rest is the device's.
func (in *Input) WriteConfig(off uint64, data []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for i, b := range data {
		switch off + uint64(i) {
		case inputCfgOffSelect:
			in.sel = b
		case inputCfgOffSubsel:
			in.subsel = b
		}
	}
}

func (in *Input) Activate(features uint64, queues []*Queue) error {
	if queues[inputEventQueue] == nil || queues[inputStatusQueue] == nil {
		return errors.New("event queue 0 and status queue 1 must both be set up")
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.events, in.status = queues[inputEventQueue], queues[inputStatusQueue]
	return nil
}

// Reset drops the events not yet delivered: they were meant for a driver
// that is gone.
func (in *Input) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.events, in.status = nil, nil
	in.pending = in.pending[:0]
	in.sel, in.subsel = inputCfgUnset, 0
}

func (in *Input) Close() error { in.Reset(); return nil }

func (in *Input) Notify(q int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	switch q {
	case inputEventQueue:
		in.deliverLocked()
	case inputStatusQueue:
		in.drainStatusLocked()
	}
}

// drainStatusLocked takes the driver's status events (LED changes) and
// returns their buffers: nothing on the host shows them. The caller
// holds mu.
func (in *Input) drainStatusLocked() {
	q := in.status
	if q == nil {
		return
	}
	for {
		ok, err := q.Pop(&in.chain)
		if err != nil || !ok {
			break
		}
		q.Push(in.chain.Head, 0)
	}
	q.Signal()
}

// deliverLocked puts pending events into the guest's eventq buffers, one
// event a buffer. The caller holds mu.
func (in *Input) deliverLocked() {
	q := in.events
	if q == nil || len(in.pending) == 0 {
		return
	}
	sent := 0
	for sent < len(in.pending) {
		ok, err := q.Pop(&in.chain)
		if err != nil || !ok {
			break
		}
		if in.chain.WritableLen() < inputEventSize {
			// The driver must post buffers that hold an event (spec
			// §5.8.6.1): the queue is malformed.
			q.Fail(fmt.Errorf("event buffer of %d writable bytes, less than the %d of an event", in.chain.WritableLen(), inputEventSize))
			break
		}
		scatter(in.chain.Writable, 0, in.pending[sent:sent+inputEventSize])
		q.Push(in.chain.Head, inputEventSize)
		sent += inputEventSize
	}
	in.pending = in.pending[:copy(in.pending, in.pending[sent:])]
	q.Signal()
}

// send queues a report (events ending with SYN_REPORT) and delivers what
// the guest has room for.
func (in *Input) send(evs ...[3]uint32) (err error) {
	defer in.containErr(&err)
	if in.failed() {
		return errDeviceFailed
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.events == nil {
		return ErrInputNoDriver
	}
	evs = append(evs, [3]uint32{evSyn, synReport, 0})
	if len(in.pending)+len(evs)*inputEventSize > maxInputPending*inputEventSize {
		return ErrInputFull
	}
	for _, e := range evs {
		var b [inputEventSize]byte
		binary.LittleEndian.PutUint16(b[0:], uint16(e[0]))
		binary.LittleEndian.PutUint16(b[2:], uint16(e[1]))
		binary.LittleEndian.PutUint32(b[4:], e[2])
		in.pending = append(in.pending, b[:]...)
	}
	in.deliverLocked()
	return nil
}

// Key sends a key press (down) or release of a Linux key code (KEY_A is
// 30) on a keyboard. It may be called from any goroutine.
func (in *Input) Key(code uint16, down bool) error {
	keys := in.evBits[evKey]
	if in.abs != nil || code == 0 || int(code) >= 8*len(keys) || keys[code/8]&(1<<(code%8)) == 0 {
		return fmt.Errorf("key %d on the %s: %w", code, in.name, ErrInputCode)
	}
	return in.send([3]uint32{evKey, uint32(code), boolValue(down)})
}

// Touch moves the touch point to (x, y), in pixels of the display, and
// reports whether it touches (down) on a touch screen. It may be called
// from any goroutine.
func (in *Input) Touch(x, y int, down bool) error {
	if in.abs == nil || x < 0 || y < 0 || x >= int(in.width) || y >= int(in.height) {
		return fmt.Errorf("touch at (%d, %d) on the %s: %w", x, y, in.name, ErrInputCode)
	}
	return in.send([3]uint32{evAbs, absX, uint32(x)}, [3]uint32{evAbs, absY, uint32(y)},
		[3]uint32{evKey, btnTouch, boolValue(down)})
}

func boolValue(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
