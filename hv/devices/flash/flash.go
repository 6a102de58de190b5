// Package flash is the read-only NOR flash a guest booted from firmware
// starts in: the firmware's bytes are mapped into the guest by a
// read-only memory slot, so reads of them never leave the vCPU, and what
// reaches this model is what that slot does not serve: every write
// (KVM turns a write to a read-only slot into an MMIO exit) and reads
// past the firmware's bytes.
//
// The flash takes no commands: writes are dropped, and a read past the
// firmware returns erased flash (all ones), as a NOR flash does. A guest
// that probes it (CFI query, JEDEC id) finds no flash chip answering and
// goes on without one; U-Boot does so and uses its built-in environment.
package flash

import (
	"sync/atomic"

	"github.com/tandem-hv/tandem/hv/devices"
)

// erased is the value of an erased NOR flash byte.
const erased = 0xff

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

// Read returns the image's bytes at off, and erased flash past them.
func (f *Flash) Read(off uint64, data []byte) {
	for i := range data {
		o := off + uint64(i)
		if o < uint64(len(f.image)) {
			data[i] = f.image[o]
		} else {
			data[i] = erased
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
