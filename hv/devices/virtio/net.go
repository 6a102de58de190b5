package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices"
)

// virtio-net feature bits (spec §5.1.3).
const (
	netFCSUM      = 0  // VIRTIO_NET_F_CSUM: the driver may send partially checksummed frames
	netFGuestCSUM = 1  // VIRTIO_NET_F_GUEST_CSUM: the device may deliver them
	netFMAC       = 5  // VIRTIO_NET_F_MAC
	netFGuestTSO4 = 7  // VIRTIO_NET_F_GUEST_TSO4: the device may deliver TCPv4 segments up to 64 KiB
	netFGuestTSO6 = 8  // VIRTIO_NET_F_GUEST_TSO6
	netFHostTSO4  = 11 // VIRTIO_NET_F_HOST_TSO4: the driver may send TCPv4 segments up to 64 KiB
	netFHostTSO6  = 12 // VIRTIO_NET_F_HOST_TSO6
)

// struct virtio_net_hdr_v1's flags and gso_type (spec §5.1.6).
const (
	netHdrFlags      = 0
	netHdrGSOType    = 1
	netHdrNeedsCSUM  = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	netHdrDataValid  = 2 // VIRTIO_NET_HDR_F_DATA_VALID
	netHdrGSONone    = 0
	netHdrGSOTCPv4   = 1
	netHdrGSOTCPv6   = 4
	netHdrGSOECNFlag = 0x80
)

// netFeatures are the features Net offers. The checksum and segmentation
// offloads cost it nothing: the virtio-net header passes to and from the
// TAP unchanged, and Linux's TAP checksums and segments (or hands the
// segment on whole to a local socket). Receive buffers are not mergeable:
// a driver taking GUEST_TSO4/6 posts chains of 64 KiB ("big packets").
const netFeatures = 1<<netFMAC | 1<<netFCSUM | 1<<netFHostTSO4 | 1<<netFHostTSO6 |
	1<<netFGuestCSUM | 1<<netFGuestTSO4 | 1<<netFGuestTSO6

// virtio-net queues (spec §5.1.2), without VIRTIO_NET_F_MQ.
const (
	netRxQueue = 0
	netTxQueue = 1
)

const (
	// netHdrNumBuffers is the offset of num_buffers in struct
	// virtio_net_hdr_v1 (spec §5.1.6); the TAP leaves it unwritten.
	netHdrNumBuffers = 10
	// maxFrame bounds a frame either way: a 64 KiB TCP segment (Linux's
	// largest for a virtio-net or TAP device without BIG TCP) with its
	// Ethernet header and a VLAN tag.
	maxFrame = 65536 + 18
	// netCfgLen is struct virtio_net_config up to mac, the only field
	// whose feature is offered (spec §5.1.4).
	netCfgLen = 6
)

// Net is a virtio network device (spec §5.1) backed by a Linux TAP
// interface, with the checksum and TCP segmentation offloads both ways
// (netFeatures) and without mergeable receive buffers: each frame fits
// one receive chain.
type Net struct {
	tap    *os.File
	ifname string
	// offload sets what the TAP may hand the guest (TUNSETOFFLOAD); nil
	// where the backend is not a TAP (tests).
	offload func(guestFeatures uint64) error
	config  [netCfgLen]byte
	warn    *devices.RateLimited
	done    chan struct{} // closed when the receive goroutine returns
	workerGuard

	// txMu serialises transmit processing and guards tx, txChain and
	// txIOV. It is never held together with mu. Lock order: MMIO.mu
	// before Net.txMu.
	txMu    sync.Mutex
	tx      *Queue
	txChain Chain
	txIOV   [][]byte

	// mu guards rx, rxChain and closed; rxReady (on mu) is signalled
	// when the driver posts receive buffers, the device is activated or
	// reset, or Close is called. Lock order: MMIO.mu before Net.mu.
	mu      sync.Mutex
	rxReady sync.Cond
	rx      *Queue
	rxChain Chain
	closed  bool
	// accepted is what the driver accepted at activation: a frame the
	// TAP read under an earlier driver's offloads must not reach one
	// that took fewer.
	accepted uint64
}

// NewNet attaches to the TAP interface tap (creating it if it does not
// exist) and gives the guest mac. A goroutine receives frames from the
// TAP until Close.
func NewNet(tap string, mac net.HardwareAddr) (*Net, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("virtio-net on TAP %q: MAC %q is not a 6-byte Ethernet address", tap, mac)
	}
	f, err := openTAP(tap)
	if err != nil {
		return nil, err
	}
	n := newNet(f, tap, mac)
	n.offload = func(features uint64) error { return setTAPOffload(f, features) }
	return n, nil
}

// newNet is a virtio-net device on f, a TAP or, in tests, anything that
// reads and writes whole frames (a SOCK_SEQPACKET socket).
func newNet(f *os.File, ifname string, mac net.HardwareAddr) *Net {
	n := &Net{tap: f, ifname: ifname, done: make(chan struct{}), warn: devices.NewRateLimited(os.Stderr, 5)}
	copy(n.config[:], mac)
	n.rxReady.L = &n.mu
	go n.receive()
	return n
}

// Interface returns the TAP interface's name.
func (n *Net) Interface() string { return n.ifname }

func (n *Net) DeviceID() uint32                 { return IDNet }
func (n *Net) Name() string                     { return "virtio-net" }
func (n *Net) Features() uint64                 { return netFeatures }
func (n *Net) QueueMax() []uint16               { return []uint16{defaultQueueMax, defaultQueueMax} }
func (n *Net) ReadConfig(off uint64, d []byte)  { readConfig(n.config[:], off, d) }
func (n *Net) WriteConfig(off uint64, d []byte) {}

func (n *Net) Activate(features uint64, queues []*Queue) error {
	if queues[netRxQueue] == nil || queues[netTxQueue] == nil {
		return errors.New("receive queue 0 and transmit queue 1 must both be set up")
	}
	// The TAP may now hand the guest what it accepted, and no more.
	n.setOffload(features)
	n.txMu.Lock()
	n.tx = queues[netTxQueue]
	n.txMu.Unlock()
	n.mu.Lock()
	n.rx = queues[netRxQueue]
	n.accepted = features
	n.rxReady.Broadcast()
	n.mu.Unlock()
	return nil
}

func (n *Net) Reset() {
	n.setOffload(0)
	n.txMu.Lock()
	n.tx = nil
	n.txMu.Unlock()
	n.mu.Lock()
	n.rx = nil
	n.mu.Unlock()
}

// setOffload tells the TAP which offloads the driver accepted. Should
// the TAP refuse, it delivers plain frames, which every driver takes.
func (n *Net) setOffload(features uint64) {
	if n.offload == nil {
		return
	}
	if err := n.offload(features); err != nil {
		n.warn.Printf("virtio-net %s: receive offloads stay off: %v", n.ifname, err)
	}
}

// Close stops the receive goroutine and closes the TAP; a TAP that
// NewNet created disappears with it.
func (n *Net) Close() error {
	n.Reset()
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.rxReady.Broadcast()
	n.mu.Unlock()
	err := n.tap.Close() // wakes the goroutine blocked in Read
	<-n.done
	return err
}

func (n *Net) Notify(q int) {
	switch q {
	case netRxQueue:
		n.mu.Lock()
		n.rxReady.Broadcast()
		n.mu.Unlock()
	case netTxQueue:
		n.transmit()
	}
}

// transmit sends every posted frame to the TAP, on the vCPU thread. The
// guest's virtio-net header goes along unchanged: the TAP reads the same
// layout (TUNSETVNETHDRSZ).
func (n *Net) transmit() {
	n.txMu.Lock()
	defer n.txMu.Unlock()
	q := n.tx
	if q == nil {
		return
	}
	for {
		ok, err := q.Pop(&n.txChain)
		if err != nil || !ok {
			break
		}
		if l := n.txChain.ReadableLen(); l < vnetHdrLen || l > vnetHdrLen+maxFrame {
			n.warn.Printf("virtio-net %s: dropped a %d-byte transmit chain: not a header and a frame", n.ifname, l)
		} else {
			n.txIOV = append(n.txIOV[:0], n.txChain.Readable...)
			if err := writev(n.tap, n.txIOV); err != nil {
				n.warn.Printf("virtio-net %s: sending a frame: %v", n.ifname, err)
			}
			clear(n.txIOV) // drop references to guest memory
		}
		q.Push(n.txChain.Head, 0)
	}
	q.Signal()
}

// receive is the receive goroutine: it reads a frame, waits for a posted
// receive chain, and copies the frame in. While no chain is posted the
// frame waits here and the TAP queues (then drops) the next ones, as a
// full NIC ring would.
func (n *Net) receive() {
	defer n.contain()
	defer close(n.done)
	buf := make([]byte, vnetHdrLen+maxFrame)
	for {
		l, err := n.tap.Read(buf)
		if err != nil {
			n.mu.Lock()
			closed := n.closed
			n.mu.Unlock()
			if !closed {
				n.warn.Printf("virtio-net %s: receiving stopped: %v", n.ifname, err)
			}
			return
		}
		if l < vnetHdrLen {
			continue
		}
		frame := buf[:l]
		binary.LittleEndian.PutUint16(frame[netHdrNumBuffers:], 1)
		if !n.deliver(frame) {
			return
		}
	}
}

// fitForDriver reports whether a received frame's virtio-net header asks
// only for what a driver that accepted features takes, clearing
// DATA_VALID for a driver without GUEST_CSUM (the spec wants its flags
// zero; the frame itself is whole).
func fitForDriver(frame []byte, features uint64) bool {
	csum := features&(1<<netFGuestCSUM) != 0
	if !csum {
		frame[netHdrFlags] &^= netHdrDataValid
	}
	if frame[netHdrFlags]&netHdrNeedsCSUM != 0 && !csum {
		return false
	}
	switch frame[netHdrGSOType] &^ netHdrGSOECNFlag {
	case netHdrGSONone:
		return frame[netHdrGSOType] == netHdrGSONone
	case netHdrGSOTCPv4:
		return csum && features&(1<<netFGuestTSO4) != 0 && frame[netHdrGSOType]&netHdrGSOECNFlag == 0
	case netHdrGSOTCPv6:
		return csum && features&(1<<netFGuestTSO6) != 0 && frame[netHdrGSOType]&netHdrGSOECNFlag == 0
	}
	return false
}

// deliver waits for a receive chain and copies frame into it. It reports
// false once the device is closed.
func (n *Net) deliver(frame []byte) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for !n.closed {
		if q := n.rx; q != nil {
			ok, err := q.Pop(&n.rxChain)
			if err != nil {
				return true // the queue failed: drop the frame
			}
			if ok {
				var written int
				if !fitForDriver(frame, n.accepted) {
					// Read from the TAP before the driver that now runs
					// took over, under offloads it did not accept.
					n.warn.Printf("virtio-net %s: dropped a %d-byte frame with offloads the driver did not accept (flags %#x, gso type %#x)", n.ifname, len(frame), frame[netHdrFlags], frame[netHdrGSOType])
				} else if n.rxChain.WritableLen() >= len(frame) {
					written = scatter(n.rxChain.Writable, 0, frame)
				} else {
					// Without mergeable buffers a frame must fit one
					// chain; a used length of 0 tells the driver.
					n.warn.Printf("virtio-net %s: dropped a %d-byte frame: receive chain holds %d", n.ifname, len(frame), n.rxChain.WritableLen())
				}
				q.Push(n.rxChain.Head, uint32(written))
				q.Signal()
				return true
			}
		}
		n.rxReady.Wait()
	}
	return false
}
