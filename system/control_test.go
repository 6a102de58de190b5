package system

import (
	"net"
	"testing"
	"time"
)

// TestStalledClient checks that a control client that sends logs or
// console and then never reads does not hold up the guest's console: the
// pump's record of new output must go on while the answer waits.
func TestStalledClient(t *testing.T) {
	for _, tt := range []struct{ name, command string }{
		{"logs", "logs control"},
		{"console", "console control"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &Supervisor{byName: map[string]*guestProc{}}
			gp := &guestProc{s: s, g: &Guest{Name: "control"}, consoles: map[chan []byte]bool{}, ring: []byte("boot line\n")}
			s.byName["control"] = gp
			// net.Pipe has no buffer: a write blocks until all of it is
			// read. The client reads one byte, so the answer's write has
			// begun, then stops.
			server, client := net.Pipe()
			served := make(chan struct{})
			go func() {
				defer close(served)
				s.command(server, tt.command)
			}()
			if _, err := client.Read(make([]byte, 1)); err != nil {
				t.Fatalf("reading the answer's first byte: %v", err)
			}
			recorded := make(chan struct{})
			go func() {
				defer close(recorded)
				for range 1000 {
					gp.record([]byte("control loop report\n"))
				}
			}()
			var blocked bool
			select {
			case <-recorded:
			case <-time.After(10 * time.Second):
				blocked = true
			}
			client.Close() // ends the server's write, and the command
			if blocked {
				t.Fatalf("record blocked while a %q client was not reading its answer", tt.command)
			}
			<-served
		})
	}
}
