package devices

import "testing"

func TestInputBuffer(t *testing.T) {
	var b InputBuffer
	if _, ok := b.Pop(); ok || b.Len() != 0 || b.Full() {
		t.Fatalf("zero InputBuffer: not empty")
	}
	if n := b.Push([]byte("ab")); n != 2 {
		t.Errorf("Push of 2 bytes kept %d", n)
	}
	if c, ok := b.Pop(); !ok || c != 'a' {
		t.Errorf("Pop = %q, %v, want 'a', true", c, ok)
	}
	if n := b.Push(make([]byte, MaxInput)); n != MaxInput-1 {
		t.Errorf("Push up to the cap kept %d bytes, want %d", n, MaxInput-1)
	}
	if !b.Full() || b.Len() != MaxInput {
		t.Errorf("Len = %d, Full = %v at the cap, want %d, true", b.Len(), b.Full(), MaxInput)
	}
	if n := b.Push([]byte("x")); n != 0 {
		t.Errorf("Push past the cap kept %d bytes", n)
	}
	if c, ok := b.Pop(); !ok || c != 'b' {
		t.Errorf("Pop after filling = %q, %v, want 'b', true", c, ok)
	}
	b.Reset()
	if b.Len() != 0 {
		t.Errorf("Len after Reset = %d", b.Len())
	}
}

// TestInputBufferWraps pushes and pops across the ring's end many times:
// bytes come out in order and the count never passes the cap.
func TestInputBufferWraps(t *testing.T) {
	var b InputBuffer
	var next, want byte
	for round := 0; round < 5; round++ {
		chunk := make([]byte, MaxInput/3+7)
		for i := range chunk {
			chunk[i] = next
			next++
		}
		if n := b.Push(chunk); n != len(chunk) {
			t.Fatalf("round %d: Push kept %d of %d", round, n, len(chunk))
		}
		for b.Len() > MaxInput/4 {
			c, _ := b.Pop()
			if c != want {
				t.Fatalf("round %d: Pop = %d, want %d", round, c, want)
			}
			want++
		}
	}
	if len(b.ring) != MaxInput {
		t.Errorf("ring of %d bytes, want exactly MaxInput (%d)", len(b.ring), MaxInput)
	}
}
