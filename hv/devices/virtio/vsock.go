package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tandem-hv/tandem/hv/devices"
)

// IDVsock is the socket device's ID (spec §5.10.1).
const IDVsock = 19

// Vsock queues (spec §5.10.2).
const (
	vsockRxQueue    = 0
	vsockTxQueue    = 1
	vsockEventQueue = 2
)

// VsockHeaderSize is the size of struct virtio_vsock_hdr.
const VsockHeaderSize = 44

// VsockHeader mirrors struct virtio_vsock_hdr (spec §5.10.6,
// include/uapi/linux/virtio_vsock.h): packed, little-endian.
type VsockHeader struct {
	SrcCID   uint64 // offset 0
	DstCID   uint64 // 8
	SrcPort  uint32 // 16
	DstPort  uint32 // 20
	Len      uint32 // 24
	Type     uint16 // 28
	Op       uint16 // 30
	Flags    uint32 // 32
	BufAlloc uint32 // 36
	FwdCnt   uint32 // 40
}

// Socket types and operations (spec §5.10.6).
const (
	VsockTypeStream = 1

	VsockOpRequest       = 1
	VsockOpResponse      = 2
	VsockOpRST           = 3
	VsockOpShutdown      = 4
	VsockOpRW            = 5
	VsockOpCreditUpdate  = 6
	VsockOpCreditRequest = 7
)

// SHUTDOWN flags (spec §5.10.6.4).
const (
	VsockShutdownRcv  = 1 // the sender will receive no more
	VsockShutdownSend = 2 // the sender will send no more
)

// Limits. A guest controls how much it sends and how many connections it
// opens; these bound what the VMM holds for it.
const (
	// vsockBufAlloc is the receive buffer advertised per connection: a
	// guest may have at most this many bytes in the VMM, unforwarded,
	// per connection (spec §5.10.6.3), or the connection is reset.
	vsockBufAlloc = 256 << 10
	// maxVsockPayload bounds one packet's payload; Linux sends at most
	// 64 KiB (VIRTIO_VSOCK_MAX_PKT_BUF_SIZE).
	maxVsockPayload = 64 << 10
	// maxVsockConns bounds the connections of one guest.
	maxVsockConns = 256
	// maxVsockReplies bounds RSTs waiting for receive buffers; beyond
	// it, replies to a guest that floods bad packets are dropped.
	maxVsockReplies = 512
	// vsockReadChunk is how much is read from a host stream at a time.
	vsockReadChunk = 16 << 10
	// vsockConnectTimeout bounds Dial's wait for the guest's answer.
	vsockConnectTimeout = 5 * time.Second
)

// ErrVsockRefused is returned by Dial when the guest answers with RST:
// nothing listens on the port.
var ErrVsockRefused = errors.New("connection refused by the guest")

// errBadVsockHeader marks a header that cannot be decoded.
var errBadVsockHeader = errors.New("bad vsock packet header")

// DecodeVsockHeader reads a packet header from b.
func DecodeVsockHeader(b []byte) (VsockHeader, error) {
	if len(b) < VsockHeaderSize {
		return VsockHeader{}, fmt.Errorf("%w: %d bytes, want %d", errBadVsockHeader, len(b), VsockHeaderSize)
	}
	le := binary.LittleEndian
	return VsockHeader{
		SrcCID: le.Uint64(b[0:]), DstCID: le.Uint64(b[8:]),
		SrcPort: le.Uint32(b[16:]), DstPort: le.Uint32(b[20:]), Len: le.Uint32(b[24:]),
		Type: le.Uint16(b[28:]), Op: le.Uint16(b[30:]),
		Flags: le.Uint32(b[32:]), BufAlloc: le.Uint32(b[36:]), FwdCnt: le.Uint32(b[40:]),
	}, nil
}

// Encode writes the header into b (at least VsockHeaderSize bytes).
func (h *VsockHeader) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint64(b[0:], h.SrcCID)
	le.PutUint64(b[8:], h.DstCID)
	le.PutUint32(b[16:], h.SrcPort)
	le.PutUint32(b[20:], h.DstPort)
	le.PutUint32(b[24:], h.Len)
	le.PutUint16(b[28:], h.Type)
	le.PutUint16(b[30:], h.Op)
	le.PutUint32(b[32:], h.Flags)
	le.PutUint32(b[36:], h.BufAlloc)
	le.PutUint32(b[40:], h.FwdCnt)
}

// VsockHost is the host side of a vsock device: where the guest's
// connections go.
type VsockHost interface {
	// Connect opens a stream for a guest's connection from its srcPort to
	// dstCID:dstPort. An error refuses it: the guest sees an RST. It may
	// block; it is never called on a vCPU thread.
	Connect(srcPort uint32, dstCID uint64, dstPort uint32) (io.ReadWriteCloser, error)
}

// vsockKey names a connection from the guest's side.
type vsockKey struct {
	port     uint32 // the guest's port
	peerCID  uint64
	peerPort uint32
}

type connState int

const (
	connConnecting  connState = iota // guest's REQUEST, waiting for the host
	connDialing                      // our REQUEST, waiting for the guest
	connEstablished                  // streaming
)

// vsockConn is one stream. Every field is guarded by Vsock.mu.
type vsockConn struct {
	key    vsockKey
	state  connState
	stream io.ReadWriteCloser
	dead   bool
	wake   sync.Cond // on Vsock.mu: data, credit or death for the goroutines
	answer chan error

	// Guest to host: in holds what the guest sent and the writer has not
	// yet written; recv and fwdCnt count bytes received and forwarded.
	in, spare    []byte
	recv, fwdCnt uint32
	reportedFwd  uint32 // the fwd_cnt last told to the guest
	guestDone    bool   // the guest sent SHUTDOWN with SEND
	needResponse bool
	needCredit   bool

	// Host to guest: out holds what was read from the stream and not yet
	// placed in receive buffers; txCnt counts bytes placed; the peer
	// fields are the guest's last advertised receive buffer.
	out                   []byte
	txCnt                 uint32
	peerBufAlloc, peerFwd uint32
	hostEOF, shutdownSent bool
	guestNoRecv           bool // the guest sent SHUTDOWN with RCV
}

// credit is how many more bytes the guest can take (spec §5.10.6.3).
func (c *vsockConn) credit() uint32 {
	used := c.txCnt - c.peerFwd
	if used >= c.peerBufAlloc {
		return 0
	}
	return c.peerBufAlloc - used
}

// Vsock is a virtio socket device (spec §5.10) with stream sockets only.
// Each guest connection is handed to a VsockHost as an io.ReadWriteCloser;
// Dial opens connections into the guest. Flow control is credit-based
// both ways: the VMM buffers at most vsockBufAlloc bytes per connection
// from the guest, and reads from a host stream only as much as the guest
// has room for.
type Vsock struct {
	cid  uint64
	host VsockHost
	warn *devices.RateLimited
	workerGuard

	// txMu serialises transmit processing. Lock order: MMIO.mu before
	// txMu before mu.
	txMu    sync.Mutex
	txChain Chain

	// mu guards everything below, and every vsockConn.
	mu      sync.Mutex
	rx, tx  *Queue
	rxChain Chain
	conns   map[vsockKey]*vsockConn
	order   []*vsockConn // round-robin order for receive buffers
	replies []VsockHeader
	closed  bool
	hdrBuf  [VsockHeaderSize]byte
}

// NewVsock returns a vsock device for a guest with the given CID whose
// connections go to host (nil: every connection is refused).
func NewVsock(cid uint64, host VsockHost) *Vsock {
	return &Vsock{cid: cid, host: host, conns: map[vsockKey]*vsockConn{}, warn: devices.NewRateLimited(nil, 10)}
}

// SetWarnings sends the device's rate-limited warnings to w.
func (v *Vsock) SetWarnings(w io.Writer) { v.warn.SetOutput(w) }

func (v *Vsock) DeviceID() uint32 { return IDVsock }
func (v *Vsock) Name() string     { return "virtio-vsock" }
func (v *Vsock) Features() uint64 { return 0 } // stream only (spec §5.10.3)
func (v *Vsock) QueueMax() []uint16 {
	return []uint16{defaultQueueMax, defaultQueueMax, defaultQueueMax}
}
func (v *Vsock) WriteConfig(uint64, []byte) {}

// ReadConfig reads struct virtio_vsock_config (spec §5.10.4): le64
// guest_cid.
func (v *Vsock) ReadConfig(off uint64, data []byte) {
	var cfg [8]byte
	binary.LittleEndian.PutUint64(cfg[:], v.cid)
	clear(data)
	if off < uint64(len(cfg)) {
		copy(data, cfg[off:])
	}
}

func (v *Vsock) Activate(features uint64, queues []*Queue) error {
	if queues[vsockRxQueue] == nil || queues[vsockTxQueue] == nil {
		return errors.New("rx queue 0 and tx queue 1 must both be set up")
	}
	v.mu.Lock()
	v.rx, v.tx = queues[vsockRxQueue], queues[vsockTxQueue]
	v.mu.Unlock()
	return nil
}

// Reset drops every connection: a reset driver has forgotten them.
func (v *Vsock) Reset() {
	v.txMu.Lock()
	v.mu.Lock()
	v.rx, v.tx = nil, nil
	for _, c := range v.conns {
		v.dropLocked(c)
	}
	v.replies = nil
	v.mu.Unlock()
	v.txMu.Unlock()
}

func (v *Vsock) Close() error {
	v.Reset()
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	return nil
}

func (v *Vsock) Notify(q int) {
	switch q {
	case vsockRxQueue:
		v.mu.Lock()
		v.deliverLocked()
		v.mu.Unlock()
	case vsockTxQueue:
		v.transmit()
	case vsockEventQueue:
		// Buffers for transport events; this device never sends one
		// (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET is for migration).
	}
}

// transmit handles every packet the guest posted, on the vCPU thread.
// Nothing here blocks: connecting and writing to host streams happen on
// each connection's goroutines.
func (v *Vsock) transmit() {
	v.txMu.Lock()
	defer v.txMu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	q := v.tx
	if q == nil {
		return
	}
	var payload []byte
	for {
		ok, err := q.Pop(&v.txChain)
		if err != nil || !ok {
			break
		}
		n := v.txChain.ReadableLen()
		if n < VsockHeaderSize {
			q.Fail(fmt.Errorf("vsock packet of %d bytes, shorter than its %d-byte header", n, VsockHeaderSize))
			break
		}
		gather(v.hdrBuf[:], v.txChain.Readable, 0)
		h, _ := DecodeVsockHeader(v.hdrBuf[:])
		// h.Len is checked against the bound first: only then does it
		// fit an int on a 32-bit host.
		if h.Len > maxVsockPayload || int(h.Len) > n-VsockHeaderSize {
			v.warn.Printf("virtio-vsock: packet says %d payload bytes, carries %d: reset", h.Len, n-VsockHeaderSize)
			v.replyRSTLocked(h)
			v.resetConnLocked(v.conns[keyOf(h)])
			q.Push(v.txChain.Head, 0)
			continue
		}
		payload = payload[:0]
		if h.Len > 0 {
			payload = append(payload, make([]byte, h.Len)...)
			gather(payload, v.txChain.Readable, VsockHeaderSize)
		}
		q.Push(v.txChain.Head, 0)
		v.handleLocked(h, payload)
	}
	q.Signal()
	v.deliverLocked()
}

func keyOf(h VsockHeader) vsockKey {
	return vsockKey{port: h.SrcPort, peerCID: h.DstCID, peerPort: h.DstPort}
}

// handleLocked runs the connection state machine for one packet from the
// guest (spec §5.10.6.4).
func (v *Vsock) handleLocked(h VsockHeader, payload []byte) {
	if h.SrcCID != v.cid {
		// A guest cannot speak for another CID; an RST would go to the
		// forged address, so the packet is only dropped.
		v.warn.Printf("virtio-vsock: packet from CID %d, the guest is %d: dropped", h.SrcCID, v.cid)
		return
	}
	if h.Type != VsockTypeStream {
		if h.Op != VsockOpRST {
			v.replyRSTLocked(h)
		}
		return
	}
	c := v.conns[keyOf(h)]
	if c != nil {
		c.peerBufAlloc, c.peerFwd = h.BufAlloc, h.FwdCnt
		c.wake.Broadcast()
	}
	switch h.Op {
	case VsockOpRequest:
		if c != nil || len(v.conns) >= maxVsockConns || v.host == nil || h.DstCID == v.cid {
			v.replyRSTLocked(h)
			return
		}
		c = v.newConnLocked(keyOf(h), connConnecting)
		c.peerBufAlloc, c.peerFwd = h.BufAlloc, h.FwdCnt
		go v.connect(c)
	case VsockOpResponse:
		if c == nil || c.state != connDialing {
			v.replyRSTLocked(h)
			v.resetConnLocked(c)
			return
		}
		c.state = connEstablished
		c.answer <- nil
		v.startLocked(c)
	case VsockOpRW:
		if c == nil || c.state != connEstablished {
			v.replyRSTLocked(h)
			return
		}
		if c.guestDone {
			return // data after SHUTDOWN(SEND) is ignored
		}
		if uint64(c.recv-c.fwdCnt)+uint64(len(payload)) > vsockBufAlloc {
			// The guest sent past the credit it was given: a broken or
			// hostile driver. Resetting is all that bounds the buffer.
			v.warn.Printf("virtio-vsock: port %d sent %d bytes past its credit: reset", h.SrcPort, uint64(c.recv-c.fwdCnt)+uint64(len(payload))-vsockBufAlloc)
			v.replyRSTLocked(h)
			v.resetConnLocked(c)
			return
		}
		c.in = append(c.in, payload...)
		c.recv += uint32(len(payload))
		c.wake.Broadcast()
	case VsockOpCreditUpdate:
		if c == nil {
			v.replyRSTLocked(h)
		}
	case VsockOpCreditRequest:
		if c == nil {
			v.replyRSTLocked(h)
			return
		}
		c.needCredit = true
	case VsockOpShutdown:
		if c == nil {
			v.replyRSTLocked(h)
			return
		}
		if h.Flags&VsockShutdownSend != 0 {
			c.guestDone = true
		}
		if h.Flags&VsockShutdownRcv != 0 {
			c.guestNoRecv = true
			c.out = nil
		}
		c.wake.Broadcast()
		if c.state != connEstablished {
			v.replyRSTLocked(h)
			v.resetConnLocked(c)
		}
	case VsockOpRST:
		if c != nil {
			if c.state == connDialing {
				c.answer <- ErrVsockRefused
			}
			v.dropLocked(c)
		}
	default:
		v.replyRSTLocked(h)
	}
}

func (v *Vsock) newConnLocked(k vsockKey, s connState) *vsockConn {
	c := &vsockConn{key: k, state: s, answer: make(chan error, 1)}
	c.wake.L = &v.mu
	v.conns[k] = c
	v.order = append(v.order, c)
	return c
}

// replyRSTLocked answers a packet with an RST (spec §5.10.6.4: a packet
// for no connection is answered so). Replies beyond maxVsockReplies are
// dropped: the guest is flooding.
func (v *Vsock) replyRSTLocked(h VsockHeader) {
	if h.Op == VsockOpRST || len(v.replies) >= maxVsockReplies {
		return
	}
	v.replies = append(v.replies, VsockHeader{
		SrcCID: h.DstCID, DstCID: v.cid, SrcPort: h.DstPort, DstPort: h.SrcPort,
		Type: VsockTypeStream, Op: VsockOpRST,
	})
}

// resetConnLocked ends a connection with an RST to the guest.
func (v *Vsock) resetConnLocked(c *vsockConn) {
	if c == nil || c.dead {
		return
	}
	v.replyRSTLocked(VsockHeader{SrcCID: v.cid, DstCID: c.key.peerCID, SrcPort: c.key.port, DstPort: c.key.peerPort, Op: VsockOpRequest})
	if c.state == connDialing {
		c.answer <- ErrVsockRefused
	}
	v.dropLocked(c)
}

// dropLocked forgets a connection and closes its stream; its goroutines
// see dead and end.
func (v *Vsock) dropLocked(c *vsockConn) {
	if c.dead {
		return
	}
	c.dead = true
	delete(v.conns, c.key)
	for i, o := range v.order {
		if o == c {
			v.order = append(v.order[:i], v.order[i+1:]...)
			break
		}
	}
	if c.stream != nil {
		go c.stream.Close() // a stream's Close may block (a pipe's peer)
	}
	c.in, c.spare, c.out = nil, nil, nil
	c.wake.Broadcast()
}

// connect asks the host for a stream for a guest's REQUEST.
func (v *Vsock) connect(c *vsockConn) {
	defer v.contain()
	s, err := v.host.Connect(c.key.port, c.key.peerCID, c.key.peerPort)
	v.mu.Lock()
	defer v.mu.Unlock()
	if c.dead {
		if s != nil {
			s.Close()
		}
		return
	}
	if err != nil {
		v.resetConnLocked(c)
		v.deliverLocked()
		return
	}
	c.stream = s
	c.state = connEstablished
	c.needResponse = true
	v.startLocked(c)
	v.deliverLocked()
}

// Dial opens a connection into the guest, to its port, appearing to come
// from peerCID:peerPort, and carries it over stream. It returns once the
// guest accepts (RESPONSE) or refuses (ErrVsockRefused); stream is closed
// when the connection ends either way.
func (v *Vsock) Dial(peerCID uint64, peerPort, port uint32, stream io.ReadWriteCloser) (err error) {
	defer v.containErr(&err)
	if v.failed() {
		// Its lock may be held by the goroutine that panicked.
		stream.Close()
		return errDeviceFailed
	}
	k := vsockKey{port: port, peerCID: peerCID, peerPort: peerPort}
	v.mu.Lock()
	if v.rx == nil || v.closed {
		v.mu.Unlock()
		stream.Close()
		return errors.New("the guest's vsock driver is not ready")
	}
	if v.conns[k] != nil || len(v.conns) >= maxVsockConns {
		v.mu.Unlock()
		stream.Close()
		return fmt.Errorf("port %d from %d:%d: connection exists or too many", port, peerCID, peerPort)
	}
	c := v.newConnLocked(k, connDialing)
	c.stream = stream
	v.replies = append(v.replies, VsockHeader{
		SrcCID: peerCID, DstCID: v.cid, SrcPort: peerPort, DstPort: port,
		Type: VsockTypeStream, Op: VsockOpRequest, BufAlloc: vsockBufAlloc,
	})
	v.deliverLocked()
	v.mu.Unlock()
	select {
	case err := <-c.answer:
		return err
	case <-time.After(vsockConnectTimeout):
		v.mu.Lock()
		v.resetConnLocked(c)
		v.deliverLocked()
		v.mu.Unlock()
		return fmt.Errorf("port %d: the guest did not answer in %v", port, vsockConnectTimeout)
	}
}

// startLocked starts the goroutines of an established connection.
func (v *Vsock) startLocked(c *vsockConn) {
	go v.writer(c)
	go v.reader(c)
}

// writer forwards what the guest sent to the stream, off the vCPU
// thread, and returns credit as it goes.
func (v *Vsock) writer(c *vsockConn) {
	defer v.contain()
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		for !c.dead && len(c.in) == 0 && !c.guestDone {
			c.wake.Wait()
		}
		if c.dead {
			return
		}
		if len(c.in) == 0 && c.guestDone {
			// Everything the guest sent is out: pass the half-close on,
			// and end the connection if the guest will not read either.
			if cw, ok := c.stream.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			if c.guestNoRecv || c.hostEOF {
				v.resetConnLocked(c)
				v.deliverLocked()
			}
			for !c.dead {
				c.wake.Wait()
			}
			return
		}
		buf := c.in
		c.in, c.spare = c.spare[:0], nil
		s := c.stream
		v.mu.Unlock()
		_, err := s.Write(buf)
		v.mu.Lock()
		if c.dead {
			return
		}
		if err != nil {
			v.resetConnLocked(c)
			v.deliverLocked()
			return
		}
		c.fwdCnt += uint32(len(buf))
		c.spare = buf[:0]
		// Tell the guest of the room once a quarter of its buffer is
		// free again, so a sender waiting on credit resumes. Not after
		// every write: a guest publishing small messages would take an
		// interrupt for each, and one waiting on credit has a whole
		// buffer outstanding, so the quarter always comes. (Every packet
		// to the guest carries fwd_cnt besides.)
		if c.fwdCnt-c.reportedFwd >= vsockBufAlloc/4 {
			c.needCredit = true
			v.deliverLocked()
		}
	}
}

// reader reads from the stream as far as the guest has room for.
func (v *Vsock) reader(c *vsockConn) {
	defer v.contain()
	buf := make([]byte, vsockReadChunk)
	v.mu.Lock()
	for {
		for !c.dead && !c.guestNoRecv && (len(c.out) > 0 || c.credit() == 0) {
			c.wake.Wait()
		}
		if c.dead || c.guestNoRecv {
			v.mu.Unlock()
			return
		}
		n := min(int(c.credit()), len(buf))
		s := c.stream
		v.mu.Unlock()
		n, err := s.Read(buf[:n])
		v.mu.Lock()
		if c.dead {
			v.mu.Unlock()
			return
		}
		c.out = append(c.out, buf[:n]...)
		if err != nil {
			c.hostEOF = true
		}
		v.deliverLocked()
		if err != nil {
			v.mu.Unlock()
			return
		}
	}
}

// deliverLocked fills the guest's receive buffers: replies first, then
// each connection's RESPONSE, credit update, data and SHUTDOWN, taking
// connections in turn so none starves the others.
func (v *Vsock) deliverLocked() {
	q := v.rx
	if q == nil {
		return
	}
	sent := false
	defer func() {
		if sent {
			q.Signal()
		}
	}()
	put := func(h VsockHeader, data []byte) (int, bool) {
		ok, err := q.Pop(&v.rxChain)
		if err != nil || !ok {
			return 0, false
		}
		room := v.rxChain.WritableLen() - VsockHeaderSize
		if room < 0 {
			q.Fail(fmt.Errorf("vsock receive buffer of %d bytes, shorter than the %d-byte header", room+VsockHeaderSize, VsockHeaderSize))
			return 0, false
		}
		n := min(len(data), room)
		h.Len = uint32(n)
		h.Encode(v.hdrBuf[:])
		scatter(v.rxChain.Writable, 0, v.hdrBuf[:])
		scatter(v.rxChain.Writable, VsockHeaderSize, data[:n])
		q.Push(v.rxChain.Head, uint32(VsockHeaderSize+n))
		sent = true
		return n, true
	}
	for len(v.replies) > 0 {
		if _, ok := put(v.replies[0], nil); !ok {
			return
		}
		v.replies = v.replies[1:]
	}
	if len(v.replies) == 0 {
		v.replies = nil
	}
	for progress := true; progress; {
		progress = false
		for _, c := range v.order {
			h := VsockHeader{SrcCID: c.key.peerCID, DstCID: v.cid, SrcPort: c.key.peerPort, DstPort: c.key.port,
				Type: VsockTypeStream, BufAlloc: vsockBufAlloc, FwdCnt: c.fwdCnt}
			switch {
			case c.state != connEstablished:
				continue
			case c.needResponse:
				h.Op = VsockOpResponse
			case len(c.out) > 0:
				h.Op = VsockOpRW
			case c.needCredit:
				h.Op = VsockOpCreditUpdate
			case c.hostEOF && !c.shutdownSent:
				h.Op, h.Flags = VsockOpShutdown, VsockShutdownRcv|VsockShutdownSend
			default:
				continue
			}
			var data []byte
			if h.Op == VsockOpRW {
				data = c.out[:min(len(c.out), maxVsockPayload)]
			}
			n, ok := put(h, data)
			if !ok {
				return
			}
			progress = true
			c.reportedFwd = c.fwdCnt
			c.needCredit = false // every packet carries fwd_cnt
			switch h.Op {
			case VsockOpResponse:
				c.needResponse = false
			case VsockOpRW:
				c.txCnt += uint32(n)
				c.out = c.out[:copy(c.out, c.out[n:])]
				if len(c.out) == 0 {
					c.wake.Broadcast()
				}
			case VsockOpShutdown:
				c.shutdownSent = true
			}
		}
	}
}
