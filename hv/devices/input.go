package devices

// MaxInput bounds what a UART buffers for a guest that does not read:
// input beyond it is dropped rather than growing without limit. A real
// UART holds 16 or 32 characters; more is kinder to pasted input.
const MaxInput = 64 << 10

// InputBuffer is a UART's receive queue: bytes from the host waiting for
// the guest to read them, at most MaxInput of them. The zero value is an
// empty buffer. It does no locking of its own: the UART's lock, which
// also guards the registers the buffer's state shows in, protects it.
type InputBuffer struct {
	buf []byte
}

// Push queues p, dropping what would take the buffer past MaxInput, and
// returns how many bytes it kept.
func (b *InputBuffer) Push(p []byte) int {
	room := MaxInput - len(b.buf)
	if room < len(p) {
		p = p[:max(room, 0)]
	}
	b.buf = append(b.buf, p...)
	return len(p)
}

// PushUnbounded queues c even past MaxInput. It is the 16550's loopback
// path, where the guest's own output comes back as input; it has never
// been bounded.
func (b *InputBuffer) PushUnbounded(c byte) { b.buf = append(b.buf, c) }

// Pop takes the oldest byte; ok is false when the buffer is empty.
func (b *InputBuffer) Pop() (c byte, ok bool) {
	if len(b.buf) == 0 {
		return 0, false
	}
	c = b.buf[0]
	b.buf = b.buf[1:]
	return c, true
}

// Len is how many bytes wait.
func (b *InputBuffer) Len() int { return len(b.buf) }

// Full reports whether the buffer holds MaxInput bytes or more, so that
// further input is dropped.
func (b *InputBuffer) Full() bool { return len(b.buf) >= MaxInput }

// Reset drops every waiting byte.
func (b *InputBuffer) Reset() { b.buf = nil }
