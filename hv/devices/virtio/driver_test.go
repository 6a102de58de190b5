package virtio

import (
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/mem"
)

// This file is a test driver: it programs a device through the bus the
// way Linux's virtio_mmio and virtio_ring do, with real guest memory.

const (
	ramBase = 0x4000_0000
	ramSize = 4 << 20
	devBase = 0x0a00_0000

	allRingFeatures = 1<<FeatureVersion1 | 1<<FeatureRingIndirectDesc | 1<<FeatureRingEventIdx
)

// countingIRQ is the interrupt line: it counts edges.
type countingIRQ struct {
	n  atomic.Int64
	ch chan struct{}
}

func newCountingIRQ() *countingIRQ { return &countingIRQ{ch: make(chan struct{}, 1)} }

func (c *countingIRQ) Trigger() error {
	c.n.Add(1)
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return nil
}

// drvQueue is the driver's view of one queue.
type drvQueue struct {
	index             int
	size              uint16
	desc, avail, used uint64
	nextDesc          uint16 // next free descriptor (the driver hands them out in a ring)
	availIdx          uint16
	lastUsed          uint16
}

type driver struct {
	t     testing.TB
	mem   *mem.Memory
	bus   *bus.Bus
	mmio  *MMIO
	irq   *countingIRQ
	q     []*drvQueue
	alloc uint64 // next free guest-physical address for buffers
	end   uint64 // end of guest RAM
	base  uint64 // where the transport sits on bus; 0 means devBase
}

func newDriver(t testing.TB, dev Device) *driver {
	t.Helper()
	return newDriverSized(t, dev, ramSize)
}

// newDriverSized gives the guest size bytes of RAM at ramBase; the driver
// allocates rings and buffers from its upper half.
func newDriverSized(t testing.TB, dev Device, size uint64) *driver {
	t.Helper()
	m, err := mem.New([]mem.Range{{GPA: ramBase, Size: size}}, mem.Options{})
	if err != nil {
		t.Fatalf("mem.New() = %v", err)
	}
	irq := newCountingIRQ()
	mmio := NewMMIO(dev, m, irq)
	mmio.SetWarnings(nil)
	b := &bus.Bus{}
	if err := b.Insert(mmio, devBase, MMIOSize); err != nil {
		t.Fatalf("Insert() = %v", err)
	}
	t.Cleanup(func() {
		mmio.Close()
		m.Close()
	})
	return &driver{t: t, mem: m, bus: b, mmio: mmio, irq: irq, alloc: ramBase + size/2, end: ramBase + size}
}

func (d *driver) mmioBase() uint64 {
	if d.base == 0 {
		return devBase
	}
	return d.base
}

func (d *driver) r32(off uint64) uint32 {
	var b [4]byte
	d.bus.Read(d.mmioBase()+off, b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (d *driver) w32(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	d.bus.Write(d.mmioBase()+off, b[:])
}

func (d *driver) status() uint32 { return d.r32(regStatus) }

// negotiate runs spec §3.1.1 steps 1-6 and reports whether the device
// kept FEATURES_OK. want is masked with what the device offers unless
// force is set.
func (d *driver) negotiate(want uint64, force bool) bool {
	d.w32(regStatus, 0)
	d.w32(regStatus, StatusAcknowledge)
	d.w32(regStatus, StatusAcknowledge|StatusDriver)
	d.w32(regDeviceFeaturesSel, 1)
	offered := uint64(d.r32(regDeviceFeatures)) << 32
	d.w32(regDeviceFeaturesSel, 0)
	offered |= uint64(d.r32(regDeviceFeatures))
	if !force {
		want &= offered
	}
	d.w32(regDriverFeaturesSel, 1)
	d.w32(regDriverFeatures, uint32(want>>32))
	d.w32(regDriverFeaturesSel, 0)
	d.w32(regDriverFeatures, uint32(want))
	d.w32(regStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK)
	return d.status()&StatusFeaturesOK != 0
}

// allocate returns n bytes of guest memory, 16-byte aligned.
func (d *driver) allocate(n uint64) uint64 {
	gpa := d.alloc
	d.alloc += (n + 15) &^ 15
	if d.alloc > d.end {
		d.t.Fatalf("test driver out of guest memory")
	}
	return gpa
}

// setupQueue programs queue i with size entries, placing the rings in
// fresh guest memory; edit may change the configuration first.
func (d *driver) setupQueue(i int, size uint16, edit func(*QueueConfig)) *drvQueue {
	d.w32(regQueueSel, uint32(i))
	if d.r32(regQueueReady) != 0 {
		d.t.Fatalf("queue %d ready before setup", i)
	}
	if max := d.r32(regQueueNumMax); max == 0 {
		d.t.Fatalf("queue %d: QueueNumMax = 0", i)
	}
	dl, al, ul := ringSizes(size)
	cfg := QueueConfig{Size: size, Desc: d.allocate(dl), Driver: d.allocate(al), Device: d.allocate(ul)}
	if edit != nil {
		edit(&cfg)
	}
	d.w32(regQueueNum, uint32(cfg.Size))
	d.w32(regQueueDescLow, uint32(cfg.Desc))
	d.w32(regQueueDescHigh, uint32(cfg.Desc>>32))
	d.w32(regQueueDriverLow, uint32(cfg.Driver))
	d.w32(regQueueDriverHigh, uint32(cfg.Driver>>32))
	d.w32(regQueueDeviceLow, uint32(cfg.Device))
	d.w32(regQueueDeviceHigh, uint32(cfg.Device>>32))
	d.w32(regQueueReady, 1)
	q := &drvQueue{index: i, size: cfg.Size, desc: cfg.Desc, avail: cfg.Driver, used: cfg.Device}
	for len(d.q) <= i {
		d.q = append(d.q, nil)
	}
	d.q[i] = q
	return q
}

func (d *driver) driverOK() {
	d.w32(regStatus, d.status()|StatusDriverOK)
}

// start negotiates features and sets up nq queues of size entries.
func (d *driver) start(features uint64, nq int, size uint16) {
	d.t.Helper()
	if !d.negotiate(features, false) {
		d.t.Fatalf("FEATURES_OK refused for %#x", features)
	}
	for i := 0; i < nq; i++ {
		d.setupQueue(i, size, nil)
	}
	d.driverOK()
	if s := d.status(); s&StatusDeviceNeedsReset != 0 {
		d.t.Fatalf("status after DRIVER_OK = %#x, needs reset", s)
	}
}

func (d *driver) must(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatalf("guest memory access: %v", err)
	}
}

// writeDesc writes descriptor i of table at gpa.
func (d *driver) writeDesc(table uint64, i uint16, addr uint64, length uint32, flags, next uint16) {
	var b [descSize]byte
	binary.LittleEndian.PutUint64(b[0:], addr)
	binary.LittleEndian.PutUint32(b[8:], length)
	binary.LittleEndian.PutUint16(b[12:], flags)
	binary.LittleEndian.PutUint16(b[14:], next)
	d.must(d.mem.WriteAt(b[:], table+uint64(i)*descSize))
}

// buf is one buffer of a chain the test builds.
type buf struct {
	gpa   uint64
	len   uint32
	write bool
}

// add writes bufs as a chain of direct descriptors and makes it available.
func (d *driver) add(q *drvQueue, bufs ...buf) uint16 {
	head := q.nextDesc
	for i, b := range bufs {
		idx := q.nextDesc
		q.nextDesc = (q.nextDesc + 1) % q.size
		var flags uint16
		if b.write {
			flags |= descFWrite
		}
		if i < len(bufs)-1 {
			flags |= descFNext
		}
		d.writeDesc(q.desc, idx, b.gpa, b.len, flags, q.nextDesc)
	}
	d.publish(q, head)
	return head
}

// addIndirect writes bufs as an indirect table behind one descriptor.
func (d *driver) addIndirect(q *drvQueue, bufs ...buf) uint16 {
	table := d.allocate(uint64(len(bufs)) * descSize)
	for i, b := range bufs {
		var flags uint16
		if b.write {
			flags |= descFWrite
		}
		if i < len(bufs)-1 {
			flags |= descFNext
		}
		d.writeDesc(table, uint16(i), b.gpa, b.len, flags, uint16(i+1))
	}
	head := q.nextDesc
	q.nextDesc = (q.nextDesc + 1) % q.size
	d.writeDesc(q.desc, head, table, uint32(len(bufs))*descSize, descFIndirect, 0)
	d.publish(q, head)
	return head
}

// publish puts head in the available ring and moves idx past it.
func (d *driver) publish(q *drvQueue, head uint16) {
	d.must(d.mem.PutUint16(q.avail+ringHeader+2*uint64(q.availIdx%q.size), head))
	q.availIdx++
	d.must(d.mem.PutUint16(q.avail+2, q.availIdx))
}

func (d *driver) kick(q *drvQueue) { d.w32(regQueueNotify, uint32(q.index)) }

type usedElem struct {
	id, len uint32
}

// takeUsed returns the used elements the device added since the last call.
func (d *driver) takeUsed(q *drvQueue) []usedElem {
	idx, err := d.mem.Uint16(q.used + 2)
	d.must(err)
	var out []usedElem
	for ; q.lastUsed != idx; q.lastUsed++ {
		e := q.used + ringHeader + usedElemSize*uint64(q.lastUsed%q.size)
		id, err := d.mem.Uint32(e)
		d.must(err)
		l, err := d.mem.Uint32(e + 4)
		d.must(err)
		out = append(out, usedElem{id, l})
	}
	return out
}

// waitUsed waits up to five seconds for n used elements, for devices that
// complete from a goroutine.
func (d *driver) waitUsed(q *drvQueue, n int) []usedElem {
	d.t.Helper()
	var got []usedElem
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		got = append(got, d.takeUsed(q)...)
		if len(got) >= n {
			break
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("queue %d: %d used elements after 5s, want %d", q.index, len(got), n)
		}
		select {
		case <-d.irq.ch:
		case <-time.After(10 * time.Millisecond):
		}
	}
	return got
}

func (d *driver) read(gpa uint64, n int) []byte {
	b := make([]byte, n)
	d.must(d.mem.ReadAt(b, gpa))
	return b
}

func (d *driver) write(gpa uint64, b []byte) { d.must(d.mem.WriteAt(b, gpa)) }
