package virtio

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/tandem-hv/tandem/internal/devfuzz"
)

// The virtio fuzz targets drive a device through its virtio-mmio window
// with real guest RAM (hv/mem, guard pages around it): after a driver's
// well-formed setup (features, every queue, DRIVER_OK), each input is a
// devfuzz sequence of register accesses and of events that write
// descriptors, rings and buffers into guest RAM and notify. FuzzVirtioMMIO
// fuzzes the transport's register file itself, from reset.

const (
	fuzzVirtioRAM   = 256 << 10 // rings in the upper half, buffers anywhere
	fuzzVirtioQueue = 8
)

// Events of the virtio fuzz targets. Queue numbers are taken modulo the
// device's queues, descriptor indices modulo the queue size.
const (
	evDesc     = 0 // [q, i, 16 raw bytes]: descriptor i as the input says
	evDescRAM  = 1 // [q, i, off16, len16, flags, next]: descriptor i at RAM offset off*16
	evPublish  = 2 // [q, head16]: head into the available ring, idx + 1
	evPoke     = 3 // [off24, bytes...]: bytes into guest RAM at off
	evKick     = 4 // [q]: QueueNotify
	evHost     = 5 // [bytes...]: the host's side acts (input, a frame)
	evAvailIdx = 6 // [q, idx16]: available idx set directly, running ahead or back
	evIndirect = 7 // [q, i, off16, n]: descriptor i points at an n-entry table at off*16
)

// lockedBuffer collects warnings written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func le16b(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

// Seed helpers: a descriptor at a RAM offset, a publish, a kick, bytes
// poked into RAM.
func sDesc(q, i uint8, off uint32, l uint16, flags uint16, next uint8) devfuzz.Op {
	b := []byte{q, i}
	b = append(b, le16b(uint16(off/16))...)
	b = append(b, le16b(l)...)
	return devfuzz.E(evDescRAM, append(b, byte(flags), next))
}
func sPublish(q uint8, head uint16) devfuzz.Op {
	return devfuzz.E(evPublish, append([]byte{q}, le16b(head)...))
}
func sKick(q uint8) devfuzz.Op { return devfuzz.E(evKick, []byte{q}) }
func sPoke(off uint32, b []byte) devfuzz.Op {
	return devfuzz.E(evPoke, append([]byte{byte(off), byte(off >> 8), byte(off >> 16)}, b...))
}

// requestSeeds are well-formed requests for each device.
func requestSeeds(name string) []devfuzz.Seed {
	switch name {
	case "blk":
		hdr := blkHeader(blkTIn, 1)
		return []devfuzz.Seed{
			{Name: "read", Ops: []devfuzz.Op{sPoke(0x1000, hdr), sDesc(0, 0, 0x1000, blkReqHeader, descFNext, 1),
				sDesc(0, 1, 0x2000, 512, descFWrite|descFNext, 2), sDesc(0, 2, 0x3000, 1, descFWrite, 0), sPublish(0, 0), sKick(0)}},
			{Name: "write-indirect", Ops: []devfuzz.Op{sPoke(0x1000, blkHeader(blkTOut, 2)),
				sDesc(0, 0, 0x1000, blkReqHeader, descFNext, 1), sDesc(0, 1, 0x2000, 512, descFNext, 2), sDesc(0, 2, 0x3000, 1, descFWrite, 0),
				devfuzz.E(evIndirect, []byte{0, 3, 0, 0, 3}), sPublish(0, 3), sKick(0)}},
			{Name: "get-id", Ops: []devfuzz.Op{sPoke(0x1000, blkHeader(blkTGetID, 0)), sDesc(0, 0, 0x1000, blkReqHeader, descFNext, 1),
				sDesc(0, 1, 0x2000, 21, descFWrite, 0), sPublish(0, 0), sKick(0)}},
		}
	case "rng":
		return []devfuzz.Seed{{Name: "fill", Ops: []devfuzz.Op{sDesc(0, 0, 0x1000, 64, descFWrite, 0), sPublish(0, 0), sKick(0),
			sDesc(0, 1, 0x2000, 0xffff, descFWrite, 0), sPublish(0, 1), sKick(0)}}}
	case "console":
		return []devfuzz.Seed{{Name: "out-and-in", Ops: []devfuzz.Op{sPoke(0x1000, []byte("hello\n")), sDesc(1, 0, 0x1000, 6, 0, 0),
			sPublish(1, 0), sKick(1), sDesc(0, 0, 0x2000, 64, descFWrite, 0), sPublish(0, 0), sKick(0), devfuzz.E(evHost, []byte("typed"))}}}
	case "net":
		frame := make([]byte, vnetHdrLen+60)
		return []devfuzz.Seed{{Name: "tx-and-rx", Ops: []devfuzz.Op{sPoke(0x1000, frame), sDesc(1, 0, 0x1000, uint16(len(frame)), 0, 0),
			sPublish(1, 0), sKick(1), sDesc(0, 0, 0x4000, 1526, descFWrite, 0), sPublish(0, 0), sKick(0), devfuzz.E(evHost, make([]byte, 60))}}}
	case "gpu":
		return gpuSeeds()
	case "keyboard", "touch":
		led := []byte{evLed, 0, ledCapsL, 0, 1, 0, 0, 0}
		return []devfuzz.Seed{{Name: "events-and-status", Ops: []devfuzz.Op{
			sDesc(0, 0, 0x1000, inputEventSize, descFWrite, 0), sPublish(0, 0), sDesc(0, 1, 0x1008, inputEventSize, descFWrite, 0), sPublish(0, 1),
			sKick(0), devfuzz.E(evHost, []byte{30, 0, 1, 0, 1}), devfuzz.E(evHost, []byte{30, 0, 0, 0, 0}),
			sPoke(0x2000, led), sDesc(1, 0, 0x2000, inputEventSize, 0, 0), sPublish(1, 0), sKick(1),
			devfuzz.R(regConfig+inputCfgOffSize, 1), devfuzz.W(regConfig, 1, inputCfgAbsInfo), devfuzz.R(regConfig+inputCfgOffUnion, 4)}}}
	case "vsock":
		pkt := make([]byte, VsockHeaderSize)
		h := guestHeader(VsockOpRequest)
		h.Encode(pkt)
		rw := make([]byte, VsockHeaderSize+4)
		h.Op, h.Len = VsockOpRW, 4
		h.Encode(rw)
		return []devfuzz.Seed{{Name: "connect-send", Ops: []devfuzz.Op{
			sDesc(0, 0, 0x8000, 4096, descFWrite, 0), sPublish(0, 0), sDesc(0, 1, 0x9000, 4096, descFWrite, 0), sPublish(0, 1), sKick(0),
			sPoke(0x1000, pkt), sDesc(1, 0, 0x1000, VsockHeaderSize, 0, 0), sPublish(1, 0), sKick(1),
			sPoke(0x2000, rw), sDesc(1, 1, 0x2000, uint16(len(rw)), 0, 0), sPublish(1, 1), sKick(1), devfuzz.E(evHost, nil)}}}
	}
	return nil
}

// gpuSeeds is what Linux's fbdev does at boot, one request a chain at
// RAM 0x1000 onwards with its response at 0x8000: display info, EDID,
// then a 32×32 resource created, backed by RAM at 0x10000, shown,
// transferred and flushed, and a cursor set from it.
func gpuSeeds() []devfuzz.Seed {
	const side = 32
	full := func(typ uint32, fields ...any) []byte {
		return gpuReq(typ, append([]any{uint32(0), uint32(0), uint32(side), uint32(side)}, fields...)...)
	}
	reqs := [][]byte{
		gpuReq(gpuCmdGetDisplayInfo),
		gpuReq(gpuCmdGetEDID, 0, 0),
		create2D(1, GPUFormatB8G8R8X8, side, side),
		attach(1, [2]uint64{ramBase + 0x10000, side * side * 4}),
		full(gpuCmdSetScanout, 0, 1),
		full(gpuCmdTransferToHost2D, uint64(0), 1, 0),
		full(gpuCmdResourceFlush, 1, 0),
	}
	var ops []devfuzz.Op
	for i, r := range reqs {
		off := uint32(0x1000 + 0x100*i)
		di := uint8(2 * i % fuzzVirtioQueue)
		ops = append(ops, sPoke(off, r), sDesc(0, di, off, uint16(len(r)), descFNext, di+1),
			sDesc(0, di+1, 0x8000, gpuRespEDIDSize, descFWrite, 0), sPublish(0, uint16(di)), sKick(0))
	}
	cur := gpuReq(gpuCmdUpdateCursor, 0, 10, 10, 0, 1, 0, 0, 0)
	ops = append(ops, sPoke(0x3000, cur), sDesc(1, 0, 0x3000, uint16(len(cur)), 0, 0), sPublish(1, 0), sKick(1), devfuzz.E(evHost, nil))
	return []devfuzz.Seed{{Name: "fbdev-boot", Ops: ops}}
}

func findTestDevice(name string) testDevice {
	for _, td := range testDevices {
		if td.name == name {
			return td
		}
	}
	panic("no test device " + name)
}

// fuzzRequests is the body of the per-device fuzz targets.
func fuzzRequests(f *testing.F, name string) {
	td := findTestDevice(name)
	devfuzz.Seeds(f, requestSeeds(name)...)
	f.Fuzz(func(t *testing.T, data []byte) {
		dev, host := td.make(t)
		d := newDriverSized(t, dev, fuzzVirtioRAM)
		warn := &lockedBuffer{}
		d.mmio.SetWarnings(warn)
		d.start(allRingFeatures, td.nq, fuzzVirtioQueue)
		ram := uint64(fuzzVirtioRAM)
		queue := func(b []byte) *drvQueue {
			if len(b) == 0 {
				return d.q[0]
			}
			return d.q[int(b[0])%td.nq]
		}
		arg := func(b []byte, n int) []byte { // b padded to n bytes
			return append(append([]byte(nil), b...), make([]byte, max(0, n-len(b)))...)
		}
		event := func(op devfuzz.Op) {
			b := op.Data
			switch op.Event {
			case evDesc:
				b = arg(b, 2+descSize)
				q := queue(b)
				d.write(q.desc+uint64(b[1]%fuzzVirtioQueue)*descSize, b[2:2+descSize])
			case evDescRAM:
				b = arg(b, 8)
				q := queue(b)
				off := uint64(binary.LittleEndian.Uint16(b[2:])) * 16 % ram
				d.writeDesc(q.desc, uint16(b[1]%fuzzVirtioQueue), ramBase+off, uint32(binary.LittleEndian.Uint16(b[4:])), uint16(b[6]), uint16(b[7]))
			case evPublish:
				b = arg(b, 3)
				d.publish(queue(b), binary.LittleEndian.Uint16(b[1:]))
			case evPoke:
				b = arg(b, 3)
				off := (uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16) % (ram - uint64(len(b)-3))
				d.pokeOutsideUsedRings(ramBase+off, b[3:])
			case evKick:
				d.w32(regQueueNotify, uint32(queue(b).index))
			case evHost:
				if host != nil {
					host(b)
				}
			case evAvailIdx:
				b = arg(b, 3)
				q := queue(b)
				q.availIdx = binary.LittleEndian.Uint16(b[1:])
				d.must(d.mem.PutUint16(q.avail+2, q.availIdx))
			case evIndirect:
				b = arg(b, 5)
				q := queue(b)
				off := uint64(binary.LittleEndian.Uint16(b[2:])) * 16 % ram
				d.writeDesc(q.desc, uint16(b[1]%fuzzVirtioQueue), ramBase+off, uint32(b[4])*descSize, descFIndirect, 0)
			}
		}
		devfuzz.Apply(d.mmio, devfuzz.Decode(data, MMIOSize), event, func(i int, op devfuzz.Op, got uint64) {
			if d.mmio.Failed() {
				t.Fatalf("after %v: the device model failed: %s", op, warn)
			}
			if td.bounds != nil {
				if err := td.bounds(dev); err != nil {
					t.Fatalf("after %v: %v", op, err)
				}
			}
			for _, q := range d.q {
				for _, u := range d.takeUsed(q) {
					if u.id >= uint32(q.size) {
						t.Fatalf("after %v: queue %d: used element with id %d, outside a queue of %d", op, q.index, u.id, q.size)
					}
				}
			}
		})
	})
}

// pokeOutsideUsedRings writes b into guest RAM at gpa, except the bytes
// that fall on a used ring. Only the device writes a used ring (spec
// §2.7.8), and the check after each operation reads the elements there
// as the device's: a poke over them would make it judge the fuzzer's own
// bytes.
func (d *driver) pokeOutsideUsedRings(gpa uint64, b []byte) {
	for i := range b {
		a := gpa + uint64(i)
		onRing := false
		for _, q := range d.q {
			_, _, ul := ringSizes(q.size)
			if a >= q.used && a < q.used+ul {
				onRing = true
			}
		}
		if !onRing {
			d.write(a, b[i:i+1])
		}
	}
}

func FuzzVirtioBlk(f *testing.F)     { fuzzRequests(f, "blk") }
func FuzzVirtioRNG(f *testing.F)     { fuzzRequests(f, "rng") }
func FuzzVirtioConsole(f *testing.F) { fuzzRequests(f, "console") }
func FuzzVirtioNet(f *testing.F)     { fuzzRequests(f, "net") }
func FuzzVirtioVsock(f *testing.F)   { fuzzRequests(f, "vsock") }
func FuzzVirtioGPU(f *testing.F)     { fuzzRequests(f, "gpu") }

// FuzzVirtioInput fuzzes the touch screen, the virtio-input device with
// the most configuration (PROP_BITS, ABS_INFO); the keyboard differs
// only in what its configuration and events say.
func FuzzVirtioInput(f *testing.F) { fuzzRequests(f, "touch") }

// FuzzVirtioMMIO drives the transport's register file from reset with any
// sequence of accesses, guest RAM pokes and notifications, in front of an
// entropy device. It must not panic or fail the device model; the
// identification registers never change; QueueNumMax reads only the
// device's maximum or 0; Status never shows a bit the driver did not set
// besides DEVICE_NEEDS_RESET.
func FuzzVirtioMMIO(f *testing.F) {
	ring := func(q uint32, off, gpa uint64) []devfuzz.Op {
		return []devfuzz.Op{devfuzz.W(off, 4, gpa&0xffffffff), devfuzz.W(off+4, 4, gpa>>32)}
	}
	setup := []devfuzz.Op{devfuzz.R(regMagicValue, 4), devfuzz.R(regVersion, 4), devfuzz.R(regDeviceID, 4),
		devfuzz.W(regStatus, 4, StatusAcknowledge), devfuzz.W(regStatus, 4, StatusAcknowledge|StatusDriver),
		devfuzz.W(regDeviceFeaturesSel, 4, 1), devfuzz.R(regDeviceFeatures, 4), devfuzz.W(regDriverFeaturesSel, 4, 1),
		devfuzz.W(regDriverFeatures, 4, 1), devfuzz.W(regStatus, 4, StatusAcknowledge|StatusDriver|StatusFeaturesOK),
		devfuzz.R(regStatus, 4), devfuzz.W(regQueueSel, 4, 0), devfuzz.R(regQueueNumMax, 4), devfuzz.W(regQueueNum, 4, 8)}
	setup = append(setup, ring(0, regQueueDescLow, ramBase+0x1000)...)
	setup = append(setup, ring(0, regQueueDriverLow, ramBase+0x2000)...)
	setup = append(setup, ring(0, regQueueDeviceLow, ramBase+0x3000)...)
	setup = append(setup, devfuzz.W(regQueueReady, 4, 1), devfuzz.W(regStatus, 4, 0xf),
		sPoke(0x1000, append(binary.LittleEndian.AppendUint64(nil, ramBase+0x4000), 64, 0, 0, 0, descFWrite, 0, 0, 0)),
		sPoke(0x2002, []byte{1, 0, 0, 0}), devfuzz.W(regQueueNotify, 4, 0), devfuzz.R(regInterruptStatus, 4), devfuzz.W(regInterruptACK, 4, 1))
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "linux-probe", Ops: setup},
		devfuzz.Seed{Name: "out-of-range-queue", Ops: []devfuzz.Op{devfuzz.W(regQueueSel, 4, 0xffffffff), devfuzz.R(regQueueNumMax, 4),
			devfuzz.W(regQueueReady, 4, 1), devfuzz.W(regQueueNotify, 4, 0xffffffff), devfuzz.R(regConfig, 8)}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDriverSized(t, NewRNG(), fuzzVirtioRAM)
		warn := &lockedBuffer{}
		d.mmio.SetWarnings(warn)
		var driverSet uint32 // every Status bit the driver has written
		devfuzz.Apply(d.mmio, devfuzz.Decode(data, MMIOSize), func(op devfuzz.Op) {
			if op.Event == evPoke && len(op.Data) > 3 {
				b := op.Data
				off := (uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16) % (fuzzVirtioRAM - uint64(len(b)-3))
				d.write(ramBase+off, b[3:])
			}
		}, func(i int, op devfuzz.Op, got uint64) {
			if d.mmio.Failed() {
				t.Fatalf("after %v: the device model failed: %s", op, warn)
			}
			if op.Kind == devfuzz.Write && op.Off == regStatus && op.Size == 4 {
				driverSet |= uint32(op.Value)
			}
			if op.Kind != devfuzz.Read || op.Size != 4 || op.Off%4 != 0 {
				return
			}
			want := map[uint64]uint64{regMagicValue: MagicValue, regVersion: mmioVersion, regDeviceID: IDRNG, regVendorID: VendorID}
			if w, ok := want[op.Off]; ok && got != w {
				t.Fatalf("after %v: read %#x, want %#x", op, got, w)
			}
			if op.Off == regQueueNumMax && got != 0 && got != defaultQueueMax {
				t.Fatalf("after %v: QueueNumMax = %d", op, got)
			}
			if op.Off == regStatus && uint32(got)&^(driverSet|StatusDeviceNeedsReset) != 0 {
				t.Fatalf("after %v: Status = %#x, with bits the driver never set (it set %#x)", op, got, driverSet)
			}
		})
	})
}
