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
const netFMAC = 5 // VIRTIO_NET_F_MAC

// virtio-net queues (spec §5.1.2), without VIRTIO_NET_F_MQ.
const (
	netRxQueue = 0
	netTxQueue = 1
)

const (
	// netHdrNumBuffers is the offset of num_buffers in struct
	// virtio_net_hdr_v1 (spec §5.1.6); the TAP leaves it unwritten.
	netHdrNumBuffers = 10
	// maxFrame bounds a frame read from the TAP: without offloads the
	// TAP delivers nothing longer than its MTU, which is below this.
	maxFrame = 65535
	// netCfgLen is struct virtio_net_config up to mac, the only field
	// whose feature is offered (spec §5.1.4).
	netCfgLen = 6
)

// Net is a virtio network device (spec §5.1) backed by a Linux TAP
// interface. It offers only VIRTIO_NET_F_MAC: no checksum or
// segmentation offloads and no mergeable receive buffers, so each frame
// fits one receive chain the size Linux posts for a 1500-byte MTU.
type Net struct {
	tap    *os.File
	ifname string
	config [netCfgLen]byte
	warn   *devices.RateLimited
	done   chan struct{} // closed when the receive goroutine returns
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
	return newNet(f, tap, mac), nil
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
func (n *Net) Features() uint64                 { return 1 << netFMAC }
func (n *Net) QueueMax() []uint16               { return []uint16{defaultQueueMax, defaultQueueMax} }
func (n *Net) ReadConfig(off uint64, d []byte)  { readConfig(n.config[:], off, d) }
func (n *Net) WriteConfig(off uint64, d []byte) {}

func (n *Net) Activate(features uint64, queues []*Queue) error {
	if queues[netRxQueue] == nil || queues[netTxQueue] == nil {
		return errors.New("receive queue 0 and transmit queue 1 must both be set up")
	}
	n.txMu.Lock()
	n.tx = queues[netTxQueue]
	n.txMu.Unlock()
	n.mu.Lock()
	n.rx = queues[netRxQueue]
	n.rxReady.Broadcast()
	n.mu.Unlock()
	return nil
}

func (n *Net) Reset() {
	n.txMu.Lock()
	n.tx = nil
	n.txMu.Unlock()
	n.mu.Lock()
	n.rx = nil
	n.mu.Unlock()
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
				if n.rxChain.WritableLen() >= len(frame) {
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
