package virtio

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/mem"
)

// virtio-mmio register offsets (spec §4.2.2, "MMIO Device Register Layout").
const (
	regMagicValue        = 0x000
	regVersion           = 0x004
	regDeviceID          = 0x008
	regVendorID          = 0x00c
	regDeviceFeatures    = 0x010
	regDeviceFeaturesSel = 0x014
	regDriverFeatures    = 0x020
	regDriverFeaturesSel = 0x024
	regQueueSel          = 0x030
	regQueueNumMax       = 0x034
	regQueueNum          = 0x038
	regQueueReady        = 0x044
	regQueueNotify       = 0x050
	regInterruptStatus   = 0x060
	regInterruptACK      = 0x064
	regStatus            = 0x070
	regQueueDescLow      = 0x080
	regQueueDescHigh     = 0x084
	regQueueDriverLow    = 0x090
	regQueueDriverHigh   = 0x094
	regQueueDeviceLow    = 0x0a0
	regQueueDeviceHigh   = 0x0a4
	regSHMSel            = 0x0ac
	regSHMLenLow         = 0x0b0
	regSHMLenHigh        = 0x0b4
	regSHMBaseLow        = 0x0b8
	regSHMBaseHigh       = 0x0bc
	regConfigGeneration  = 0x0fc
	regConfig            = 0x100
)

const (
	// MagicValue is "virt" in little-endian ASCII.
	MagicValue = 0x74726976
	// mmioVersion is the non-legacy virtio-mmio interface (spec §4.2.2).
	mmioVersion = 2
	// VendorID is the PCI-SIG vendor ID of Red Hat, Inc., which Linux's
	// virtio-mmio devices in QEMU and Firecracker also report; drivers
	// ignore it.
	VendorID = 0x1af4

	// MMIOSize is the size of a virtio-mmio window: the register file
	// plus up to 256 bytes of device configuration. It is what Linux's
	// virtio_mmio.device= command line and device trees use (0x200).
	MMIOSize = 0x200
)

// transportFeatures are the device-independent features every device
// offers. VIRTIO_F_VERSION_1 is mandatory for a version 2 transport.
const transportFeatures = 1<<FeatureVersion1 | 1<<FeatureRingIndirectDesc | 1<<FeatureRingEventIdx

// queueRegs is the driver's setup of one queue as written to the
// registers, and the Queue built from it once it is ready.
type queueRegs struct {
	cfg   QueueConfig
	ready bool
	q     *Queue
}

// MMIO is a virtio-mmio (version 2) transport for one Device. It
// implements bus.Device; place it in guest MMIO space with MMIOSize bytes.
type MMIO struct {
	dev  Device
	mem  *mem.Memory
	irq  devices.Interrupt
	warn *devices.RateLimited

	// What the device says of itself, asked once at NewMMIO, so that a
	// failed device (below) is never called again to answer them.
	id       uint32
	name     string
	features uint64   // the device's and the transport's
	max      []uint16 // the device's QueueMax

	// mu protects everything below it up to the atomics. Register
	// writes take it for writing; QueueNotify takes it for reading, so
	// vCPUs notify in parallel while activation and reset of the device
	// wait for every notification in progress.
	// Lock order: MMIO.mu before any lock of the device.
	mu             sync.RWMutex
	placement      devices.Placement
	status         uint32
	deviceFeatSel  uint32
	driverFeatSel  uint32
	driverFeatures uint64
	queueSel       uint32
	queues         []queueRegs
	active         bool // Activate succeeded and Reset not yet called
	closed         bool

	// Written from device goroutines and the queues without mu: a
	// receive goroutine must never wait for a vCPU holding mu.
	interruptStatus atomic.Uint32
	needsReset      atomic.Bool
	// failed is set, once, when the device model panicked (on a vCPU
	// thread or one of its own goroutines): its state may be broken and
	// its locks held, so the transport calls into it no more. The driver
	// sees DEVICE_NEEDS_RESET; after its reset the device refuses
	// FEATURES_OK, so the driver gives up on it (spec §3.1.1 step 6).
	failed atomic.Bool
}

// NewMMIO puts dev behind a virtio-mmio transport that reaches guest
// memory through m and interrupts the guest through irq.
func NewMMIO(dev Device, m *mem.Memory, irq devices.Interrupt) *MMIO {
	max := dev.QueueMax()
	t := &MMIO{
		dev:      dev,
		mem:      m,
		irq:      irq,
		id:       dev.DeviceID(),
		name:     dev.Name(),
		features: dev.Features() | transportFeatures,
		max:      max,
		queues:   make([]queueRegs, len(max)),
		warn:     devices.NewRateLimited(os.Stderr, 5),
	}
	if w, ok := dev.(workerDevice); ok {
		w.guard().setOwner(t)
	}
	return t
}

// SetWarnings sends the transport's rate-limited warnings about guest
// misbehaviour to w instead of standard error; nil discards them.
func (t *MMIO) SetWarnings(w io.Writer) { t.warn.SetOutput(w) }

// SetPlacement records where the VMM put the device; Placement returns it.
func (t *MMIO) SetPlacement(p devices.Placement) {
	t.mu.Lock()
	t.placement = p
	t.mu.Unlock()
}

// Placement returns what SetPlacement recorded.
func (t *MMIO) Placement() devices.Placement {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.placement
}

// DeviceID returns the virtio device ID of the device behind the transport.
func (t *MMIO) DeviceID() uint32 { return t.id }

// Name returns the device's short name, such as "virtio-blk".
func (t *MMIO) Name() string { return t.name }

// Device returns the device behind the transport.
func (t *MMIO) Device() Device { return t.dev }

// Close stops the device and releases its backend. A failed device is
// not closed: its locks may be held by the code that panicked, and
// waiting for them would hang the VMM's exit; the process's end releases
// its backend instead.
func (t *MMIO) Close() (err error) {
	defer t.contain(nil)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.resetLocked()
	if t.failed.Load() {
		return nil
	}
	return t.dev.Close()
}

func (t *MMIO) deviceFeatures() uint64 { return t.features }

// Failed reports whether the device model panicked and was failed.
func (t *MMIO) Failed() bool { return t.failed.Load() }

// contain is deferred by every entry into the transport from outside
// (the bus, Close): it recovers a panic of the device model, or of the
// transport itself, and fails the device. data, for a read, is zeroed.
func (t *MMIO) contain(data []byte) {
	if p := recover(); p != nil {
		clear(data)
		t.deviceFailed(bus.NewFault(p))
	}
}

// deviceFailed fails the device for good, once: one warning, then
// DEVICE_NEEDS_RESET and a configuration-change interrupt (spec §2.1.2).
// It takes no lock (a panicking vCPU may hold mu for reading, a device
// goroutine none), so any goroutine may call it.
func (t *MMIO) deviceFailed(f *bus.Fault) {
	if !t.failed.CompareAndSwap(false, true) {
		return
	}
	t.warn.Printf("%s: device model failed: %v; the device is stopped (DEVICE_NEEDS_RESET), and the guest and its other devices go on", t.name, f)
	t.setNeedsReset()
}

// Read implements bus.Device.
func (t *MMIO) Read(off uint64, data []byte) {
	defer t.contain(data)
	if off >= regConfig {
		if t.failed.Load() {
			clear(data)
			return
		}
		t.dev.ReadConfig(off-regConfig, data)
		return
	}
	clear(data)
	if len(data) != 4 || off%4 != 0 {
		t.warn.Printf("%s: %d-byte read at register %#x ignored: virtio-mmio registers are 32 bits", t.name, len(data), off)
		return
	}
	binary.LittleEndian.PutUint32(data, t.readReg(off))
}

func (t *MMIO) readReg(off uint64) uint32 {
	switch off {
	case regMagicValue:
		return MagicValue
	case regVersion:
		return mmioVersion
	case regDeviceID:
		return t.id
	case regVendorID:
		return VendorID
	case regInterruptStatus:
		return t.interruptStatus.Load()
	case regConfigGeneration:
		// No device here changes its configuration behind the driver's
		// back, so the generation never moves.
		return 0
	case regSHMLenLow, regSHMLenHigh:
		return 0xffffffff // no shared memory region (spec §4.2.2)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	switch off {
	case regDeviceFeatures:
		switch t.deviceFeatSel {
		case 0:
			return uint32(t.deviceFeatures())
		case 1:
			return uint32(t.deviceFeatures() >> 32)
		}
		return 0
	case regQueueNumMax:
		if qr := t.selected(); qr != nil {
			return uint32(t.max[t.queueSel])
		}
		return 0
	case regQueueReady:
		if qr := t.selected(); qr != nil && qr.ready {
			return 1
		}
		return 0
	case regStatus:
		s := t.status
		if t.needsReset.Load() {
			s |= StatusDeviceNeedsReset
		}
		return s
	}
	t.warn.Printf("%s: read of write-only or unknown register %#x", t.name, off)
	return 0
}

// selected returns the registers of the queue QueueSel names, or nil.
// The caller holds mu.
func (t *MMIO) selected() *queueRegs {
	if q, ok := t.queueIndex(t.queueSel); ok {
		return &t.queues[q]
	}
	return nil
}

// queueIndex turns a guest-written queue number (QueueSel, QueueNotify)
// into an index of t.queues. It compares in 32 bits: converting first to
// int would make 0xffffffff the index -1 on a 32-bit host, which passes a
// "< len" check and panics when used.
func (t *MMIO) queueIndex(v uint32) (int, bool) {
	if v >= uint32(len(t.queues)) {
		return 0, false
	}
	return int(v), true
}

// Write implements bus.Device.
func (t *MMIO) Write(off uint64, data []byte) {
	defer t.contain(nil)
	if off >= regConfig {
		t.mu.Lock()
		defer t.mu.Unlock()
		if !t.failed.Load() {
			t.dev.WriteConfig(off-regConfig, data)
		}
		return
	}
	if len(data) != 4 || off%4 != 0 {
		t.warn.Printf("%s: %d-byte write at register %#x ignored: virtio-mmio registers are 32 bits", t.name, len(data), off)
		return
	}
	v := binary.LittleEndian.Uint32(data)
	switch off {
	case regQueueNotify:
		t.notify(v)
		return
	case regInterruptACK:
		t.interruptStatus.And(^v)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	switch off {
	case regDeviceFeaturesSel:
		t.deviceFeatSel = v
	case regDriverFeaturesSel:
		t.driverFeatSel = v
	case regDriverFeatures:
		// Features are fixed once FEATURES_OK is set (spec §3.1.1).
		if t.status&StatusFeaturesOK != 0 {
			t.warn.Printf("%s: driver features written after FEATURES_OK ignored", t.name)
			return
		}
		switch t.driverFeatSel {
		case 0:
			t.driverFeatures = t.driverFeatures&^0xffffffff | uint64(v)
		case 1:
			t.driverFeatures = t.driverFeatures&0xffffffff | uint64(v)<<32
		}
	case regQueueSel:
		t.queueSel = v
	case regQueueNum, regQueueDescLow, regQueueDescHigh, regQueueDriverLow,
		regQueueDriverHigh, regQueueDeviceLow, regQueueDeviceHigh:
		t.writeQueueReg(off, v)
	case regQueueReady:
		t.writeQueueReady(v)
	case regStatus:
		t.writeStatus(v)
	case regSHMSel:
		// No shared memory regions: any selection reads length ~0.
	default:
		t.warn.Printf("%s: write to read-only or unknown register %#x ignored", t.name, off)
	}
}

func setLow(x *uint64, v uint32)  { *x = *x&^0xffffffff | uint64(v) }
func setHigh(x *uint64, v uint32) { *x = *x&0xffffffff | uint64(v)<<32 }

// writeQueueReg handles the queue setup registers. The caller holds mu.
func (t *MMIO) writeQueueReg(off uint64, v uint32) {
	qr := t.selected()
	if qr == nil {
		t.warn.Printf("%s: queue register %#x written for queue %d, which does not exist", t.name, off, t.queueSel)
		return
	}
	// The driver must not change a queue that is ready (spec §4.2.2.2).
	if qr.ready {
		t.warn.Printf("%s: queue %d register %#x written while the queue is ready; ignored", t.name, t.queueSel, off)
		return
	}
	switch off {
	case regQueueNum:
		qr.cfg.Size = uint16(v)
		if v > 0xffff {
			qr.cfg.Size = 0 // caught as invalid at QueueReady
		}
	case regQueueDescLow:
		setLow(&qr.cfg.Desc, v)
	case regQueueDescHigh:
		setHigh(&qr.cfg.Desc, v)
	case regQueueDriverLow:
		setLow(&qr.cfg.Driver, v)
	case regQueueDriverHigh:
		setHigh(&qr.cfg.Driver, v)
	case regQueueDeviceLow:
		setLow(&qr.cfg.Device, v)
	case regQueueDeviceHigh:
		setHigh(&qr.cfg.Device, v)
	}
}

// writeQueueReady checks the selected queue's setup against guest memory
// when the driver enables it. The caller holds mu.
func (t *MMIO) writeQueueReady(v uint32) {
	qr := t.selected()
	if qr == nil {
		t.warn.Printf("%s: QueueReady written for queue %d, which does not exist", t.name, t.queueSel)
		return
	}
	if v == 0 {
		// Linux clears QueueReady when deleting a queue, after reset.
		if t.active {
			t.warn.Printf("%s: queue %d disabled while the device runs; ignored", t.name, t.queueSel)
			return
		}
		qr.ready, qr.q = false, nil
		return
	}
	if qr.ready {
		return
	}
	q, err := newQueue(int(t.queueSel), t.mem, t, qr.cfg, t.max[t.queueSel], t.driverFeatures)
	if err != nil {
		t.queueFailed(int(t.queueSel), err)
		return
	}
	qr.ready, qr.q = true, q
}

// writeStatus steps the device through initialisation (spec §3.1.1).
// The caller holds mu.
func (t *MMIO) writeStatus(v uint32) {
	if v == 0 {
		t.resetLocked()
		return
	}
	v &^= StatusDeviceNeedsReset // the device's bit, not the driver's
	added := v &^ t.status
	if added&StatusFeaturesOK != 0 {
		if err := t.checkFeatures(); err != nil {
			if !t.failed.Load() { // a failed device has said why already
				t.warn.Printf("%s: %v", t.name, err)
			}
			// Leave FEATURES_OK clear: the driver reads it back and
			// gives up (spec §3.1.1 step 6).
			v &^= StatusFeaturesOK
			added &^= StatusFeaturesOK
		}
	}
	t.status = v
	if added&StatusDriverOK != 0 && t.status&StatusFeaturesOK != 0 && !t.active && !t.needsReset.Load() && !t.failed.Load() {
		t.activateLocked()
	}
}

func (t *MMIO) checkFeatures() error {
	if t.failed.Load() {
		return fmt.Errorf("the device model failed earlier")
	}
	if extra := t.driverFeatures &^ t.deviceFeatures(); extra != 0 {
		return fmt.Errorf("driver accepted features %#x that were not offered", extra)
	}
	if t.driverFeatures&(1<<FeatureVersion1) == 0 {
		return fmt.Errorf("driver did not accept VIRTIO_F_VERSION_1, which a version 2 transport requires (legacy drivers are not supported)")
	}
	return nil
}

// activateLocked starts the device with the ready queues. The caller
// holds mu.
func (t *MMIO) activateLocked() {
	qs := make([]*Queue, len(t.queues))
	for i := range t.queues {
		if q := t.queues[i].q; q != nil {
			// EVENT_IDX and INDIRECT_DESC take effect as negotiated,
			// however the driver ordered its writes.
			q.eventIdx = t.driverFeatures&(1<<FeatureRingEventIdx) != 0
			q.indirect = t.driverFeatures&(1<<FeatureRingIndirectDesc) != 0
			qs[i] = q
		}
	}
	if err := t.dev.Activate(t.driverFeatures, qs); err != nil {
		t.warn.Printf("%s: activating: %v", t.name, err)
		t.setNeedsReset()
		return
	}
	t.active = true
}

// resetLocked returns the transport and device to their initial state
// (spec §2.4). The caller holds mu.
func (t *MMIO) resetLocked() {
	if t.active {
		if !t.failed.Load() {
			t.dev.Reset()
		}
		t.active = false
	}
	t.status = 0
	t.deviceFeatSel, t.driverFeatSel, t.driverFeatures, t.queueSel = 0, 0, 0, 0
	for i := range t.queues {
		t.queues[i] = queueRegs{}
	}
	t.interruptStatus.Store(0)
	t.needsReset.Store(false)
}

// QueueNotifyOffset is the offset of the QueueNotify register in a
// transport's window (spec §4.2.2): a VMM that has KVM signal an eventfd
// for writes there (KVM_IOEVENTFD) passes them on with NotifyQueue.
const QueueNotifyOffset = regQueueNotify

// Queues returns how many virtqueues the device has: the values a
// driver may write to QueueNotify.
func (t *MMIO) Queues() int { return len(t.max) }

// NotifyQueue is a write of q to QueueNotify that reached the VMM other
// than through Write: KVM signalled an eventfd for it (KVM_IOEVENTFD with
// q as the datamatch), and the guest did not exit to the VMM at all. It
// may run on any goroutine, concurrently with Write, and is contained as
// Write is: a panic of the device model fails the device, not the VMM.
func (t *MMIO) NotifyQueue(q uint32) {
	defer t.contain(nil)
	t.notify(q)
}

// notify passes a QueueNotify write to the device. Without
// VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
func (t *MMIO) notify(v uint32) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if !t.active || t.needsReset.Load() || t.failed.Load() {
		return
	}
	q, ok := t.queueIndex(v)
	if !ok || t.queues[q].q == nil {
		t.warn.Printf("%s: notify for queue %d, which is not set up", t.name, v)
		return
	}
	t.dev.Notify(q)
}

// stopped reports whether the device failed (queueOwner): its queues
// then give it no more chains.
func (t *MMIO) stopped() bool { return t.failed.Load() }

// usedBuffer raises the used-buffer interrupt (queueOwner).
func (t *MMIO) usedBuffer() { t.raise(InterruptUsedBuffer) }

// queueFailed puts the device into DEVICE_NEEDS_RESET and tells the driver
// through a configuration-change interrupt (spec §2.1.2; queueOwner).
func (t *MMIO) queueFailed(q int, err error) {
	t.warn.Printf("%s: %v; device needs reset", t.name, err)
	t.setNeedsReset()
}

func (t *MMIO) setNeedsReset() {
	if t.needsReset.CompareAndSwap(false, true) {
		t.raise(InterruptConfigChange)
	}
}

// raise sets an InterruptStatus bit before triggering the edge, so the
// driver's handler finds the reason when it reads the register.
func (t *MMIO) raise(bit uint32) {
	t.interruptStatus.Or(bit)
	if err := t.irq.Trigger(); err != nil {
		t.warn.Printf("%s: raising interrupt: %v", t.name, err)
	}
}
