package system

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// gate is an output that blocks every write until opened, as a paused
// terminal or a full serial console would, and keeps what it gets.
type gate struct {
	open chan struct{}
	mu   sync.Mutex
	b    strings.Builder
}

func (g *gate) Write(p []byte) (int, error) {
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.String()
}

// TestConsoleOutput feeds a guest's console through the supervisor's pump
// and checks what reaches Out: every line, in order, with the guest's
// name, when Out keeps up; and when Out stalls, the pump still takes the
// guest's whole output at once (so the guest is never held up), the
// supervisor's messages do not wait either, and Out later gets the lines
// the queue held and a count of those dropped.
func TestConsoleOutput(t *testing.T) {
	tests := []struct {
		name    string
		lines   int
		stalled bool
	}{
		{"an output that keeps up gets every line", 100, false},
		{"a stalled output holds up nothing and is told what it lost", 3 * outputQueue, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := &gate{open: make(chan struct{})}
			if !tt.stalled {
				close(out.open)
			}
			s := &Supervisor{Out: out, Log: out}
			gp := &guestProc{s: s, g: &Guest{Name: "info"}, consoles: map[chan []byte]bool{}}
			r, w := io.Pipe()
			pumped := make(chan struct{})
			go func() {
				defer close(pumped)
				gp.pumpConsole(r, false)
			}()
			fed := make(chan struct{})
			go func() {
				defer close(fed)
				for i := range tt.lines {
					fmt.Fprintf(w, "line %d\r\n", i)
				}
				w.Close()
				<-pumped
				s.logf("info ended")
			}()
			select {
			case <-fed:
			case <-time.After(10 * time.Second):
				close(out.open) // lets the test end
				t.Fatalf("writing %d console lines and a message did not finish within 10s: the pump or the supervisor waited for the output", tt.lines)
			}
			if tt.stalled {
				close(out.open)
			}
			s.output().flush()
			got := out.String()
			if !strings.HasPrefix(got, "info | line 0\n") {
				t.Errorf("Out starts %q, want the first line with the guest's name", firstN(got, 40))
			}
			dropped := strings.Contains(got, "lines dropped: the output did not keep up")
			if dropped != tt.stalled {
				t.Errorf("Out reports dropped lines: %v, want %v", dropped, tt.stalled)
			}
			if !tt.stalled {
				var want strings.Builder
				for i := range tt.lines {
					fmt.Fprintf(&want, "info | line %d\n", i)
				}
				want.WriteString("tandem: info ended\n")
				if got != want.String() {
					t.Errorf("Out = %q..., want every line in order, then the supervisor's", firstN(got, 200))
				}
			}
		})
	}
}

func firstN(s string, n int) string { return s[:min(n, len(s))] }
