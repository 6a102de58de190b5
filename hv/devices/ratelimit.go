package devices

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// RateLimited writes at most a given number of warnings a second, so a
// guest hammering a hole or a device cannot flood the log. Warnings past
// the limit are dropped and counted; the next second's first warning is
// preceded by how many were dropped.
//
// A nil *RateLimited, or one without a writer, discards everything. Its
// methods may be called from any goroutine.
type RateLimited struct {
	n int

	// mu protects w, window and count.
	mu     sync.Mutex
	w      io.Writer
	window time.Time
	count  int
}

// NewRateLimited returns a RateLimited writing at most perSecond warnings
// a second to w (nil: none until SetOutput gives a writer).
func NewRateLimited(w io.Writer, perSecond int) *RateLimited {
	return &RateLimited{w: w, n: perSecond}
}

// PerSecond is how many warnings a second are written.
func (r *RateLimited) PerSecond() int { return r.n }

// SetOutput sends the warnings to w from now on (nil: discard them).
func (r *RateLimited) SetOutput(w io.Writer) {
	r.mu.Lock()
	r.w = w
	r.mu.Unlock()
}

// Printf writes one warning, "tandem: warning: " and the formatted
// message on a line of its own, unless this second's warnings are used
// up.
func (r *RateLimited) Printf(format string, args ...any) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return
	}
	now := time.Now()
	if now.Sub(r.window) >= time.Second {
		if dropped := r.count - r.n; dropped > 0 {
			fmt.Fprintf(r.w, "tandem: warning: %d more warnings dropped\n", dropped)
		}
		r.window, r.count = now, 0
	}
	r.count++
	if r.count <= r.n {
		fmt.Fprintf(r.w, "tandem: warning: "+format+"\n", args...)
	}
}
