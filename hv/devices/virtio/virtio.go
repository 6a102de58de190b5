// Package virtio models virtio devices behind the virtio-mmio transport
// (version 2): the transport's register file, split virtqueues, and the
// block, console, entropy, network, vsock, GPU (2D) and input devices.
//
// Everything follows the OASIS "Virtual I/O Device (VIRTIO) Version 1.2"
// specification (cited below as "spec §N"): the register map of §4.2.2,
// the split virtqueue of §2.7, and the device types of §5.
//
// A guest controls every byte of its virtqueues. This package reads them
// only through hv/mem, validates each address, length and index before
// use, and answers a malformed queue by putting the device into
// DEVICE_NEEDS_RESET (spec §2.1.2) with a configuration-change interrupt:
// the VMM itself never panics or stops because of what a guest wrote.
//
// Threads: a notification (a write to QueueNotify) is handled on the vCPU
// thread that wrote it wherever the work cannot block for long (block
// I/O, entropy, console and network transmit). Input that arrives from the
// host (console input, network receive) is handled by one goroutine per
// device.
//
// # Containment
//
// A device model's own bug is not the guest's to suffer twice: a panic on
// a vCPU thread (MMIO.Read, MMIO.Write) or on a device's own goroutine
// (console input, network receive, vsock connections, Dial; see
// contain.go) is recovered and fails that device for good, with one
// warning, DEVICE_NEEDS_RESET and a configuration-change interrupt. The
// transport calls into it no more; its queues give out no more chains.
//
// # Bounds
//
// What a guest can make the VMM hold, per device:
//   - a descriptor chain: fewer descriptors than the queue size plus
//     QueueNumMax (256), at most MaxChainBytes (2 GiB - 1) bytes, and a
//     Chain's slices reused from one chain to the next;
//   - virtio-blk: nothing beyond the chain; requests go straight between
//     guest memory and the file;
//   - virtio-net: one 64 KiB frame buffer for receive, nothing for transmit;
//   - virtio-console: maxConsoleInput (64 KiB) of host input waiting for
//     receive buffers; output is written at once;
//   - virtio-rng: nothing; at most rngMaxChain (64 KiB) is filled a chain;
//   - virtio-gpu: at most GPUConfig.MaxMemory (DefaultGPUMemory, 64 MiB,
//     unless configured) of resource pixels in gpuMaxResources (1024)
//     resources, gpuMaxEntries (65536) backing entries, one 64×64 cursor
//     (gpu.go);
//   - virtio-input: maxInputPending (256) events waiting for buffers;
//   - virtio-vsock: maxVsockConns (256) connections, each at most
//     vsockBufAlloc (256 KiB) unforwarded from the guest and one
//     vsockReadChunk (16 KiB) read from the host; packets of at most
//     maxVsockPayload (64 KiB); maxVsockReplies (512) pending resets.
//
// Guest-written queue numbers (QueueSel, QueueNotify) are compared as
// uint32 before they become an index, so that no value is negative on a
// 32-bit host.
package virtio

// Device IDs (spec §5).
const (
	IDNet     = 1
	IDBlock   = 2
	IDConsole = 3
	IDRNG     = 4
	IDGPU     = 16
	IDInput   = 18
)

// Device-independent feature bits (spec §6).
const (
	FeatureRingIndirectDesc = 28 // VIRTIO_RING_F_INDIRECT_DESC
	FeatureRingEventIdx     = 29 // VIRTIO_RING_F_EVENT_IDX
	FeatureVersion1         = 32 // VIRTIO_F_VERSION_1
)

// Device status bits (spec §2.1).
const (
	StatusAcknowledge      = 0x01
	StatusDriver           = 0x02
	StatusDriverOK         = 0x04
	StatusFeaturesOK       = 0x08
	StatusDeviceNeedsReset = 0x40
	StatusFailed           = 0x80
)

// InterruptStatus bits (spec §4.2.2).
const (
	InterruptUsedBuffer   = 0x1
	InterruptConfigChange = 0x2
)

// defaultQueueMax is the QueueNumMax every device here offers: large enough
// that a block request of seg_max segments fits without indirect
// descriptors, small enough that a queue's rings fit in a few pages.
const defaultQueueMax = 256

// A Device is one virtio device type behind a transport.
//
// The transport serialises Activate, Reset and Close against each other
// and against Notify; Notify itself may run on several vCPU threads at
// once (one per queue or the same queue), so a device serialises its own
// queue processing.
type Device interface {
	// DeviceID is the virtio device ID (spec §5), for example IDBlock.
	DeviceID() uint32
	// Name is a short name for messages: "virtio-blk".
	Name() string
	// Features are the device-type feature bits offered to the driver.
	// The transport adds the device-independent ones.
	Features() uint64
	// QueueMax gives each queue's maximum size; its length is the number
	// of queues.
	QueueMax() []uint16
	// ReadConfig fills data from the device configuration space at off.
	// Bytes past the end of the device's configuration read as zero.
	ReadConfig(off uint64, data []byte)
	// WriteConfig writes the device configuration space; most devices
	// ignore it.
	WriteConfig(off uint64, data []byte)
	// Activate starts the device once the driver sets DRIVER_OK. features
	// are those negotiated; queues[i] is nil where the driver left queue
	// i unused. An error puts the device into DEVICE_NEEDS_RESET.
	Activate(features uint64, queues []*Queue) error
	// Notify handles a driver notification for queue i, on the vCPU thread
	// that wrote QueueNotify. It is called only between Activate and Reset.
	Notify(i int)
	// Reset stops all use of the queues given to Activate; when it
	// returns, the device touches guest memory no more until the next
	// Activate.
	Reset()
	// Close releases the backend (file, TAP, goroutines). The device is
	// not used afterwards.
	Close() error
}
