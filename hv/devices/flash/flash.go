// Package flash is the read-only flash a guest booted from firmware
// starts in. The VMM maps the flash into the guest by a read-only memory
// slot, the firmware's bytes first and zeros after them, so reads never
// leave the vCPU; what reaches this model is every write (KVM turns a
// write to a read-only slot into an MMIO exit), and a read only where
// the slot does not reach.
//
// The flash takes no commands: writes are dropped, and reads return what
// the slot holds. A guest that probes it (CFI query, JEDEC id) finds no
// flash chip answering and goes on without one; U-Boot does so, finds no
// valid environment in the second bank and uses its built-in one.
package flash

import (
	"sync/atomic"

	"github.com/tandem-hv/tandem/hv/devices"
)

// Flash is a read-only flash holding an image at its start; the bus
// decides its size.
type Flash struct {
	image  []byte
	warn   *devices.RateLimited
	writes atomic.Uint64
}

// New returns a flash whose first bytes are image. Writes are reported
// to warn (nil: dropped quietly), rate limited.
func New(image []byte, warn *devices.RateLimited) *Flash {
	return &Flash{image: image, warn: warn}
}

// Read returns the image's bytes at off, and zeros past them, as the
// read-only slot does.
func (f *Flash) Read(off uint64, data []byte) {
	for i := range data {
		o := off + uint64(i)
		if o < uint64(len(f.image)) {
			data[i] = f.image[o]
		} else {
			data[i] = 0
		}
	}
}

// Write drops the write: the flash is read-only.
func (f *Flash) Write(off uint64, data []byte) {
	f.writes.Add(1)
	f.warn.Printf("flash: guest wrote %d bytes at %#x; the flash is read-only, the write is dropped", len(data), off)
}

// Writes counts the writes dropped.
func (f *Flash) Writes() uint64 { return f.writes.Load() }
