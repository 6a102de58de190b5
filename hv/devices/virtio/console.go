package virtio

import (
	"errors"
	"io"
	"sync"
)

// Console queues (spec §5.3.2), without VIRTIO_CONSOLE_F_MULTIPORT.
const (
	consoleRxQueue = 0 // receiveq: host input to the guest
	consoleTxQueue = 1 // transmitq: guest output
)

// maxConsoleInput bounds the input held while the guest posts no receive
// buffers; beyond it the input goroutine stops reading until it drains.
const maxConsoleInput = 64 << 10

// Console is a virtio console (spec §5.3) with a single port: guest
// output goes to an io.Writer, input comes from an io.Reader.
type Console struct {
	in  io.Reader
	out io.Writer
	workerGuard

	// txMu serialises transmit processing and guards tx and txChain.
	// It is never held together with mu. Lock order: MMIO.mu before
	// Console.txMu.
	txMu    sync.Mutex
	tx      *Queue
	txChain Chain

	// mu guards rx, rxChain, pending and closed; inputSpace (on mu) is
	// signalled when pending shrinks or the console closes. Lock order:
	// MMIO.mu before Console.mu.
	mu         sync.Mutex
	inputSpace sync.Cond
	rx         *Queue
	rxChain    Chain
	pending    []byte // input not yet delivered to the guest
	closed     bool
}

// NewConsole returns a console that writes guest output to out and feeds
// the guest what it reads from in (nil: no input). A goroutine reads in
// from now on until Close, keeping up to 64 KiB that arrives before the
// guest posts receive buffers.
func NewConsole(in io.Reader, out io.Writer) *Console {
	c := &Console{in: in, out: out}
	c.inputSpace.L = &c.mu
	if in != nil {
		go c.readInput()
	}
	return c
}

func (c *Console) DeviceID() uint32           { return IDConsole }
func (c *Console) Name() string               { return "virtio-console" }
func (c *Console) Features() uint64           { return 0 }
func (c *Console) QueueMax() []uint16         { return []uint16{defaultQueueMax, defaultQueueMax} }
func (c *Console) WriteConfig(uint64, []byte) {}

// ReadConfig reads struct virtio_console_config (spec §5.3.4): cols, rows
// and max_nr_ports are valid only with features this console does not
// offer, so it is all zeros.
func (c *Console) ReadConfig(off uint64, data []byte) { clear(data) }

func (c *Console) Activate(features uint64, queues []*Queue) error {
	if queues[consoleRxQueue] == nil || queues[consoleTxQueue] == nil {
		return errors.New("receive queue 0 and transmit queue 1 must both be set up")
	}
	c.txMu.Lock()
	c.tx = queues[consoleTxQueue]
	c.txMu.Unlock()
	c.mu.Lock()
	c.rx = queues[consoleRxQueue]
	c.deliverLocked() // input that arrived before the driver
	c.mu.Unlock()
	return nil
}

func (c *Console) Reset() {
	c.txMu.Lock()
	c.tx = nil
	c.txMu.Unlock()
	c.mu.Lock()
	c.rx = nil
	c.mu.Unlock()
}

// Close stops delivery and closes in if it is an io.Closer, which ends the
// input goroutine once its Read returns.
func (c *Console) Close() error {
	c.Reset()
	c.mu.Lock()
	c.closed = true
	c.inputSpace.Broadcast()
	c.mu.Unlock()
	if cl, ok := c.in.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func (c *Console) Notify(q int) {
	switch q {
	case consoleRxQueue:
		// New receive buffers: hand over what input is waiting.
		c.mu.Lock()
		c.deliverLocked()
		c.mu.Unlock()
	case consoleTxQueue:
		c.transmit()
	}
}

// transmit writes every posted output buffer, on the vCPU thread.
func (c *Console) transmit() {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	q := c.tx
	if q == nil {
		return
	}
	for {
		ok, err := q.Pop(&c.txChain)
		if err != nil || !ok {
			break
		}
		for _, b := range c.txChain.Readable {
			// A failing writer loses output, as a disconnected
			// terminal would; the guest is not told.
			c.out.Write(b)
		}
		q.Push(c.txChain.Head, 0)
	}
	q.Signal()
}

// readInput is the input goroutine.
func (c *Console) readInput() {
	defer c.contain()
	buf := make([]byte, 4096)
	for {
		n, err := c.in.Read(buf)
		if n > 0 {
			c.mu.Lock()
			for len(c.pending)+n > maxConsoleInput && !c.closed {
				c.inputSpace.Wait()
			}
			if c.closed {
				c.mu.Unlock()
				return
			}
			c.pending = append(c.pending, buf[:n]...)
			c.deliverLocked()
			c.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// deliverLocked copies pending input into posted receive buffers. The
// caller holds mu.
func (c *Console) deliverLocked() {
	q := c.rx
	if q == nil || len(c.pending) == 0 {
		return
	}
	before := len(c.pending)
	for len(c.pending) > 0 {
		ok, err := q.Pop(&c.rxChain)
		if err != nil || !ok {
			break
		}
		n := scatter(c.rxChain.Writable, 0, c.pending)
		q.Push(c.rxChain.Head, uint32(n))
		c.pending = c.pending[:copy(c.pending, c.pending[n:])]
	}
	q.Signal()
	if len(c.pending) < before {
		c.inputSpace.Broadcast()
	}
}
