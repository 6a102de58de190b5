package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/tandem-hv/tandem/hv/mem"
)

// Split virtqueue layout (spec §2.7).
const (
	descSize      = 16 // struct virtq_desc: addr u64, len u32, flags u16, next u16
	usedElemSize  = 8  // struct virtq_used_elem: id u32, len u32
	ringHeader    = 4  // flags u16, idx u16 of both rings
	ringEventSize = 2  // used_event / avail_event u16 after each ring

	// Alignment the driver must give each part (spec §2.7, table
	// "Virtqueue Part Alignment").
	descAlign  = 16
	availAlign = 2
	usedAlign  = 4

	// maxQueueSize is the largest queue size the spec allows (§2.7).
	maxQueueSize = 32768

	// MaxChainBytes bounds the bytes of one descriptor chain, readable
	// and writable together. The spec sets no such bound, but the used
	// ring reports a chain's length in 32 bits (§2.7.8), no device here
	// takes more than 128 MiB in one request (virtio-blk's seg_max ×
	// size_max), and below 2 GiB every sum of buffer lengths fits an int
	// on a 32-bit host: a chain that names the same 1 GiB buffer 300
	// times would otherwise wrap the devices' arithmetic there. A longer
	// chain is a malformed queue.
	MaxChainBytes = 1<<31 - 1
)

// Descriptor flags (spec §2.7.5).
const (
	descFNext     = 1 // VIRTQ_DESC_F_NEXT
	descFWrite    = 2 // VIRTQ_DESC_F_WRITE
	descFIndirect = 4 // VIRTQ_DESC_F_INDIRECT
)

// availFNoInterrupt is VIRTQ_AVAIL_F_NO_INTERRUPT (spec §2.7.7), the
// driver's interrupt suppression when EVENT_IDX is not negotiated.
const availFNoInterrupt = 1

// ErrBadQueue wraps every error caused by what a guest wrote into a
// virtqueue or its registers. The queue stops and the device goes to
// DEVICE_NEEDS_RESET.
var ErrBadQueue = errors.New("malformed virtqueue")

// queueOwner is the transport side of a queue: where its interrupts and
// failures go, and whether the device is stopped. Each may be called
// from any goroutine and must not block on a vCPU.
type queueOwner interface {
	usedBuffer()
	queueFailed(q int, err error)
	// stopped reports that the device model failed: its queues give out
	// no more chains, even to goroutines of the device still running.
	stopped() bool
}

// QueueConfig is the driver's setup of one queue, as written to the
// transport's registers.
type QueueConfig struct {
	Size   uint16
	Desc   uint64 // descriptor table
	Driver uint64 // available ring
	Device uint64 // used ring
}

// ringSizes returns the byte sizes of the descriptor table, the available
// ring and the used ring for a queue of n entries, event fields included.
func ringSizes(n uint16) (desc, avail, used uint64) {
	return descSize * uint64(n),
		ringHeader + 2*uint64(n) + ringEventSize,
		ringHeader + usedElemSize*uint64(n) + ringEventSize
}

// A Queue is one activated split virtqueue.
//
// A Queue has no lock: its device uses it from one goroutine at a time
// (each device documents the mutex that ensures this), and the transport
// hands out a fresh Queue at each activation.
type Queue struct {
	index       int
	mem         *mem.Memory
	owner       queueOwner
	size        uint16
	eventIdx    bool
	indirect    bool
	maxIndirect int

	// The rings, bounds-checked once at activation. They alias guest
	// memory: the guest may change any byte at any time, so every value
	// read from them is checked again before it is used.
	desc, avail, used []byte

	lastAvail uint16 // next available-ring slot the device reads
	nextUsed  uint16 // used idx the device publishes next
	signalled uint16 // nextUsed when the device last decided about an interrupt
	broken    bool
}

// newQueue validates a queue's configuration against guest memory. max is
// the queue's QueueNumMax; it also bounds indirect tables.
func newQueue(index int, m *mem.Memory, owner queueOwner, cfg QueueConfig, max uint16, features uint64) (*Queue, error) {
	n := cfg.Size
	if n == 0 || n > max || n > maxQueueSize || n&(n-1) != 0 {
		return nil, fmt.Errorf("queue %d size %d: must be a power of two from 1 to QueueNumMax %d: %w", index, n, max, ErrBadQueue)
	}
	dl, al, ul := ringSizes(n)
	parts := []struct {
		name  string
		gpa   uint64
		len   uint64
		align uint64
		dst   *[]byte
	}{
		{"descriptor table", cfg.Desc, dl, descAlign, nil},
		{"available ring", cfg.Driver, al, availAlign, nil},
		{"used ring", cfg.Device, ul, usedAlign, nil},
	}
	q := &Queue{
		index:       index,
		mem:         m,
		owner:       owner,
		size:        n,
		eventIdx:    features&(1<<FeatureRingEventIdx) != 0,
		indirect:    features&(1<<FeatureRingIndirectDesc) != 0,
		maxIndirect: int(max),
	}
	parts[0].dst, parts[1].dst, parts[2].dst = &q.desc, &q.avail, &q.used
	for _, p := range parts {
		if p.gpa%p.align != 0 {
			return nil, fmt.Errorf("queue %d %s at %#x: not %d-byte aligned: %w", index, p.name, p.gpa, p.align, ErrBadQueue)
		}
		b, err := m.Slice(p.gpa, p.len)
		if err != nil {
			return nil, fmt.Errorf("queue %d %s: %w: %w", index, p.name, err, ErrBadQueue)
		}
		*p.dst = b
	}
	return q, nil
}

// Size returns the number of entries the driver chose.
func (q *Queue) Size() uint16 { return q.size }

// A Chain is one descriptor chain taken from the available ring. Its
// buffers alias guest memory and were each checked to lie inside it.
// Per spec §2.7.4.2 every device-readable buffer precedes every
// device-writable one.
//
// Bounds: a chain has fewer descriptors than its queue's size plus
// QueueNumMax (a direct part, then at most one indirect table of at most
// QueueNumMax entries), and at most MaxChainBytes bytes in all, so
// Readable and Writable never grow past that however the guest links its
// descriptors, and ReadableLen and WritableLen never overflow an int.
type Chain struct {
	Head     uint16
	Readable [][]byte
	Writable [][]byte
}

// ReadableLen returns the total length of the device-readable buffers.
func (c *Chain) ReadableLen() int { return totalLen(c.Readable) }

// WritableLen returns the total length of the device-writable buffers.
func (c *Chain) WritableLen() int { return totalLen(c.Writable) }

func totalLen(bufs [][]byte) int {
	n := 0
	for _, b := range bufs {
		n += len(b)
	}
	return n
}

// gather copies bytes from bufs, starting off bytes in, into p. It returns
// the number of bytes copied.
func gather(p []byte, bufs [][]byte, off int) int {
	n := 0
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(p[n:], b[off:])
		off = 0
		if n == len(p) {
			break
		}
	}
	return n
}

// scatter copies p into bufs, starting off bytes in. It returns the number
// of bytes copied.
func scatter(bufs [][]byte, off int, p []byte) int {
	n := 0
	for _, b := range bufs {
		if off >= len(b) {
			off -= len(b)
			continue
		}
		n += copy(b[off:], p[n:])
		off = 0
		if n == len(p) {
			break
		}
	}
	return n
}

// subrange appends to dst the parts of bufs covering [off, off+n), for
// vectored I/O straight into guest memory.
func subrange(dst [][]byte, bufs [][]byte, off, n int) [][]byte {
	for _, b := range bufs {
		if n == 0 {
			break
		}
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b = b[off:]
		off = 0
		if len(b) > n {
			b = b[:n]
		}
		dst = append(dst, b)
		n -= len(b)
	}
	return dst
}

// fenceWord exists only to be the target of fence's atomic operation.
var fenceWord atomic.Uint32

// fence orders the device's plain accesses to guest memory against each
// other, as the virtio memory barriers of spec §2.7.13 require (for
// example: used element before used idx; used idx before used_event).
// A Go atomic read-modify-write is a full barrier on amd64 (LOCK XADD)
// and on arm64 with LSE atomics (LDADDAL), the way Linux orders its own
// fully ordered atomics.
func fence() { fenceWord.Add(1) }

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }

// availIdx reads the driver's available index.
func (q *Queue) availIdx() uint16 { return le16(q.avail[2:]) }

// setAvailEvent writes avail_event (spec §2.7.10): "notify me once you
// have made entry idx available".
func (q *Queue) setAvailEvent(idx uint16) {
	binary.LittleEndian.PutUint16(q.used[ringHeader+usedElemSize*int(q.size):], idx)
}

// Pop takes the next available descriptor chain into c, reusing c's
// slices. It reports false when none is available. An error means the
// queue is malformed: it has been reported to the transport (the device
// is now in DEVICE_NEEDS_RESET) and every later Pop fails too.
func (q *Queue) Pop(c *Chain) (bool, error) {
	if q.broken {
		return false, fmt.Errorf("queue %d stopped after an earlier error: %w", q.index, ErrBadQueue)
	}
	if q.owner.stopped() {
		return false, fmt.Errorf("queue %d: %w", q.index, errDeviceFailed)
	}
	pending, err := q.pending()
	if err != nil {
		return false, err
	}
	if pending == 0 {
		if !q.eventIdx {
			return false, nil
		}
		// Ask to be notified of the next entry, then look again: the
		// driver may have added it before it could see avail_event
		// (spec §2.7.10; the same re-check vhost does).
		q.setAvailEvent(q.lastAvail)
		fence()
		if pending, err = q.pending(); err != nil || pending == 0 {
			return false, err
		}
	}
	// Read the ring entry and descriptors only after idx (spec §2.7.13.1).
	fence()
	slot := int(q.lastAvail % q.size)
	head := le16(q.avail[ringHeader+2*slot:])
	if err := q.walk(head, c); err != nil {
		return false, q.fail(err)
	}
	// avail_event is left where it was: while the device is taking
	// entries the driver need not notify it of more, and it asks again
	// (above) only when it finds the ring empty, as vhost does. Moving
	// it on with every entry taken would have the driver notify for
	// nearly every entry it adds during a batch.
	q.lastAvail++
	return true, nil
}

// pending returns how many entries the driver has made available beyond
// what the device has taken.
func (q *Queue) pending() (uint16, error) {
	idx := q.availIdx()
	n := idx - q.lastAvail
	if n > q.size {
		return 0, q.fail(fmt.Errorf("available idx %d is %d entries past the device's %d, more than the queue size %d", idx, n, q.lastAvail, q.size))
	}
	return n, nil
}

// walk follows the chain starting at head, checking every descriptor.
func (q *Queue) walk(head uint16, c *Chain) error {
	c.Head = head
	c.Readable = c.Readable[:0]
	c.Writable = c.Writable[:0]
	table := q.desc
	n := int(q.size) // entries in the table being walked
	idx := head
	inIndirect := false
	var total uint64 // bytes in the chain so far
	// A chain visits each descriptor of a table at most once, so more
	// steps than entries means a loop (spec §2.7.5.3.1: no chain longer
	// than the queue size).
	for steps := 0; ; steps++ {
		if steps >= n {
			return fmt.Errorf("descriptor chain from head %d longer than its table of %d entries (a loop?)", head, n)
		}
		if int(idx) >= n {
			return fmt.Errorf("descriptor index %d outside a table of %d entries", idx, n)
		}
		d := table[int(idx)*descSize:][:descSize]
		addr := binary.LittleEndian.Uint64(d[0:])
		length := binary.LittleEndian.Uint32(d[8:])
		flags := le16(d[12:])
		next := le16(d[14:])
		if flags&descFIndirect != 0 {
			switch {
			case inIndirect:
				return fmt.Errorf("descriptor %d: indirect descriptor inside an indirect table", idx)
			case !q.indirect:
				return fmt.Errorf("descriptor %d: indirect descriptor, but VIRTIO_RING_F_INDIRECT_DESC was not negotiated", idx)
			case flags&descFNext != 0:
				return fmt.Errorf("descriptor %d: both INDIRECT and NEXT set", idx)
			case length == 0 || length%descSize != 0:
				return fmt.Errorf("descriptor %d: indirect table length %d is not a non-zero multiple of %d", idx, length, descSize)
			case int(length/descSize) > q.maxIndirect:
				return fmt.Errorf("descriptor %d: indirect table of %d entries, more than %d", idx, length/descSize, q.maxIndirect)
			}
			t, err := q.mem.Slice(addr, uint64(length))
			if err != nil {
				return fmt.Errorf("descriptor %d: indirect table: %w", idx, err)
			}
			table, n, idx, inIndirect = t, int(length/descSize), 0, true
			steps = -1
			continue
		}
		if total += uint64(length); total > MaxChainBytes {
			return fmt.Errorf("descriptor chain from head %d: more than %d bytes", head, MaxChainBytes)
		}
		buf, err := q.mem.Slice(addr, uint64(length))
		if err != nil {
			return fmt.Errorf("descriptor %d: buffer: %w", idx, err)
		}
		if flags&descFWrite != 0 {
			c.Writable = append(c.Writable, buf)
		} else {
			if len(c.Writable) > 0 {
				return fmt.Errorf("descriptor %d: device-readable buffer after a device-writable one", idx)
			}
			c.Readable = append(c.Readable, buf)
		}
		if flags&descFNext == 0 {
			return nil
		}
		idx = next
	}
}

// Push returns the chain with head to the driver, written bytes long
// (spec §2.7.8). The driver learns of it at the next Signal.
func (q *Queue) Push(head uint16, written uint32) {
	slot := int(q.nextUsed % q.size)
	e := q.used[ringHeader+usedElemSize*slot:][:usedElemSize]
	binary.LittleEndian.PutUint32(e[0:], uint32(head))
	binary.LittleEndian.PutUint32(e[4:], written)
	q.nextUsed++
	fence() // the element before the idx that publishes it
	binary.LittleEndian.PutUint16(q.used[2:], q.nextUsed)
}

// Signal interrupts the driver if it has asked to hear about the chains
// pushed since the last Signal: with EVENT_IDX when used idx passes
// used_event (spec §2.7.10), otherwise unless it set
// VIRTQ_AVAIL_F_NO_INTERRUPT.
func (q *Queue) Signal() {
	if q.nextUsed == q.signalled {
		return
	}
	old := q.signalled
	q.signalled = q.nextUsed
	fence() // publish used idx before reading the driver's suppression
	if q.eventIdx {
		usedEvent := le16(q.avail[ringHeader+2*int(q.size):])
		if !needEvent(usedEvent, q.nextUsed, old) {
			return
		}
	} else if le16(q.avail[0:])&availFNoInterrupt != 0 {
		return
	}
	q.owner.usedBuffer()
}

// needEvent is vring_need_event (spec §2.7.10, include/uapi/linux/virtio_ring.h):
// whether moving used idx from old to next passes event.
func needEvent(event, next, old uint16) bool {
	return next-event-1 < next-old
}

// Fail reports a malformed request the device found in a chain (a block
// request without a status byte, say). The queue stops, and the device
// goes to DEVICE_NEEDS_RESET. It returns the wrapped error.
func (q *Queue) Fail(err error) error { return q.fail(err) }

func (q *Queue) fail(err error) error {
	err = fmt.Errorf("queue %d: %w: %w", q.index, err, ErrBadQueue)
	if !q.broken {
		q.broken = true
		q.owner.queueFailed(q.index, err)
	}
	return err
}
