package virtio

import (
	"encoding/binary"
	"errors"
	"testing"
)

// readInputConfig selects (sel, subsel) and reads size and the union the
// way Linux's virtio_input driver does: select and subsel written as
// bytes, then size, then the data a byte at a time.
func readInputConfig(d *driver, sel, subsel uint8) []byte {
	d.bus.Write(d.mmioBase()+regConfig+inputCfgOffSelect, []byte{sel})
	d.bus.Write(d.mmioBase()+regConfig+inputCfgOffSubsel, []byte{subsel})
	var size [1]byte
	d.bus.Read(d.mmioBase()+regConfig+inputCfgOffSize, size[:])
	out := make([]byte, size[0])
	for i := range out {
		d.bus.Read(d.mmioBase()+regConfig+inputCfgOffUnion+uint64(i), out[i:i+1])
	}
	return out
}

// bits lists the bits set in a bitmap.
func bits(b []byte) []int {
	var out []int
	for i := 0; i < 8*len(b); i++ {
		if b[i/8]&(1<<(i%8)) != 0 {
			out = append(out, i)
		}
	}
	return out
}

func newTouch(t testing.TB, w, h int) *Input {
	in, err := NewTouchscreen(w, h)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func TestInputConfigAnswersLinuxQueries(t *testing.T) {
	absInfo := func(min, max uint32) []byte {
		b := make([]byte, 20)
		binary.LittleEndian.PutUint32(b[0:], min)
		binary.LittleEndian.PutUint32(b[4:], max)
		return b
	}
	devids := func(product uint16) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint16(b[0:], busVirtual)
		binary.LittleEndian.PutUint16(b[4:], product)
		binary.LittleEndian.PutUint16(b[6:], 1)
		return b
	}
	tests := []struct {
		name        string
		touch       bool
		sel, subsel uint8
		want        []byte // nil: check wantBits instead
		wantBits    []int
	}{
		{"keyboard ID_NAME", false, inputCfgIDName, 0, []byte("Tandem virtio keyboard"), nil},
		{"keyboard ID_SERIAL", false, inputCfgIDSerial, 0, []byte("tandem-keyboard"), nil},
		{"keyboard ID_DEVIDS", false, inputCfgIDDevids, 0, devids(1), nil},
		{"keyboard PROP_BITS is empty", false, inputCfgPropBits, 0, []byte{}, nil},
		{"keyboard EV_REP present", false, inputCfgEVBits, evRep, []byte{0}, nil},
		{"keyboard EV_LED: num, caps, scroll lock", false, inputCfgEVBits, evLed, nil, []int{ledNumL, ledCapsL, ledScrollL}},
		{"keyboard EV_ABS absent", false, inputCfgEVBits, evAbs, []byte{}, nil},
		{"keyboard EV_REL absent", false, inputCfgEVBits, 0x02, []byte{}, nil},
		{"keyboard has no ABS_INFO", false, inputCfgAbsInfo, absX, []byte{}, nil},
		{"unset selector", false, inputCfgUnset, 0, []byte{}, nil},
		{"unknown selector", false, 0x7f, 0, []byte{}, nil},
		{"ID_NAME with a subsel", false, inputCfgIDName, 1, []byte{}, nil},
		{"touch ID_NAME", true, inputCfgIDName, 0, []byte("Tandem virtio touchscreen"), nil},
		{"touch ID_DEVIDS", true, inputCfgIDDevids, 0, devids(2), nil},
		{"touch PROP_BITS: direct", true, inputCfgPropBits, 0, nil, []int{inputPropDirect}},
		{"touch EV_KEY: BTN_TOUCH only", true, inputCfgEVBits, evKey, nil, []int{btnTouch}},
		{"touch EV_ABS: X and Y", true, inputCfgEVBits, evAbs, nil, []int{absX, absY}},
		{"touch ABS_INFO X spans the width", true, inputCfgAbsInfo, absX, absInfo(0, 1279), nil},
		{"touch ABS_INFO Y spans the height", true, inputCfgAbsInfo, absY, absInfo(0, 719), nil},
		{"touch ABS_INFO of an axis it lacks", true, inputCfgAbsInfo, 0x2f, []byte{}, nil},
		{"touch EV_REP absent", true, inputCfgEVBits, evRep, []byte{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dev Device = NewKeyboard()
			if tt.touch {
				dev = newTouch(t, 1280, 720)
			}
			d := newDriver(t, dev)
			got := readInputConfig(d, tt.sel, tt.subsel)
			if tt.want != nil {
				if string(got) != string(tt.want) {
					t.Errorf("config(%#x, %#x) = %q, want %q", tt.sel, tt.subsel, got, tt.want)
				}
				return
			}
			if g := bits(got); len(g) != len(tt.wantBits) || !equalInts(g, tt.wantBits) {
				t.Errorf("config(%#x, %#x) bits = %v, want %v", tt.sel, tt.subsel, g, tt.wantBits)
			}
		})
	}
}

func equalInts(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

func TestInputKeyboardAnnouncesEveryKey(t *testing.T) {
	d := newDriver(t, NewKeyboard())
	got := bits(readInputConfig(d, inputCfgEVBits, evKey))
	if len(got) != MaxKeyCode || got[0] != 1 || got[len(got)-1] != MaxKeyCode {
		t.Errorf("EV_KEY bits = %d from %v, want keys 1 to %d", len(got), got[:min(3, len(got))], MaxKeyCode)
	}
}

// inputEvent is one struct virtio_input_event.
type inputEvent struct {
	typ, code uint16
	value     uint32
}

// postEventBuffers puts n 8-byte buffers on the event queue.
func postEventBuffers(d *driver, n int) []uint64 {
	var gpas []uint64
	for i := 0; i < n; i++ {
		a := d.allocate(inputEventSize)
		d.add(d.q[inputEventQueue], buf{a, inputEventSize, true})
		gpas = append(gpas, a)
	}
	d.kick(d.q[inputEventQueue])
	return gpas
}

// takeEvents reads the events the device delivered since the last call.
func takeEvents(t *testing.T, d *driver, bufs map[uint16]uint64) []inputEvent {
	var out []inputEvent
	for _, u := range d.takeUsed(d.q[inputEventQueue]) {
		if u.len != inputEventSize {
			t.Errorf("used length %d, want %d", u.len, inputEventSize)
		}
		b := d.read(bufs[uint16(u.id)], inputEventSize)
		out = append(out, inputEvent{binary.LittleEndian.Uint16(b), binary.LittleEndian.Uint16(b[2:]), binary.LittleEndian.Uint32(b[4:])})
	}
	return out
}

func TestInputEvents(t *testing.T) {
	syn := inputEvent{evSyn, synReport, 0}
	tests := []struct {
		name  string
		touch bool
		send  func(in *Input) error
		want  []inputEvent
	}{
		{"key A down", false, func(in *Input) error { return in.Key(30, true) }, []inputEvent{{evKey, 30, 1}, syn}},
		{"key A up", false, func(in *Input) error { return in.Key(30, false) }, []inputEvent{{evKey, 30, 0}, syn}},
		{"highest key", false, func(in *Input) error { return in.Key(MaxKeyCode, true) }, []inputEvent{{evKey, MaxKeyCode, 1}, syn}},
		{"touch down", true, func(in *Input) error { return in.Touch(100, 200, true) },
			[]inputEvent{{evAbs, absX, 100}, {evAbs, absY, 200}, {evKey, btnTouch, 1}, syn}},
		{"touch up at the far corner", true, func(in *Input) error { return in.Touch(1279, 719, false) },
			[]inputEvent{{evAbs, absX, 1279}, {evAbs, absY, 719}, {evKey, btnTouch, 0}, syn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := NewKeyboard()
			if tt.touch {
				in = newTouch(t, 1280, 720)
			}
			d := newDriver(t, in)
			d.start(allRingFeatures, 2, 8)
			bufs := map[uint16]uint64{}
			for i, a := range postEventBuffers(d, 8) {
				bufs[uint16(i)] = a
			}
			before := d.irq.n.Load()
			if err := tt.send(in); err != nil {
				t.Fatal(err)
			}
			got := takeEvents(t, d, bufs)
			if len(got) != len(tt.want) || !equalEvents(got, tt.want) {
				t.Errorf("events = %v, want %v", got, tt.want)
			}
			if d.irq.n.Load() == before {
				t.Errorf("no interrupt for the delivered events")
			}
		})
	}
}

func equalEvents(a, b []inputEvent) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInputHeldUntilBuffersArrive(t *testing.T) {
	in := NewKeyboard()
	d := newDriver(t, in)
	d.start(allRingFeatures, 2, 8)
	// Two reports of two events; one buffer now, three later.
	if err := in.Key(2, true); err != nil {
		t.Fatal(err)
	}
	if err := in.Key(2, false); err != nil {
		t.Fatal(err)
	}
	bufs := map[uint16]uint64{}
	for i, a := range postEventBuffers(d, 1) {
		bufs[uint16(i)] = a
	}
	if got := takeEvents(t, d, bufs); len(got) != 1 || got[0] != (inputEvent{evKey, 2, 1}) {
		t.Fatalf("with one buffer: events %v, want the key press alone", got)
	}
	for i, a := range postEventBuffers(d, 3) {
		bufs[uint16(i+1)] = a
	}
	want := []inputEvent{{evSyn, synReport, 0}, {evKey, 2, 0}, {evSyn, synReport, 0}}
	if got := takeEvents(t, d, bufs); len(got) != 3 || !equalEvents(got, want) {
		t.Errorf("after three more buffers: events %v, want %v", got, want)
	}
}

func TestInputRefusals(t *testing.T) {
	tests := []struct {
		name    string
		touch   bool
		started bool
		fill    bool // the guest takes no events and the pending queue is full
		send    func(in *Input) error
		want    error
	}{
		{"key code 0", false, true, false, func(in *Input) error { return in.Key(0, true) }, ErrInputCode},
		{"key code past the keyboard", false, true, false, func(in *Input) error { return in.Key(MaxKeyCode+1, true) }, ErrInputCode},
		{"key code 0xffff", false, true, false, func(in *Input) error { return in.Key(0xffff, true) }, ErrInputCode},
		{"key on a touch screen", true, true, false, func(in *Input) error { return in.Key(30, true) }, ErrInputCode},
		{"touch on a keyboard", false, true, false, func(in *Input) error { return in.Touch(1, 1, true) }, ErrInputCode},
		{"touch left of the screen", true, true, false, func(in *Input) error { return in.Touch(-1, 0, true) }, ErrInputCode},
		{"touch below the screen", true, true, false, func(in *Input) error { return in.Touch(0, 720, true) }, ErrInputCode},
		{"key before a driver", false, false, false, func(in *Input) error { return in.Key(30, true) }, ErrInputNoDriver},
		{"key while the guest takes none", false, true, true, func(in *Input) error { return in.Key(30, true) }, ErrInputFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := NewKeyboard()
			if tt.touch {
				in = newTouch(t, 1280, 720)
			}
			d := newDriver(t, in)
			if tt.started {
				d.start(allRingFeatures, 2, 8)
			}
			if tt.fill {
				for i := 0; i < maxInputPending/2; i++ {
					if err := in.Key(30, i%2 == 0); err != nil {
						t.Fatalf("report %d: %v", i, err)
					}
				}
			}
			if err := tt.send(in); !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
			in.mu.Lock()
			n := len(in.pending)
			in.mu.Unlock()
			if n > maxInputPending*inputEventSize {
				t.Errorf("%d bytes of events pending, more than %d events", n, maxInputPending)
			}
		})
	}
}

func TestInputResetDropsPendingEvents(t *testing.T) {
	in := NewKeyboard()
	d := newDriver(t, in)
	d.start(allRingFeatures, 2, 8)
	if err := in.Key(30, true); err != nil {
		t.Fatal(err)
	}
	d.start(allRingFeatures, 2, 8) // the driver resets and starts again
	bufs := map[uint16]uint64{}
	for i, a := range postEventBuffers(d, 4) {
		bufs[uint16(i)] = a
	}
	if got := takeEvents(t, d, bufs); len(got) != 0 {
		t.Errorf("events after a reset = %v, want none from before it", got)
	}
}

func TestInputStatusQueueAccepted(t *testing.T) {
	d := newDriver(t, NewKeyboard())
	d.start(allRingFeatures, 2, 8)
	q := d.q[inputStatusQueue]
	a := d.allocate(inputEventSize)
	led := make([]byte, inputEventSize)
	binary.LittleEndian.PutUint16(led, evLed)
	binary.LittleEndian.PutUint16(led[2:], ledCapsL)
	binary.LittleEndian.PutUint32(led[4:], 1)
	d.write(a, led)
	head := d.add(q, buf{a, inputEventSize, false})
	d.kick(q)
	if used := d.takeUsed(q); len(used) != 1 || used[0] != (usedElem{uint32(head), 0}) {
		t.Errorf("status queue used = %v, want [{%d 0}]", used, head)
	}
}

func TestInputShortEventBufferFailsTheQueue(t *testing.T) {
	in := NewKeyboard()
	d := newDriver(t, in)
	d.start(allRingFeatures, 2, 8)
	d.add(d.q[inputEventQueue], buf{d.allocate(4), 4, true})
	d.kick(d.q[inputEventQueue])
	in.Key(30, true)
	if s := d.status(); s&StatusDeviceNeedsReset == 0 {
		t.Errorf("Status = %#x after a 4-byte event buffer, want DEVICE_NEEDS_RESET", s)
	}
	if d.mmio.Failed() {
		t.Errorf("the device model failed; it must fail the queue cleanly")
	}
}

// TestInputStructSizes pins the sizes of the structs the device mirrors
// against include/uapi/linux/virtio_input.h.
func TestInputStructSizes(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"struct virtio_input_config", inputConfigSize, 136},
		{"offset of its union", inputCfgOffUnion, 8},
		{"struct virtio_input_event", inputEventSize, 8},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %d bytes, want %d", tt.name, tt.got, tt.want)
		}
	}
}
