package main

import (
	"bytes"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestListenRefusesBadAddresses(t *testing.T) {
	tests := []struct {
		name, family, addr, wantErr string
	}{
		{"unknown family", "tcp", "5000", `socket family "tcp": want unix or vsock`},
		{"vsock port not a number", "vsock", "echo", `vsock port "echo"`},
		{"vsock port too large", "vsock", "4294967296", `vsock port "4294967296"`},
		{"unix path in a missing directory", "unix", "/nonexistent/dir/echo.sock", "binding unix /nonexistent/dir/echo.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd, err := listen(tt.family, tt.addr)
			if err == nil {
				unix.Close(fd)
				t.Fatalf("listen(%q, %q) = nil error, want %q", tt.family, tt.addr, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("listen(%q, %q) = %v, want %q", tt.family, tt.addr, err, tt.wantErr)
			}
		})
	}
}

// TestEchoWritesBackEveryMessage runs the echo loop on a UNIX socket and
// checks that messages of the round-trip test's size, and larger than one
// read, come back unchanged, and that the loop ends when the client closes.
func TestEchoWritesBackEveryMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "echo.sock")
	lfd, err := listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Error(err)
			return
		}
		echo(c)
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 64, bufSize + 100} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		back := make([]byte, n)
		if _, err := io.ReadFull(c, back); err != nil {
			t.Fatalf("reading the echo of %d bytes: %v", n, err)
		}
		if !bytes.Equal(back, msg) {
			t.Errorf("echo of %d bytes differs from what was sent", n)
		}
	}
	c.Close()
	<-done
}
