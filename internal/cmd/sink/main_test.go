package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestParseArgsAcceptsASocketPathOrTCPAddress(t *testing.T) {
	tests := []struct {
		name          string
		args          []string
		network, addr string
		wantErr       bool
	}{
		{"unix socket", []string{"sink.sock"}, "unix", "sink.sock", false},
		{"tcp with host", []string{"tcp", "10.0.2.2:5001"}, "tcp", "10.0.2.2:5001", false},
		{"tcp any address", []string{"tcp", ":5001"}, "tcp", ":5001", false},
		{"tcp without port", []string{"tcp", "10.0.2.2"}, "", "", true},
		{"tcp with empty port", []string{"tcp", "10.0.2.2:"}, "", "", true},
		{"tcp without address", []string{"tcp"}, "", "", true},
		{"nothing", nil, "", "", true},
		{"empty path", []string{""}, "", "", true},
		{"unknown network", []string{"udp", ":5001"}, "", "", true},
		{"too many", []string{"tcp", ":1", ":2"}, "", "", true},
		{"source", []string{"source", "10.0.2.2:5002"}, "source", "10.0.2.2:5002", false},
		{"source without port", []string{"source", "10.0.2.2"}, "", "", true},
		{"source alone", []string{"source"}, "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, a, err := parseArgs(tt.args)
			if (err != nil) != tt.wantErr || n != tt.network || a != tt.addr {
				t.Errorf("parseArgs(%q) = %q, %q, %v; want %q, %q, error %v", tt.args, n, a, err, tt.network, tt.addr, tt.wantErr)
			}
		})
	}
}

func TestServeReadsEachConnectionToItsEndThenCloses(t *testing.T) {
	tests := []struct {
		name, network, addr string
		size                int
	}{
		{"tcp, nothing sent", "tcp", "127.0.0.1:0", 0},
		{"tcp, one byte", "tcp", "127.0.0.1:0", 1},
		{"tcp, many buffers", "tcp", "127.0.0.1:0", 3*bufSize + 17},
		{"unix, many buffers", "unix", "", 3*bufSize + 17},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr
			if tt.network == "unix" {
				addr = filepath.Join(t.TempDir(), "sink.sock")
			}
			l, err := net.Listen(tt.network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ended := make(chan int64, 1)
			go serve(l, drain, func(n int64) { ended <- n })
			c, err := net.Dial(tt.network, l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(c, bytes.NewReader(bytes.Repeat([]byte{0xa5}, tt.size))); err != nil {
				t.Fatal(err)
			}
			if err := c.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
				t.Fatal(err)
			}
			// The sender's end of the transfer: the sink closes after
			// the last byte, sending nothing back.
			back, err := io.ReadAll(c)
			if err != nil || len(back) != 0 {
				t.Fatalf("reading until the sink closed: %d bytes back, %v; want none and EOF", len(back), err)
			}
			select {
			case n := <-ended:
				if n != int64(tt.size) {
					t.Errorf("the sink read %d bytes, want %d", n, tt.size)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the sink did not report the connection's end")
			}
		})
	}
}

// TestSource checks the source's side of the host→guest stream: the
// requested bytes, exactly, then the close; a bad request gets nothing.
func TestSource(t *testing.T) {
	tests := []struct {
		name, request string
		want          int
	}{
		{"nothing", "0\n", 0},
		{"one byte", "1\n", 1},
		{"many buffers", fmt.Sprintf("%d\n", 3*bufSize+17), 3*bufSize + 17},
		{"not a number", "lots\n", 0},
		{"negative", "-5\n", 0},
		{"no line end", "12", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ended := make(chan int64, 1)
			go serve(l, source, func(n int64) { ended <- n })
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, tt.request)
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil || len(got) != tt.want {
				t.Fatalf("read %d bytes, %v; want %d and EOF", len(got), err, tt.want)
			}
			if n := <-ended; n != int64(tt.want) {
				t.Errorf("done(%d), want %d", n, tt.want)
			}
		})
	}
}
