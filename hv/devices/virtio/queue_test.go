package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
)

func TestNeedEvent(t *testing.T) {
	tests := []struct {
		event, next, old uint16
		want             bool
	}{
		{0, 1, 0, true},  // passing used_event 0
		{5, 3, 0, false}, // not there yet
		{5, 6, 3, true},  // crossed it
		{5, 7, 6, false}, // crossed before the last signal
		{0xffff, 1, 0xfffe, true},
		{0xffff, 0xfffe, 0xfffd, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d/%d", tt.event, tt.next, tt.old), func(t *testing.T) {
			if got := needEvent(tt.event, tt.next, tt.old); got != tt.want {
				t.Errorf("needEvent(%d, %d, %d) = %v, want %v", tt.event, tt.next, tt.old, got, tt.want)
			}
		})
	}
}

// usedEventAddr and availEventAddr locate the EVENT_IDX fields (spec §2.7.10).
func usedEventAddr(q *drvQueue) uint64 { return q.avail + ringHeader + 2*uint64(q.size) }
func availEventAddr(q *drvQueue) uint64 {
	return q.used + ringHeader + usedElemSize*uint64(q.size)
}

func TestInterruptSuppression(t *testing.T) {
	tests := []struct {
		name      string
		features  uint64
		usedEvent uint16  // written before each kick when EVENT_IDX is negotiated
		noIntr    bool    // VIRTQ_AVAIL_F_NO_INTERRUPT
		wantIntrs []int64 // interrupt count after each of three requests
	}{
		{"event idx: every one", allRingFeatures, 0xffff, false, []int64{1, 2, 3}}, // set per kick below
		{"event idx: far away", allRingFeatures, 100, false, []int64{0, 0, 0}},
		{"event idx: the second", allRingFeatures, 1, false, []int64{0, 1, 1}},
		{"no event idx", 1 << FeatureVersion1, 0, false, []int64{1, 2, 3}},
		{"no event idx, NO_INTERRUPT", 1 << FeatureVersion1, 0, true, []int64{0, 0, 0}},
		{"event idx ignores NO_INTERRUPT", allRingFeatures, 0, true, []int64{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, NewRNG())
			d.start(tt.features, 1, 8)
			q := d.q[0]
			if tt.noIntr {
				d.must(d.mem.PutUint16(q.avail, availFNoInterrupt))
			}
			for i, want := range tt.wantIntrs {
				ev := tt.usedEvent
				if ev == 0xffff {
					ev = uint16(i) // "interrupt me for this one", as Linux does when it waits
				}
				d.must(d.mem.PutUint16(usedEventAddr(q), ev))
				d.add(q, buf{d.allocate(16), 16, true})
				d.kick(q)
				if got := len(d.takeUsed(q)); got != 1 {
					t.Fatalf("request %d: used elements = %d, want 1", i, got)
				}
				if got := d.irq.n.Load(); got != want {
					t.Errorf("after request %d: interrupts = %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestAvailEventWritten(t *testing.T) {
	d := newDriver(t, NewRNG())
	d.start(allRingFeatures, 1, 8)
	q := d.q[0]
	for i := 1; i <= 3; i++ {
		d.add(q, buf{d.allocate(8), 8, true})
	}
	d.kick(q)
	got, err := d.mem.Uint16(availEventAddr(q))
	d.must(err)
	if got != 3 {
		t.Errorf("avail_event after taking 3 entries = %d, want 3", got)
	}
}

// stepper is an entropy device that takes a given number of entries per
// notification, as a device in the middle of a batch would.
type stepper struct {
	*RNG
	q    *Queue
	per  int
	took int
}

func (s *stepper) Activate(features uint64, qs []*Queue) error {
	s.q = qs[0]
	return s.RNG.Activate(features, qs)
}

func (s *stepper) Notify(int) {
	var c Chain
	for i := 0; i < s.per; i++ {
		if ok, err := s.q.Pop(&c); err != nil || !ok {
			break
		}
		s.took++
		s.q.Push(c.Head, 0)
	}
	s.q.Signal()
}

// TestAvailEventDuringBatch: avail_event moves only when the device finds
// the ring empty. While entries are still waiting, the driver is not
// asked to notify again for each one it adds (vhost's behaviour), and
// once the ring is drained it is asked for the next.
func TestAvailEventDuringBatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		per    int // entries the device takes per notification
		adds   int
		kicks  int
		wantEv uint16
	}{
		{"mid-batch: left at its old value", 1, 3, 2, 0},
		{"drained: the next entry", 4, 3, 1, 3},
		{"drained over two notifications", 2, 3, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := &stepper{RNG: NewRNG(), per: tc.per}
			d := newDriver(t, dev)
			d.start(allRingFeatures, 1, 8)
			q := d.q[0]
			for i := 0; i < tc.adds; i++ {
				d.add(q, buf{d.allocate(8), 8, true})
			}
			for i := 0; i < tc.kicks; i++ {
				d.kick(q)
			}
			got, err := d.mem.Uint16(availEventAddr(q))
			d.must(err)
			if got != tc.wantEv {
				t.Errorf("avail_event after the device took %d of %d entries = %d, want %d", dev.took, tc.adds, got, tc.wantEv)
			}
		})
	}
}

// corruptRNG builds an rng device; corruptBlock a block device.
func corruptRNG(t *testing.T) Device   { return NewRNG() }
func corruptBlock(t *testing.T) Device { return newTestBlock(t, 8, false) }

const corruptSize = 8

// TestCorruptQueue corrupts a known-good queue one guest-controlled field
// at a time. Every case must end in DEVICE_NEEDS_RESET with a
// configuration-change interrupt, no used buffer and no panic.
func TestCorruptQueue(t *testing.T) {
	const end = ramBase + ramSize
	type ring func(d *driver, q *drvQueue)
	// chain writes descriptors 0.. as given and publishes head 0.
	type desc struct {
		addr  uint64
		len   uint32
		flags uint16
		next  uint16
	}
	chain := func(ds ...desc) ring {
		return func(d *driver, q *drvQueue) {
			for i, x := range ds {
				d.writeDesc(q.desc, uint16(i), x.addr, x.len, x.flags, x.next)
			}
			d.publish(q, 0)
		}
	}
	// indirect puts ds in a table and points descriptor 0 at it; n
	// overrides the table length when non-zero.
	indirect := func(n uint32, addr uint64, ds ...desc) ring {
		return func(d *driver, q *drvQueue) {
			table := d.allocate(uint64(len(ds)+1) * descSize)
			for i, x := range ds {
				d.writeDesc(table, uint16(i), x.addr, x.len, x.flags, x.next)
			}
			if n == 0 {
				n = uint32(len(ds)) * descSize
			}
			if addr == 0 {
				addr = table
			}
			d.writeDesc(q.desc, 0, addr, n, descFIndirect, 0)
			d.publish(q, 0)
		}
	}
	good := uint64(ramBase + 2<<20) // a buffer well inside RAM
	tests := []struct {
		name     string
		dev      func(*testing.T) Device
		features uint64
		cfg      func(*QueueConfig)
		ring     ring
	}{
		// Queue setup (registers).
		{name: "size zero", cfg: func(c *QueueConfig) { c.Size = 0 }},
		{name: "size not a power of two", cfg: func(c *QueueConfig) { c.Size = 3 }},
		{name: "size above QueueNumMax", cfg: func(c *QueueConfig) { c.Size = 2 * defaultQueueMax }},
		{name: "descriptor table outside memory", cfg: func(c *QueueConfig) { c.Desc = 0x1000 }},
		{name: "descriptor table past the end of memory", cfg: func(c *QueueConfig) { c.Desc = end - 64 }},
		{name: "descriptor table address wraps", cfg: func(c *QueueConfig) { c.Desc = ^uint64(0) &^ 15 }},
		{name: "descriptor table misaligned", cfg: func(c *QueueConfig) { c.Desc += 8 }},
		{name: "available ring outside memory", cfg: func(c *QueueConfig) { c.Driver = end }},
		{name: "available ring past the end of memory", cfg: func(c *QueueConfig) { c.Driver = end - 8 }},
		{name: "available ring misaligned", cfg: func(c *QueueConfig) { c.Driver++ }},
		{name: "used ring outside memory", cfg: func(c *QueueConfig) { c.Device = 1 << 40 }},
		{name: "used ring past the end of memory", cfg: func(c *QueueConfig) { c.Device = end - 16 }},
		{name: "used ring misaligned", cfg: func(c *QueueConfig) { c.Device += 2 }},

		// Available ring.
		{name: "available idx jumps past the queue size", ring: func(d *driver, q *drvQueue) {
			d.must(d.mem.PutUint16(q.avail+2, corruptSize+1))
		}},
		{name: "head index out of range", ring: func(d *driver, q *drvQueue) {
			d.writeDesc(q.desc, 0, good, 16, descFWrite, 0)
			d.publish(q, corruptSize)
		}},

		// Direct descriptors.
		{name: "next index out of range", ring: chain(desc{good, 16, descFWrite | descFNext, corruptSize})},
		{name: "chain loops", ring: chain(desc{good, 16, descFWrite | descFNext, 1}, desc{good, 16, descFWrite | descFNext, 0})},
		{name: "descriptor points to itself", ring: chain(desc{good, 16, descFWrite | descFNext, 0})},
		{name: "buffer outside memory", ring: chain(desc{0x1000, 16, descFWrite, 0})},
		{name: "buffer past the end of memory", ring: chain(desc{end - 8, 16, descFWrite, 0})},
		{name: "buffer address plus length overflows", ring: chain(desc{^uint64(0) - 8, 16, descFWrite, 0})},
		{name: "readable buffer after writable", ring: chain(desc{good, 16, descFWrite | descFNext, 1}, desc{good, 16, 0, 0})},

		// Indirect tables.
		{name: "indirect length not a multiple of 16", ring: indirect(24, 0, desc{good, 16, descFWrite, 0}, desc{good, 16, descFWrite, 0})},
		{name: "indirect length zero", ring: func(d *driver, q *drvQueue) {
			d.writeDesc(q.desc, 0, good, 0, descFIndirect, 0)
			d.publish(q, 0)
		}},
		{name: "indirect table outside memory", ring: indirect(0, 0x2000, desc{good, 16, descFWrite, 0})},
		{name: "indirect table past the end of memory", ring: indirect(64, end-32, desc{good, 16, descFWrite, 0})},
		{name: "indirect table address plus length overflows", ring: indirect(32, ^uint64(0)-15, desc{good, 16, descFWrite, 0})},
		{name: "indirect table longer than QueueNumMax", ring: indirect((defaultQueueMax+1)*descSize, good, desc{good, 16, descFWrite, 0})},
		{name: "nested indirect", ring: indirect(0, 0, desc{good, 32, descFIndirect, 0})},
		{name: "indirect with NEXT", ring: func(d *driver, q *drvQueue) {
			d.writeDesc(good, 0, good+64, 16, descFWrite, 0)
			d.writeDesc(q.desc, 0, good, descSize, descFIndirect|descFNext, 1)
			d.writeDesc(q.desc, 1, good+64, 16, descFWrite, 0)
			d.publish(q, 0)
		}},
		{name: "indirect chain loops", ring: indirect(0, 0, desc{good, 16, descFWrite | descFNext, 1}, desc{good, 16, descFWrite | descFNext, 0})},
		{name: "indirect next out of range", ring: indirect(0, 0, desc{good, 16, descFWrite | descFNext, 5}, desc{good, 16, descFWrite, 0})},
		{name: "indirect buffer outside memory", ring: indirect(0, 0, desc{0x3000, 16, descFWrite, 0})},
		{name: "indirect without VIRTIO_RING_F_INDIRECT_DESC", features: 1<<FeatureVersion1 | 1<<FeatureRingEventIdx,
			ring: indirect(0, 0, desc{good, 16, descFWrite, 0})},

		// Requests the block device cannot answer at all.
		{name: "block request without status byte", dev: corruptBlock, ring: func(d *driver, q *drvQueue) {
			d.write(good, blkHeader(blkTIn, 0))
			chain(desc{good, blkReqHeader, 0, 0})(d, q)
		}},
		{name: "block request with short header", dev: corruptBlock, ring: func(d *driver, q *drvQueue) {
			chain(desc{good, 8, descFNext, 1}, desc{good + 64, 1, descFWrite, 0})(d, q)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dev := corruptRNG
			if tt.dev != nil {
				dev = tt.dev
			}
			features := uint64(allRingFeatures)
			if tt.features != 0 {
				features = tt.features
			}
			d := newDriver(t, dev(t))
			if !d.negotiate(features, false) {
				t.Fatalf("FEATURES_OK refused")
			}
			q := d.setupQueue(0, corruptSize, tt.cfg)
			d.driverOK()
			if tt.ring != nil {
				tt.ring(d, q)
				d.kick(q)
				d.kick(q) // a second notify on a failed device is ignored
			}
			if s := d.status(); s&StatusDeviceNeedsReset == 0 {
				t.Errorf("Status = %#x, want DEVICE_NEEDS_RESET (%#x)", s, StatusDeviceNeedsReset)
			}
			if got := d.r32(regInterruptStatus); got&InterruptConfigChange == 0 {
				t.Errorf("InterruptStatus = %#x, want the config-change bit", got)
			}
			if got := d.irq.n.Load(); got != 1 {
				t.Errorf("interrupts = %d, want 1", got)
			}
			if tt.ring != nil {
				if used := d.takeUsed(q); len(used) != 0 {
					t.Errorf("used ring = %v, want nothing", used)
				}
			}
			// The driver resets the device, and it works again.
			d.start(allRingFeatures, 1, corruptSize)
			q = d.q[0]
			d.write(good, blkHeader(blkTIn, 0))
			d.add(q, buf{good, blkReqHeader, false}, buf{good + 64, 512, true}, buf{good + 1024, 1, true})
			d.kick(q)
			if used := d.takeUsed(q); len(used) != 1 {
				t.Errorf("after reset: used ring = %v, want one element", used)
			}
		})
	}
}

// TestPopErrors checks Pop's own error reporting.
func TestPopErrors(t *testing.T) {
	d := newDriver(t, NewRNG())
	d.start(allRingFeatures, 1, 8)
	q := d.mmio.queues[0].q
	d.must(d.mem.PutUint16(d.q[0].avail+2, 100))
	var c Chain
	if ok, err := q.Pop(&c); ok || !errors.Is(err, ErrBadQueue) {
		t.Errorf("Pop() = %v, %v, want false, ErrBadQueue", ok, err)
	}
	if ok, err := q.Pop(&c); ok || !errors.Is(err, ErrBadQueue) {
		t.Errorf("second Pop() = %v, %v, want false, ErrBadQueue", ok, err)
	}
}

// fuzzQueueBase is where FuzzVirtqueue's input lands in guest memory: the
// rings of an 8-entry queue sit in its first 512 bytes.
const (
	fuzzRAM        = 64 << 10
	fuzzDesc       = ramBase
	fuzzAvail      = ramBase + 0x100
	fuzzUsed       = ramBase + 0x200
	fuzzQueueSize  = 8
	fuzzDeviceRNG  = 0
	fuzzDeviceBlk  = 1
	fuzzDeviceCons = 2
)

// fuzzSeed is a well-formed image: an 8-entry queue with one block read
// chain (header, 512-byte buffer, status) made available.
func fuzzSeed() []byte {
	img := make([]byte, 0x1000)
	put := func(i uint16, addr uint64, l uint32, flags, next uint16) {
		b := img[uint64(i)*descSize:]
		binary.LittleEndian.PutUint64(b, addr)
		binary.LittleEndian.PutUint32(b[8:], l)
		binary.LittleEndian.PutUint16(b[12:], flags)
		binary.LittleEndian.PutUint16(b[14:], next)
	}
	put(0, ramBase+0x400, blkReqHeader, descFNext, 1)
	put(1, ramBase+0x600, 512, descFWrite|descFNext, 2)
	put(2, ramBase+0x900, 1, descFWrite, 0)
	// An indirect chain too.
	put(3, ramBase+0xa00, 2*descSize, descFIndirect, 0)
	copy(img[0xa00:], img[0:descSize])
	copy(img[0xa10:], img[descSize:2*descSize])
	binary.LittleEndian.PutUint16(img[0xa10+12:], descFWrite)
	binary.LittleEndian.PutUint16(img[0x100+2:], 2) // avail idx
	binary.LittleEndian.PutUint16(img[0x100+4:], 0)
	binary.LittleEndian.PutUint16(img[0x100+6:], 3)
	copy(img[0x400:], blkHeader(blkTIn, 1))
	return img
}

// FuzzVirtqueue lets the fuzzer write the rings, descriptors and buffers
// of a queue, then notifies. The device may fail, but the VMM must not
// panic, and memory outside the guest's is never touched (mem.Memory
// maps nothing around it, so a stray access would fault).
func FuzzVirtqueue(f *testing.F) {
	for _, dev := range []byte{fuzzDeviceRNG, fuzzDeviceBlk, fuzzDeviceCons} {
		f.Add(dev, uint8(0), fuzzSeed())
		f.Add(dev, uint8(1), fuzzSeed())
	}
	f.Add(byte(fuzzDeviceBlk), uint8(2), bytes.Repeat([]byte{0xff}, 0x400))
	disk := newTestBlockFile(f, 16)
	f.Fuzz(func(t *testing.T, dev byte, featureSel uint8, img []byte) {
		var d Device
		q := 0
		switch dev % 3 {
		case fuzzDeviceRNG:
			d = NewRNG()
		case fuzzDeviceBlk:
			b, err := NewBlock(disk, true)
			if err != nil {
				t.Fatal(err)
			}
			d = b
		default:
			d = NewConsole(nil, &bytes.Buffer{})
			q = consoleTxQueue
		}
		features := []uint64{allRingFeatures, 1 << FeatureVersion1, 1<<FeatureVersion1 | 1<<FeatureRingIndirectDesc}[featureSel%3]
		drv := newDriverSized(t, d, fuzzRAM)
		if !drv.negotiate(features, false) {
			t.Fatal("FEATURES_OK refused")
		}
		for i := 0; i <= q; i++ {
			drv.setupQueue(i, fuzzQueueSize, func(c *QueueConfig) {
				c.Desc, c.Driver, c.Device = fuzzDesc+uint64(i)*0x1000, fuzzAvail+uint64(i)*0x1000, fuzzUsed+uint64(i)*0x1000
			})
		}
		drv.driverOK()
		if len(img) > fuzzRAM {
			img = img[:fuzzRAM]
		}
		drv.write(ramBase+uint64(q)*0x1000, img)
		drv.w32(regQueueNotify, uint32(q))
		drv.w32(regQueueNotify, uint32(q))
		if used := drv.mmio.queues[q].q.nextUsed; used > fuzzQueueSize {
			// More completions than the driver can have made available
			// is possible only if the device did not check avail idx.
			t.Errorf("device completed %d chains on a queue of %d", used, fuzzQueueSize)
		}
	})
}

// TestRingWraps runs enough requests through a small queue that the ring
// slots wrap many times and the 16-bit indices wrap past 65535.
func TestRingWraps(t *testing.T) {
	d := newDriver(t, NewRNG())
	d.start(allRingFeatures, 1, 4)
	q := d.q[0]
	b := d.allocate(8)
	const n = 70000
	for i := 0; i < n; i++ {
		// Two at a time, so used and avail indices differ from slots.
		d.add(q, buf{b, 8, true})
		d.add(q, buf{b, 4, true})
		d.kick(q)
		used := d.takeUsed(q)
		if len(used) != 2 || used[0].len != 8 || used[1].len != 4 {
			t.Fatalf("request pair %d: used = %v, want lengths 8 and 4", i, used)
		}
	}
	if s := d.status(); s&StatusDeviceNeedsReset != 0 {
		t.Errorf("Status = %#x after %d requests, want no NEEDS_RESET", s, 2*n)
	}
}

// TestConcurrentNotifyAndReset notifies from several "vCPUs" while the
// driver resets and restarts the device; run with -race.
func TestConcurrentNotifyAndReset(t *testing.T) {
	for _, dev := range []func(*testing.T) Device{corruptRNG, corruptBlock} {
		d := newDriver(t, dev(t))
		d.start(allRingFeatures, 1, 8)
		stop := make(chan struct{})
		done := make(chan struct{})
		for v := 0; v < 3; v++ {
			go func() {
				defer func() { done <- struct{}{} }()
				for {
					select {
					case <-stop:
						return
					default:
						d.w32(regQueueNotify, 0)
					}
				}
			}()
		}
		for i := 0; i < 50; i++ {
			d.start(allRingFeatures, 1, 8)
			q := d.q[0]
			d.write(ramBase+3<<20, blkHeader(blkTIn, 0))
			d.add(q, buf{ramBase + 3<<20, blkReqHeader, false}, buf{ramBase + 3<<20 + 512, 512, true}, buf{ramBase + 3<<20 + 1024, 1, true})
			d.kick(q)
		}
		close(stop)
		for v := 0; v < 3; v++ {
			<-done
		}
		if s := d.status(); s&StatusDeviceNeedsReset != 0 {
			t.Errorf("%s: Status = %#x, want no NEEDS_RESET", d.mmio.Name(), s)
		}
	}
}

// TestRingSizes pins the split-ring layout of spec §2.7 (struct virtq_desc
// 16 bytes; avail flags, idx, ring[N], used_event; used flags, idx,
// ring[N] of 8-byte elements, avail_event).
func TestRingSizes(t *testing.T) {
	tests := []struct {
		n                 uint16
		desc, avail, used uint64
	}{
		{1, 16, 8, 14},
		{8, 128, 22, 70},
		{256, 4096, 518, 2054},
		{32768, 524288, 65542, 262150},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			d, a, u := ringSizes(tt.n)
			if d != tt.desc || a != tt.avail || u != tt.used {
				t.Errorf("ringSizes(%d) = %d, %d, %d, want %d, %d, %d", tt.n, d, a, u, tt.desc, tt.avail, tt.used)
			}
		})
	}
}
