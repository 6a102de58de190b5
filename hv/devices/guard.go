package devices

import (
	"os"
	"sync/atomic"

	"github.com/tandem-hv/tandem/hv/bus"
)

// faults writes the warnings of Guards: at most one per device, since a
// failed device runs no more, and rate-limited all the same.
var faults = NewRateLimited(os.Stderr, 5)

// Guard contains the panics of a device model's code that runs off the
// vCPU threads — a timer's callback, host input delivered from a
// goroutine — where no bus is below to recover them and a panic would
// end the whole VMM. Each such entry defers Contain; a panic there fails
// the device: one warning, and from then on its Read and Write, which
// check Failed before anything else (its lock may be held by the code
// that panicked), read zeros and ignore writes, as the bus does for a
// device that panics on a vCPU. The zero value is ready; a device embeds
// it.
type Guard struct {
	failed atomic.Bool
}

// Contain recovers a panic of the device's own goroutine and fails the
// device. name says which device, for the warning. It must be deferred
// directly.
func (g *Guard) Contain(name string) {
	if p := recover(); p != nil && g.failed.CompareAndSwap(false, true) {
		faults.Printf("%s failed: %v; it reads as zero and ignores writes from now on, and the guest goes on", name, bus.NewFault(p))
	}
}

// Failed reports whether the device has been failed by a panic.
func (g *Guard) Failed() bool { return g.failed.Load() }
