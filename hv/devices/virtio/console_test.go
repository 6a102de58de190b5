package virtio

import (
	"bytes"
	"io"
	"testing"
	"time"
)

func TestConsoleOutput(t *testing.T) {
	var out bytes.Buffer
	d := newDriver(t, NewConsole(nil, &out))
	d.start(allRingFeatures, 2, 16)
	q := d.q[consoleTxQueue]
	a, b := d.allocate(16), d.allocate(16)
	d.write(a, []byte("hello, "))
	d.write(b, []byte("world\n"))
	head := d.add(q, buf{a, 7, false}, buf{b, 6, false})
	d.kick(q)
	if got, want := out.String(), "hello, world\n"; got != want {
		t.Errorf("console output = %q, want %q", got, want)
	}
	if used := d.takeUsed(q); len(used) != 1 || used[0] != (usedElem{uint32(head), 0}) {
		t.Errorf("used ring = %v, want [{%d 0}]", used, head)
	}
	if got := d.irq.n.Load(); got != 1 {
		t.Errorf("interrupts = %d, want 1", got)
	}
}

func TestConsoleInput(t *testing.T) {
	pr, pw := io.Pipe()
	con := NewConsole(pr, io.Discard)
	d := newDriver(t, con)
	// Input typed before the driver is up is kept: the pipe write returns
	// once the input goroutine has taken it.
	if _, err := pw.Write([]byte("early")); err != nil {
		t.Fatal(err)
	}
	// and queued it a moment later.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		con.mu.Lock()
		n := len(con.pending)
		con.mu.Unlock()
		if n == len("early") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("input goroutine holds %d bytes after 5s, want %d", n, len("early"))
		}
	}
	d.start(allRingFeatures, 2, 16)
	q := d.q[consoleRxQueue]

	tests := []struct {
		name   string
		typed  string // written to the input after the buffers are posted
		bufs   []uint32
		want   []string // per buffer
		notify bool     // delivered by the notify itself (input already waiting)
	}{
		{name: "waiting input", bufs: []uint32{64}, want: []string{"early"}, notify: true},
		{name: "input after buffers", typed: "late", bufs: []uint32{64}, want: []string{"late"}},
		{name: "input spread over buffers", typed: "0123456789", bufs: []uint32{4, 4, 4}, want: []string{"0123", "4567", "89"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gpas := make([]uint64, len(tt.bufs))
			for i, n := range tt.bufs {
				gpas[i] = d.allocate(uint64(n))
				d.add(q, buf{gpas[i], n, true})
			}
			d.kick(q)
			if tt.notify {
				if used := d.takeUsed(q); len(used) != len(tt.want) {
					t.Fatalf("used elements right after notify = %v, want %d", used, len(tt.want))
				}
			} else {
				if _, err := pw.Write([]byte(tt.typed)); err != nil {
					t.Fatal(err)
				}
				d.waitUsed(q, len(tt.want))
			}
			for i, want := range tt.want {
				if got := string(d.read(gpas[i], len(want))); got != want {
					t.Errorf("buffer %d = %q, want %q", i, got, want)
				}
			}
		})
	}
	// Close ends the input goroutine through the pipe.
	if err := d.mmio.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if _, err := pw.Write([]byte("x")); err != io.ErrClosedPipe {
		t.Errorf("write after Close = %v, want %v", err, io.ErrClosedPipe)
	}
}
