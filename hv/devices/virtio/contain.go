package virtio

import (
	"errors"
	"sync"

	"github.com/tandem-hv/tandem/hv/bus"
)

// Containment of a device model's own bugs. What a vCPU thread runs in a
// device (register accesses, notifications) is contained by the
// transport: MMIO.Read and MMIO.Write recover a panic and fail the device.
// What a device runs on goroutines of its own (console input, network
// receive, vsock connections, Dial) has no vCPU below it to return to,
// and a panic there would end the whole VMM: each such goroutine defers
// its device's workerGuard.contain, which hands the panic to the same
// transport.

// errDeviceFailed is what a host-side call (Dial) into a failed device
// returns.
var errDeviceFailed = errors.New("the device model failed and is stopped")

// workerDevice is a device with goroutines of its own. NewMMIO attaches
// the transport to its guard.
type workerDevice interface {
	guard() *workerGuard
}

// workerGuard contains the panics of one device's goroutines. The zero
// value is ready; a device embeds it.
type workerGuard struct {
	// mu protects owner and early.
	mu    sync.Mutex
	owner *MMIO
	// early is a panic from before NewMMIO attached a transport (a
	// goroutine starts with the device): reported when one is.
	early *bus.Fault
}

func (g *workerGuard) guard() *workerGuard { return g }

func (g *workerGuard) setOwner(t *MMIO) {
	g.mu.Lock()
	g.owner = t
	f := g.early
	g.mu.Unlock()
	if f != nil {
		t.deviceFailed(f)
	}
}

// contain is deferred first thing by each of the device's goroutines: it
// recovers a panic and fails the device through its transport.
func (g *workerGuard) contain() {
	if p := recover(); p != nil {
		g.report(bus.NewFault(p))
	}
}

// containErr is contain for a host-side call that returns an error: the
// panic becomes errDeviceFailed.
func (g *workerGuard) containErr(err *error) {
	if p := recover(); p != nil {
		g.report(bus.NewFault(p))
		*err = errDeviceFailed
	}
}

func (g *workerGuard) report(f *bus.Fault) {
	g.mu.Lock()
	t := g.owner
	if t == nil && g.early == nil {
		g.early = f
	}
	g.mu.Unlock()
	if t != nil {
		t.deviceFailed(f)
	}
}

// failed reports whether the device has been failed, by a panic of its
// own goroutines or on a vCPU.
func (g *workerGuard) failed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.early != nil || g.owner != nil && g.owner.failed.Load()
}
