package system

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRouteToHost sends a guest's connections to CID 2 through the router:
// an allowed port with a host service reaches the service's socket and
// carries the stream; every other case is refused, saying why.
func TestRouteToHost(t *testing.T) {
	dir := t.TempDir()
	sink := filepath.Join(dir, "sink.sock")
	l, err := net.Listen("unix", sink)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		c.Close()
		got <- string(b)
	}()
	g := &Guest{Name: "control", Vsock: &Vsock{CID: 3,
		Allow: []Endpoint{{CID: HostCID, Port: 6000}, {CID: HostCID, Port: 6001}, {CID: HostCID, Port: 6002}},
		Host:  []HostService{{Port: 6000, Socket: sink}, {Port: 6002, Socket: filepath.Join(dir, "gone.sock")}},
	}}
	s := &Supervisor{}
	from := &guestProc{g: g}
	tests := []struct {
		name string
		port uint32
		want string // the answer's start
	}{
		{"an allowed port with a host service", 6000, "OK"},
		{"a host port not on the allow-list", 7000, "ERR not in control's vsock.allow"},
		{"an allowed port no service serves", 6001, "ERR no host service on port 6001 in control's vsock.host"},
		{"a host service whose socket is gone", 6002, "ERR host service on port 6002: dial unix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmm, sup := net.Pipe()
			defer vmm.Close()
			go s.route(sup, from)
			fmt.Fprintf(vmm, "%s 1000 %d %d\n", opConnect, HostCID, tt.port)
			vmm.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := readLine(vmm)
			if err != nil || !strings.HasPrefix(line, tt.want) {
				t.Fatalf("answer = %q, %v, want it to start with %q", line, err, tt.want)
			}
			if tt.want != answerOK {
				return
			}
			io.WriteString(vmm, "vehicle state")
			vmm.Close()
			select {
			case b := <-got:
				if b != "vehicle state" {
					t.Errorf("host service read %q, want %q", b, "vehicle state")
				}
			case <-time.After(10 * time.Second):
				t.Errorf("host service read nothing within 10s")
			}
		})
	}
}
