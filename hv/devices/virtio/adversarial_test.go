package virtio

import (
	"encoding/binary"
	"sync"
	"testing"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/mem"
)

// The adversarial virtqueue suite: what a hostile driver can put in a
// queue, run on every virtio device. Guest RAM is two adjacent regions,
// each mapped between PROT_NONE guard pages (hv/mem), so any access a
// device made outside guest RAM — or across the boundary between the
// regions, which are not adjacent in the host — would crash the test.
// Every case must leave the device either failed cleanly (Status has
// DEVICE_NEEDS_RESET, a configuration-change interrupt was raised, no
// used element for the bad chain) or, where the queue is merely odd but
// valid, served; never panicking (the device model failed), never
// completing more than was made available. Afterwards a second device on
// the same bus and RAM still works, and the attacked device works again
// after the driver resets it.

const (
	advLow   = 1 << 20  // the lower region: [ramBase, ramBase+advLow)
	advHigh  = 16 << 20 // the upper region, right after it
	advSplit = ramBase + advLow
	advEnd   = advSplit + advHigh
	advQueue = 8
	// advGood is a buffer well inside the upper region; advBuf2 another.
	advGood = advSplit + 1<<20
	advBuf2 = advSplit + 2<<20
	// companionBase is where a second device (an entropy device) sits.
	companionBase = devBase + 0x1000
)

// attackQueue is the queue of each device whose chains a notification
// processes at once: the request queue, or the transmit queue.
func attackQueue(name string) int {
	switch name {
	case "console", "net", "vsock", "keyboard", "touch":
		return 1
	}
	return 0
}

// newAdversarialDrivers puts dev and a companion entropy device on one
// bus over one guest RAM of two regions, and starts both.
func newAdversarialDrivers(t *testing.T, dev Device, nq int, features uint64) (victim, companion *driver) {
	m, err := mem.New([]mem.Range{{GPA: ramBase, Size: advLow}, {GPA: advSplit, Size: advHigh}}, mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &bus.Bus{}
	mk := func(d Device, base, alloc, end uint64) *driver {
		irq := newCountingIRQ()
		t := NewMMIO(d, m, irq)
		t.SetWarnings(nil)
		if err := b.Insert(t, base, MMIOSize); err != nil {
			panic(err)
		}
		return &driver{mem: m, bus: b, mmio: t, irq: irq, alloc: alloc, end: end, base: base}
	}
	victim = mk(dev, devBase, advEnd-4<<20, advEnd-2<<20)
	companion = mk(NewRNG(), companionBase, advEnd-2<<20, advEnd)
	victim.t, companion.t = t, t
	t.Cleanup(func() {
		victim.mmio.Close()
		companion.mmio.Close()
		m.Close()
	})
	if !victim.negotiate(features, false) {
		t.Fatalf("FEATURES_OK refused for %#x", features)
	}
	for i := 0; i < nq; i++ {
		victim.setupQueue(i, advQueue, nil)
	}
	victim.driverOK()
	companion.start(allRingFeatures, 1, 8)
	return victim, companion
}

// goodRequest makes one well-formed request on the attack queue and
// reports whether the device answered it.
func goodRequest(t *testing.T, name string, d *driver) bool {
	q := d.q[attackQueue(name)]
	a := d.allocate(4096)
	switch name {
	case "blk":
		d.write(a, blkHeader(blkTIn, 0))
		d.add(q, buf{a, blkReqHeader, false}, buf{a + 512, 512, true}, buf{a + 1024, 1, true})
	case "rng":
		d.add(q, buf{a, 64, true})
	case "console":
		d.write(a, []byte("ok\n"))
		d.add(q, buf{a, 3, false})
	case "net":
		d.add(q, buf{a, vnetHdrLen + 60, false})
	case "gpu":
		req := gpuReq(gpuCmdGetDisplayInfo)
		d.write(a, req)
		d.add(q, buf{a, uint32(len(req)), false}, buf{a + 512, gpuRespDisplayInfo, true})
	case "keyboard", "touch": // a status event (an LED), which the device takes
		d.add(q, buf{a, inputEventSize, false})
	case "vsock":
		h := guestHeader(VsockOpCreditRequest) // for no connection: answered with RST, harmlessly
		b := make([]byte, VsockHeaderSize)
		h.Encode(b)
		d.write(a, b)
		d.add(q, buf{a, VsockHeaderSize, false})
	}
	d.kick(q)
	return len(d.waitUsed(q, 1)) == 1
}

// advCase is one attack: ring writes the queue's descriptors and rings;
// mustFail says the queue is malformed (else it may also be served).
type advCase struct {
	name     string
	mustFail bool
	noIndir  bool // negotiate without VIRTIO_RING_F_INDIRECT_DESC
	ring     func(d *driver, q *drvQueue)
	race     bool // ring runs in a goroutine while the device is notified
}

type advDesc struct {
	addr  uint64
	len   uint32
	flags uint16
	next  uint16
}

// chain writes ds as descriptors 0.. of the queue and publishes head 0.
func chain(ds ...advDesc) func(d *driver, q *drvQueue) {
	return func(d *driver, q *drvQueue) {
		for i, x := range ds {
			d.writeDesc(q.desc, uint16(i), x.addr, x.len, x.flags, x.next)
		}
		d.publish(q, 0)
	}
}

// indirect writes ds as a table at table (0: a fresh one) and points
// descriptor 0 at it with length n (0: the table's own).
func indirect(table uint64, n uint32, ds ...advDesc) func(d *driver, q *drvQueue) {
	return func(d *driver, q *drvQueue) {
		table := table // the case runs on every device: allocate afresh each time
		if table == 0 {
			table = d.allocate(uint64(len(ds)+1) * descSize)
		}
		for i, x := range ds {
			// Tables that reach outside RAM are described, not written.
			if b, err := d.mem.Slice(table+uint64(i)*descSize, descSize); err == nil {
				binary.LittleEndian.PutUint64(b[0:], x.addr)
				binary.LittleEndian.PutUint32(b[8:], x.len)
				binary.LittleEndian.PutUint16(b[12:], x.flags)
				binary.LittleEndian.PutUint16(b[14:], x.next)
			}
		}
		n := n
		if n == 0 {
			n = uint32(len(ds)) * descSize
		}
		d.writeDesc(q.desc, 0, table, n, descFIndirect, 0)
		d.publish(q, 0)
	}
}

func advCases() []advCase {
	const (
		W = descFWrite
		N = descFNext
	)
	good := advDesc{advGood, 64, 0, 0}
	gw := advDesc{advGood, 64, W, 0}
	var all []advDesc // every descriptor of the queue, once, in a line
	for i := uint16(0); i < advQueue; i++ {
		all = append(all, advDesc{advGood + uint64(i)*64, 64, N, i + 1})
	}
	all[advQueue-1].flags = 0
	loopAll := append([]advDesc(nil), all...)
	loopAll[advQueue-1] = advDesc{advGood, 64, N, 0}
	big := make([]advDesc, defaultQueueMax) // 256 × 8 MiB: more than MaxChainBytes
	for i := range big {
		big[i] = advDesc{advSplit, 8 << 20, N, uint16(i + 1)}
	}
	big[len(big)-1].flags = 0

	return []advCase{
		// The available ring.
		{name: "avail idx ahead by queue size + 1", mustFail: true, ring: func(d *driver, q *drvQueue) {
			d.must(d.mem.PutUint16(q.avail+2, advQueue+1))
		}},
		{name: "avail idx ahead by 0x8000", mustFail: true, ring: func(d *driver, q *drvQueue) { d.must(d.mem.PutUint16(q.avail+2, 0x8000)) }},
		{name: "avail idx behind by one (0xffff ahead)", mustFail: true, ring: func(d *driver, q *drvQueue) { d.must(d.mem.PutUint16(q.avail+2, 0xffff)) }},
		{name: "head index equal to the queue size", mustFail: true, ring: func(d *driver, q *drvQueue) {
			d.writeDesc(q.desc, 0, advGood, 64, 0, 0)
			d.publish(q, advQueue)
		}},
		{name: "head index 0xffff", mustFail: true, ring: func(d *driver, q *drvQueue) { d.publish(q, 0xffff) }},
		{name: "same head published twice", ring: func(d *driver, q *drvQueue) {
			chain(good)(d, q)
			d.publish(q, 0)
		}},

		// Direct chains.
		{name: "next index equal to the queue size", mustFail: true, ring: chain(advDesc{advGood, 64, N, advQueue})},
		{name: "next index 0xffff", mustFail: true, ring: chain(advDesc{advGood, 64, N, 0xffff})},
		{name: "descriptor loops to itself", mustFail: true, ring: chain(advDesc{advGood, 64, N, 0})},
		{name: "two descriptors loop", mustFail: true, ring: chain(advDesc{advGood, 64, N, 1}, advDesc{advGood, 64, N, 0})},
		{name: "chain longer than the queue (every descriptor, then back)", mustFail: true, ring: chain(loopAll...)},
		{name: "chain of every descriptor once", ring: chain(all...)},
		{name: "readable buffer after a writable one", mustFail: true, ring: chain(advDesc{advGood, 64, W | N, 1}, good)},
		{name: "unknown flag bits", ring: chain(advDesc{advGood, 64, 0xfff8, 0})},

		// Addresses and lengths.
		{name: "buffer at address 0, below RAM", mustFail: true, ring: chain(advDesc{0, 64, 0, 0})},
		{name: "buffer crosses the end of RAM", mustFail: true, ring: chain(advDesc{advEnd - 8, 16, W, 0})},
		{name: "buffer starts at the end of RAM", mustFail: true, ring: chain(advDesc{advEnd, 1, W, 0})},
		{name: "buffer crosses from one region into the next", mustFail: true, ring: chain(advDesc{advSplit - 8, 16, W, 0})},
		{name: "buffer crosses the start of RAM", mustFail: true, ring: chain(advDesc{ramBase - 8, 16, 0, 0})},
		{name: "buffer far above RAM", mustFail: true, ring: chain(advDesc{1 << 40, 64, 0, 0})},
		{name: "buffer address plus length wraps", mustFail: true, ring: chain(advDesc{^uint64(0) - 8, 16, W, 0})},
		{name: "buffer at the last address", mustFail: true, ring: chain(advDesc{^uint64(0), 1, 0, 0})},
		{name: "buffer of 4 GiB - 1", mustFail: true, ring: chain(advDesc{advGood, 0xffffffff, W, 0})},
		{name: "buffer of 2 GiB", mustFail: true, ring: chain(advDesc{advGood, 0x80000000, W, 0})},
		{name: "buffer of 4 GiB - 1 at the start of RAM", mustFail: true, ring: chain(advDesc{ramBase, 0xffffffff, 0, 0})},
		{name: "zero-length buffer", ring: chain(advDesc{advGood, 0, 0, 0})},
		{name: "zero-length buffers, readable and writable", ring: chain(advDesc{advGood, 0, N, 1}, advDesc{advGood, 0, W, 0})},
		{name: "zero-length buffer outside RAM", mustFail: true, ring: chain(advDesc{1 << 40, 0, 0, 0})},
		{name: "buffer ends exactly at the end of RAM", ring: chain(advDesc{advEnd - 4096, 4096, W, 0})},
		{name: "buffer is the used ring itself", ring: func(d *driver, q *drvQueue) {
			chain(advDesc{q.used, 64, W, 0})(d, q)
		}},
		{name: "chain of more than MaxChainBytes", mustFail: true, ring: indirect(0, 0, big...)},

		// Indirect tables.
		{name: "indirect table of length 0", mustFail: true, ring: indirect(0, 1, gw)},
		{name: "indirect length not a multiple of 16", mustFail: true, ring: indirect(0, 24, gw, gw)},
		{name: "indirect length of 4 GiB - 16", mustFail: true, ring: indirect(0, 0xfffffff0, gw)},
		{name: "indirect table longer than QueueNumMax", mustFail: true, ring: indirect(advGood, (defaultQueueMax+1)*descSize, gw)},
		{name: "indirect table misaligned", ring: indirect(advBuf2+3, 0, gw)},
		{name: "indirect table outside RAM", mustFail: true, ring: indirect(1<<40, 32, gw)},
		{name: "indirect table crosses the end of RAM", mustFail: true, ring: indirect(advEnd-16, 32, gw)},
		{name: "indirect table crosses into the next region", mustFail: true, ring: indirect(advSplit-16, 32, gw)},
		{name: "indirect table address wraps", mustFail: true, ring: indirect(^uint64(0)-15, 32, gw)},
		{name: "nested indirect", mustFail: true, ring: indirect(0, 0, advDesc{advBuf2, 32, descFIndirect, 0})},
		{name: "indirect with NEXT", mustFail: true, ring: func(d *driver, q *drvQueue) {
			d.writeDesc(advBuf2, 0, advGood, 16, W, 0)
			d.writeDesc(q.desc, 0, advBuf2, descSize, descFIndirect|N, 1)
			d.writeDesc(q.desc, 1, advGood, 16, W, 0)
			d.publish(q, 0)
		}},
		{name: "indirect chain loops", mustFail: true, ring: indirect(0, 0, advDesc{advGood, 64, N, 1}, advDesc{advGood, 64, N, 0})},
		{name: "indirect next out of range", mustFail: true, ring: indirect(0, 0, advDesc{advGood, 64, N, 7}, gw)},
		{name: "indirect buffer outside RAM", mustFail: true, ring: indirect(0, 0, advDesc{0x3000, 16, W, 0})},
		{name: "indirect table is its own buffer", ring: func(d *driver, q *drvQueue) {
			indirect(advBuf2, 0, advDesc{advBuf2, descSize, W, 0})(d, q)
		}},
		{name: "indirect without VIRTIO_RING_F_INDIRECT_DESC", mustFail: true, noIndir: true, ring: indirect(0, 0, gw)},

		// Descriptors that change after the device read them: a second
		// vCPU rewrites descriptor 0 between good, looping and outside
		// RAM while the first notifies.
		{name: "descriptors changed while being read", race: true, ring: func(d *driver, q *drvQueue) {
			for i := 0; i < 2000; i++ {
				switch i % 3 {
				case 0:
					d.writeDesc(q.desc, 0, advGood, 64, 0, 0)
				case 1:
					d.writeDesc(q.desc, 0, advGood, 64, N, 0)
				case 2:
					d.writeDesc(q.desc, 0, advEnd-8, 0xffffffff, W, 0)
				}
			}
		}},
	}
}

func TestAdversarialVirtqueues(t *testing.T) {
	cases := advCases()
	if len(cases) < 40 {
		t.Fatalf("%d cases, want at least 40", len(cases))
	}
	for _, td := range testDevices {
		t.Run(td.name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					runAdversarial(t, td, tc)
				})
			}
		})
	}
}

func runAdversarial(t *testing.T, td testDevice, tc advCase) {
	dev, _ := td.make(t)
	features := uint64(allRingFeatures)
	if tc.noIndir {
		features = 1<<FeatureVersion1 | 1<<FeatureRingEventIdx
	}
	d, companion := newAdversarialDrivers(t, dev, td.nq, features)
	if td.name == "vsock" {
		// Receive buffers, so that the device can answer at all.
		rx := d.q[vsockRxQueue]
		for i := 0; i < 4; i++ {
			d.add(rx, buf{d.allocate(4096), 4096, true})
		}
		d.kick(rx)
	}
	q := d.q[attackQueue(td.name)]
	published := q.availIdx
	if tc.race {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc.ring(d, q)
		}()
		for i := 0; i < 200 && d.status()&StatusDeviceNeedsReset == 0; i++ {
			d.publish(q, 0)
			d.kick(q)
			d.takeUsed(q)
		}
		wg.Wait()
	} else {
		tc.ring(d, q)
		d.kick(q)
		d.kick(q) // a second notification of a failed device is ignored
	}
	made := q.availIdx - published // what the driver made available through publish
	status := d.status()
	used := d.takeUsed(q)
	if d.mmio.Failed() {
		t.Fatalf("the device model panicked (failed); it must fail the queue cleanly instead")
	}
	for _, u := range used {
		if u.id >= advQueue {
			t.Errorf("used element with id %d, outside a queue of %d", u.id, advQueue)
		}
	}
	if !tc.race && len(used) > int(made) {
		t.Errorf("%d used elements for %d chains made available", len(used), made)
	}
	if td.bounds != nil {
		if err := td.bounds(dev); err != nil {
			t.Error(err)
		}
	}
	if status&StatusDeviceNeedsReset != 0 {
		if got := d.r32(regInterruptStatus); got&InterruptConfigChange == 0 {
			t.Errorf("DEVICE_NEEDS_RESET without the config-change interrupt bit (InterruptStatus %#x)", got)
		}
	} else if tc.mustFail {
		t.Errorf("Status = %#x: a malformed queue must put the device in DEVICE_NEEDS_RESET", status)
	}

	// The other device on the bus goes on.
	if !goodRequest(t, "rng", companion) {
		t.Errorf("the companion device stopped answering")
	}
	// The driver resets the attacked device, and it works again.
	d.negotiate(allRingFeatures, false)
	for i := 0; i < td.nq; i++ {
		d.setupQueue(i, advQueue, nil)
	}
	d.driverOK()
	if s := d.status(); s&StatusDeviceNeedsReset != 0 || !goodRequest(t, td.name, d) {
		t.Errorf("after the driver's reset: Status %#x, and a good request was not answered", d.status())
	}
}
