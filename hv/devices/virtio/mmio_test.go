package virtio

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
)

func TestRegisters(t *testing.T) {
	tests := []struct {
		name     string
		dev      Device
		id       uint32
		queues   int
		features uint64 // device-type bits that must be offered
	}{
		{"virtio-rng", NewRNG(), IDRNG, 1, 0},
		{"virtio-console", NewConsole(nil, &bytes.Buffer{}), IDConsole, 2, 0},
		{"virtio-blk", newTestBlock(t, 8, false), IDBlock, 1, 1<<blkFSizeMax | 1<<blkFSegMax | 1<<blkFBlkSize | 1<<blkFFlush},
		{"virtio-blk", newTestBlock(t, 8, true), IDBlock, 1, 1<<blkFRO | 1<<blkFFlush},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, tt.dev)
			if got := d.mmio.Name(); got != tt.name {
				t.Errorf("Name() = %q, want %q", got, tt.name)
			}
			if got := d.mmio.DeviceID(); got != tt.id {
				t.Errorf("DeviceID() = %d, want %d", got, tt.id)
			}
			for _, r := range []struct {
				name string
				off  uint64
				want uint32
			}{
				{"MagicValue", regMagicValue, 0x74726976},
				{"Version", regVersion, 2},
				{"DeviceID", regDeviceID, tt.id},
				{"VendorID", regVendorID, VendorID},
				{"Status", regStatus, 0},
				{"InterruptStatus", regInterruptStatus, 0},
				{"SHMLenLow", regSHMLenLow, 0xffffffff},
			} {
				if got := d.r32(r.off); got != r.want {
					t.Errorf("%s = %#x, want %#x", r.name, got, r.want)
				}
			}
			d.w32(regDeviceFeaturesSel, 0)
			lo := d.r32(regDeviceFeatures)
			d.w32(regDeviceFeaturesSel, 1)
			hi := d.r32(regDeviceFeatures)
			offered := uint64(hi)<<32 | uint64(lo)
			if want := tt.features | allRingFeatures; offered&want != want {
				t.Errorf("DeviceFeatures = %#x, want bits %#x set", offered, want)
			}
			for i := 0; i < tt.queues+1; i++ {
				d.w32(regQueueSel, uint32(i))
				want := uint32(defaultQueueMax)
				if i == tt.queues {
					want = 0 // past the last queue
				}
				if got := d.r32(regQueueNumMax); got != want {
					t.Errorf("queue %d QueueNumMax = %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestAccessWidth(t *testing.T) {
	d := newDriver(t, NewRNG())
	tests := []struct {
		name string
		off  uint64
		size int
	}{
		{"byte read of MagicValue", regMagicValue, 1},
		{"halfword read of MagicValue", regMagicValue, 2},
		{"doubleword read of MagicValue", regMagicValue, 8},
		{"unaligned word read", regMagicValue + 2, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := bytes.Repeat([]byte{0xff}, tt.size)
			d.bus.Read(devBase+tt.off, b)
			if !bytes.Equal(b, make([]byte, tt.size)) {
				t.Errorf("Read(%#x, %d bytes) = % x, want zeros", tt.off, tt.size, b)
			}
		})
	}
	// A byte write to Status must not change it.
	d.bus.Write(devBase+regStatus, []byte{StatusAcknowledge})
	if got := d.status(); got != 0 {
		t.Errorf("Status after a 1-byte write = %#x, want 0", got)
	}
}

func TestFeatureNegotiation(t *testing.T) {
	tests := []struct {
		name   string
		want   uint64
		force  bool
		wantOK bool
	}{
		{"everything offered", ^uint64(0), false, true},
		{"version 1 only", 1 << FeatureVersion1, false, true},
		{"no VERSION_1", 1 << FeatureRingEventIdx, true, false},
		{"a bit not offered", allRingFeatures | 1<<40, true, false},
		{"device bit not offered", allRingFeatures | 1<<blkFRO, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, newTestBlock(t, 8, false))
			if got := d.negotiate(tt.want, tt.force); got != tt.wantOK {
				t.Errorf("negotiate(%#x) FEATURES_OK = %v, want %v", tt.want, got, tt.wantOK)
			}
		})
	}
}

func TestResetClearsState(t *testing.T) {
	d := newDriver(t, NewRNG())
	d.start(allRingFeatures, 1, 8)
	d.w32(regInterruptACK, 0) // harmless
	if got := d.status(); got != StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK {
		t.Fatalf("Status = %#x, want %#x", got, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
	}
	d.w32(regStatus, 0)
	if got := d.status(); got != 0 {
		t.Errorf("Status after reset = %#x, want 0", got)
	}
	d.w32(regQueueSel, 0)
	if got := d.r32(regQueueReady); got != 0 {
		t.Errorf("QueueReady after reset = %d, want 0", got)
	}
	// After reset the device works again from scratch.
	d.start(allRingFeatures, 1, 8)
	q := d.q[0]
	b := d.allocate(32)
	d.add(q, buf{b, 32, true})
	d.kick(q)
	if got := d.takeUsed(q); len(got) != 1 || got[0].len != 32 {
		t.Errorf("used after reset and restart = %v, want one element of 32 bytes", got)
	}
}

func TestQueueRegistersFrozenWhenReady(t *testing.T) {
	d := newDriver(t, NewRNG())
	d.start(allRingFeatures, 1, 8)
	d.w32(regQueueSel, 0)
	d.w32(regQueueNum, 3) // ignored: the queue is ready
	q := d.q[0]
	b := d.allocate(16)
	d.add(q, buf{b, 16, true})
	d.kick(q)
	if got := d.takeUsed(q); len(got) != 1 {
		t.Errorf("used elements = %d, want 1", len(got))
	}
	if s := d.status(); s&StatusDeviceNeedsReset != 0 {
		t.Errorf("Status = %#x, want no NEEDS_RESET", s)
	}
}

func TestPlacement(t *testing.T) {
	d := newDriver(t, NewRNG())
	p := devices.Placement{Base: devBase, Size: MMIOSize, IRQ: 16}
	d.mmio.SetPlacement(p)
	if got := d.mmio.Placement(); got != p {
		t.Errorf("Placement() = %+v, want %+v", got, p)
	}
}

func TestInterruptStatusAndACK(t *testing.T) {
	d := newDriver(t, NewRNG())
	d.start(allRingFeatures, 1, 8)
	q := d.q[0]
	d.add(q, buf{d.allocate(8), 8, true})
	d.kick(q)
	if got := d.r32(regInterruptStatus); got != InterruptUsedBuffer {
		t.Fatalf("InterruptStatus = %#x, want %#x", got, InterruptUsedBuffer)
	}
	if got := d.irq.n.Load(); got != 1 {
		t.Errorf("interrupts = %d, want 1", got)
	}
	d.w32(regInterruptACK, InterruptUsedBuffer)
	if got := d.r32(regInterruptStatus); got != 0 {
		t.Errorf("InterruptStatus after ACK = %#x, want 0", got)
	}
}

func TestWarningsAreRateLimited(t *testing.T) {
	d := newDriver(t, NewRNG())
	var log bytes.Buffer
	d.mmio.SetWarnings(&log)
	for i := 0; i < 100; i++ {
		d.bus.Read(devBase+regMagicValue, make([]byte, 1))
	}
	if n := strings.Count(log.String(), "\n"); n == 0 || n > d.mmio.warn.PerSecond() {
		t.Errorf("%d warning lines for 100 bad accesses, want 1 to %d", n, d.mmio.warn.PerSecond())
	}
}

// configRead reads n bytes of device configuration at off with accesses
// of width w, as Linux's vm_get does.
func configRead(d *driver, off uint64, n, w int) []byte {
	out := make([]byte, 0, n)
	for i := 0; i < n; i += w {
		b := make([]byte, w)
		d.bus.Read(devBase+regConfig+off+uint64(i), b)
		out = append(out, b...)
	}
	return out
}

func TestConfigSpaceWidths(t *testing.T) {
	blk := newTestBlock(t, 1000, false)
	d := newDriver(t, blk)
	for _, w := range []int{1, 2, 4} {
		t.Run(string(rune('0'+w)), func(t *testing.T) {
			got := binary.LittleEndian.Uint64(configRead(d, blkCfgCapacity, 8, w))
			if got != 1000 {
				t.Errorf("capacity read %d bytes at a time = %d, want 1000", w, got)
			}
		})
	}
}

// statusAtTrigger records InterruptStatus as the driver would read it the
// moment the edge arrives.
type statusAtTrigger struct {
	mmio *MMIO
	seen []uint32
}

func (s *statusAtTrigger) Trigger() error {
	var b [4]byte
	s.mmio.Read(regInterruptStatus, b[:])
	s.seen = append(s.seen, binary.LittleEndian.Uint32(b[:]))
	return nil
}

func TestInterruptStatusSetBeforeTrigger(t *testing.T) {
	d := newDriver(t, NewRNG())
	irq := &statusAtTrigger{mmio: d.mmio}
	d.mmio.irq = irq
	d.start(allRingFeatures, 1, 8)
	q := d.q[0]
	d.add(q, buf{d.allocate(8), 8, true})
	d.kick(q)
	d.w32(regInterruptACK, InterruptUsedBuffer)
	d.publish(q, q.size) // head out of range: the device fails
	d.kick(q)
	want := []uint32{InterruptUsedBuffer, InterruptConfigChange}
	if fmt.Sprint(irq.seen) != fmt.Sprint(want) {
		t.Errorf("InterruptStatus at each Trigger = %v, want %v", irq.seen, want)
	}
}

// TestQueueNumbersOutOfRange is the regression test for QueueSel and
// QueueNotify of 0xffffffff, which on a 32-bit host became the index -1
// and panicked ("index out of range [-1]"). make test runs it as
// GOARCH=arm under qemu-arm-static too. Every queue-numbered register must
// treat such a number as a queue that does not exist, and the device must
// go on working.
func TestQueueNumbersOutOfRange(t *testing.T) {
	for _, v := range []uint32{0xffffffff, 0x80000000, 0x7fffffff, 1, 2} {
		t.Run(fmt.Sprintf("%#x", v), func(t *testing.T) {
			d := newDriver(t, NewRNG())
			d.start(allRingFeatures, 1, 8)
			d.w32(regQueueSel, v)
			if got := d.r32(regQueueNumMax); got != 0 {
				t.Errorf("QueueNumMax of queue %#x = %d, want 0", v, got)
			}
			if got := d.r32(regQueueReady); got != 0 {
				t.Errorf("QueueReady of queue %#x = %d, want 0", v, got)
			}
			d.w32(regQueueNum, 8)
			d.w32(regQueueDescLow, 0)
			d.w32(regQueueReady, 1)
			d.w32(regQueueNotify, v)
			if s := d.status(); s&StatusDeviceNeedsReset != 0 {
				t.Errorf("Status = %#x after queue %#x, want no NEEDS_RESET", s, v)
			}
			// Queue 0 still works.
			q := d.q[0]
			d.add(q, buf{d.allocate(16), 16, true})
			d.kick(q)
			if used := d.takeUsed(q); len(used) != 1 || used[0].len != 16 {
				t.Errorf("queue 0 after queue %#x: used = %v, want one 16-byte element", v, used)
			}
		})
	}
}

// TestNotifyQueue: a notification that arrives through NotifyQueue (an
// ioeventfd) is served as a QueueNotify write is; one for a queue that
// does not exist, or before the driver is ready, is ignored.
func TestNotifyQueue(t *testing.T) {
	tests := []struct {
		name     string
		start    bool
		queue    uint32
		wantUsed int
	}{
		{"request on queue 0", true, 0, 1},
		{"queue past the last", true, 1, 0},
		{"queue 0xffffffff", true, 0xffffffff, 0},
		{"before DRIVER_OK", false, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, NewRNG())
			d.mmio.SetWarnings(&bytes.Buffer{})
			if got := d.mmio.Queues(); got != 1 {
				t.Fatalf("Queues() = %d, want 1", got)
			}
			var q *drvQueue
			if tt.start {
				d.start(allRingFeatures, 1, 8)
				q = d.q[0]
				d.add(q, buf{d.allocate(16), 16, true})
			}
			d.mmio.NotifyQueue(tt.queue)
			if q == nil {
				if s := d.status(); s != 0 {
					t.Errorf("Status = %#x after an early notification, want 0", s)
				}
				return
			}
			if used := d.takeUsed(q); len(used) != tt.wantUsed {
				t.Errorf("used ring = %v, want %d elements", used, tt.wantUsed)
			}
		})
	}
}
