package virtio

import (
	"crypto/rand"
	"errors"
	"sync"
)

// rngMaxChain bounds the bytes given for one chain, so a guest posting
// huge buffers cannot hold its vCPU in crypto/rand; the driver accepts
// fewer bytes than it asked for (spec §5.4.6.1).
const rngMaxChain = 64 << 10

// RNG is a virtio entropy device (spec §5.4): it fills every buffer the
// driver posts from the host's crypto/rand.
type RNG struct {
	// mu serialises use of queue and chain. Lock order: MMIO.mu before RNG.mu.
	mu    sync.Mutex
	queue *Queue
	chain Chain
}

// NewRNG returns an entropy device.
func NewRNG() *RNG { return &RNG{} }

func (r *RNG) DeviceID() uint32                    { return IDRNG }
func (r *RNG) Name() string                        { return "virtio-rng" }
func (r *RNG) Features() uint64                    { return 0 }
func (r *RNG) QueueMax() []uint16                  { return []uint16{defaultQueueMax} }
func (r *RNG) ReadConfig(off uint64, data []byte)  { clear(data) } // no configuration (spec §5.4.4)
func (r *RNG) WriteConfig(off uint64, data []byte) {}
func (r *RNG) Close() error                        { r.Reset(); return nil }

func (r *RNG) Activate(features uint64, queues []*Queue) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if queues[0] == nil {
		return errors.New("request queue 0 not set up")
	}
	r.queue = queues[0]
	return nil
}

func (r *RNG) Reset() {
	r.mu.Lock()
	r.queue = nil
	r.mu.Unlock()
}

// Notify fills the posted buffers on the vCPU thread: crypto/rand does
// not block once the host's pool is initialised.
func (r *RNG) Notify(int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.queue
	if q == nil {
		return
	}
	for {
		ok, err := q.Pop(&r.chain)
		if err != nil || !ok {
			break
		}
		n := 0
		for _, b := range r.chain.Writable {
			b = b[:min(len(b), rngMaxChain-n)]
			rand.Read(b) // never fails (crypto/rand documents it)
			n += len(b)
		}
		q.Push(r.chain.Head, uint32(n))
	}
	q.Signal()
}
