package vmm

import (
	"image"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices/virtio"
)

// A FlushSink is told whenever the guest flushes part of its scanout:
// the board's framebuffer, a VNC server, a recorder. Flushed runs on the
// vCPU thread that flushed: it must not block (take the picture later,
// with GPU.Snapshot, on a goroutine of its own).
type FlushSink interface {
	Flushed(gpu *virtio.GPU, damage image.Rectangle)
}

// flushFanout passes each flush to every sink.
type flushFanout struct {
	// mu protects sinks.
	mu    sync.Mutex
	sinks []FlushSink
}

func (f *flushFanout) add(s FlushSink) {
	f.mu.Lock()
	f.sinks = append(f.sinks, s)
	f.mu.Unlock()
}

func (f *flushFanout) flushed(gpu *virtio.GPU, damage image.Rectangle) {
	f.mu.Lock()
	sinks := f.sinks
	f.mu.Unlock()
	for _, s := range sinks {
		s.Flushed(gpu, damage)
	}
}

// AddFlushSink has s told of every flush of the guest's scanout from
// now on.
func (d *DisplayDevices) AddFlushSink(s FlushSink) { d.fanout.add(s) }
