package devices

// MaxInput bounds what a UART buffers for a guest that does not read:
// input beyond it is dropped rather than growing without limit. A real
// UART holds 16 or 32 characters; more is kinder to pasted input.
const MaxInput = 64 << 10

// InputBuffer is a UART's receive queue: bytes waiting for the guest to
// read them, from the host or, in a 16550's loopback mode, from the guest
// itself. It holds at most MaxInput bytes in a ring of exactly that size,
// allocated at the first Push, so no pattern of pushes and pops makes it
// hold more. The zero value is an empty buffer. It does no locking of its
// own: the UART's lock, which also guards the registers the buffer's
// state shows in, protects it.
type InputBuffer struct {
	ring []byte // nil until the first Push, then MaxInput bytes
	head int    // index of the oldest byte
	n    int    // bytes waiting
}

// Push queues p, dropping what would take the buffer past MaxInput, and
// returns how many bytes it kept.
func (b *InputBuffer) Push(p []byte) int {
	p = p[:min(len(p), MaxInput-b.n)]
	if len(p) == 0 {
		return 0
	}
	if b.ring == nil {
		b.ring = make([]byte, MaxInput)
	}
	tail := (b.head + b.n) % MaxInput
	k := copy(b.ring[tail:], p)
	copy(b.ring, p[k:])
	b.n += len(p)
	return len(p)
}

// Pop takes the oldest byte; ok is false when the buffer is empty.
func (b *InputBuffer) Pop() (c byte, ok bool) {
	if b.n == 0 {
		return 0, false
	}
	c = b.ring[b.head]
	b.head = (b.head + 1) % MaxInput
	b.n--
	return c, true
}

// Len is how many bytes wait.
func (b *InputBuffer) Len() int { return b.n }

// Full reports whether the buffer holds MaxInput bytes, so that further
// input is dropped.
func (b *InputBuffer) Full() bool { return b.n >= MaxInput }

// Reset drops every waiting byte and the ring with them.
func (b *InputBuffer) Reset() { *b = InputBuffer{} }
