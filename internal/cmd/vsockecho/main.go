// Command vsockecho is the host's echo service of `make bench`'s vsock
// round trip: it accepts stream connections and writes back whatever each
// sends, until it closes. The guest (guests/iobench, tandem.io=vsock)
// connects to the host's port 5000 and times each message's echo.
//
//	vsockecho unix PATH   (Tandem: a vsock.host service of tandem system)
//	vsockecho vsock PORT  (a vhost-vsock peer: AF_VSOCK, any CID)
//
// Both forms accept and echo with the same plain system calls, one thread
// per connection, so the two VMMs' host sides differ only in the socket's
// family.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// bufSize is how much one read may take: more than any message of the
// round-trip test.
const bufSize = 4096

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: vsockecho unix PATH | vsockecho vsock PORT")
		os.Exit(2)
	}
	fd, err := listen(os.Args[1], os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "vsockecho: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("vsockecho: listening on %s %s\n", os.Args[1], os.Args[2])
	for {
		c, _, err := unix.Accept4(fd, unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "vsockecho: accepting: %v\n", err)
			os.Exit(1)
		}
		go echo(c)
	}
}

// listen opens the listening socket: family "unix" with a path, or
// "vsock" with a port.
func listen(family, addr string) (int, error) {
	var domain int
	var sa unix.Sockaddr
	switch family {
	case "unix":
		os.Remove(addr)
		domain, sa = unix.AF_UNIX, &unix.SockaddrUnix{Name: addr}
	case "vsock":
		port, err := strconv.ParseUint(addr, 10, 32)
		if err != nil {
			return -1, fmt.Errorf("vsock port %q: %w", addr, err)
		}
		domain, sa = unix.AF_VSOCK, &unix.SockaddrVM{CID: unix.VMADDR_CID_ANY, Port: uint32(port)}
	default:
		return -1, fmt.Errorf("socket family %q: want unix or vsock", family)
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%s socket: %w", family, err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return -1, fmt.Errorf("binding %s %s: %w", family, addr, err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		return -1, fmt.Errorf("listening on %s %s: %w", family, addr, err)
	}
	return fd, nil
}

// echo writes back what c sends until it closes; it keeps its thread, so
// a blocking read wakes this goroutine directly.
func echo(c int) {
	runtime.LockOSThread()
	defer unix.Close(c)
	buf := make([]byte, bufSize)
	for {
		n, err := unix.Read(c, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return
		}
		for b := buf[:n]; len(b) > 0; {
			m, err := unix.Write(c, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			b = b[m:]
		}
	}
}
