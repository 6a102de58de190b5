package vmm

import (
	"fmt"
	"image"
	"net"
	"sync"

	"github.com/tandem-hv/tandem/display/vnc"
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

// vncSink tells a VNC server of each flush; it takes the picture from the
// GPU itself, on its clients' goroutines.
type vncSink struct{ s *vnc.Server }

func (v vncSink) Flushed(_ *virtio.GPU, damage image.Rectangle) { v.s.Damage(damage) }

// serveDisplay starts the display's VNC server, when configured, on its
// listening socket (the caller's, or one made here, before the sandbox
// goes up: the running VMM only accepts on it).
func (vm *VM) serveDisplay() error {
	d := vm.display
	if d == nil {
		return nil
	}
	cfg := vm.cfg.Display
	if cfg.VNC == "" && cfg.VNCListener == nil {
		return nil
	}
	s, err := vnc.New(vnc.Config{Screen: d.GPU, Keyboard: d.Keyboard, Touch: d.Touch, Name: vm.cfg.Name, Log: vm.warn.Printf})
	if err != nil {
		return err
	}
	l := cfg.VNCListener
	if l == nil {
		a, err := vnc.ParseAddr(cfg.VNC, cfg.VNCAllowRemote)
		if err != nil {
			return fmt.Errorf("VNC: %w", err)
		}
		if l, err = vnc.Listen(a); err != nil {
			return fmt.Errorf("VNC: listening on %s: %w", a, err)
		}
		vm.closers = append(vm.closers, l)
	}
	vm.closers = append(vm.closers, closerFunc(func() error { s.Close(); return nil }))
	d.AddFlushSink(vncSink{s})
	go s.Serve(l)
	return nil
}

// closerFunc is a func as an io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// CheckVNC says why addr cannot serve a display over VNC, or nil (see
// Display.VNC).
func CheckVNC(addr string, allowRemote bool) error {
	_, err := vnc.ParseAddr(addr, allowRemote)
	return err
}

// ListenVNC makes the listening socket of d's VNC server, for a caller
// that keeps it across the guest's boots (Display.VNCListener).
func ListenVNC(d *Display) (net.Listener, error) {
	a, err := vnc.ParseAddr(d.VNC, d.VNCAllowRemote)
	if err != nil {
		return nil, err
	}
	return vnc.Listen(a)
}
