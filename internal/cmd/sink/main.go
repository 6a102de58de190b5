// Command sink is a host service for benchmarks: it listens on a UNIX
// socket or a TCP address and reads every connection to its end,
// discarding what it reads, then closes it. The mixed-criticality bench
// gives it to the control guest running alone, so that the guest
// publishes its vehicle state as it does beside the infotainment guest,
// and the two runs differ only in the other guest. The net bench's guest
// (guests/iobench, tandem.io=net) streams to it over TCP through a TAP
// and takes its close as the end of the transfer.
//
//	sink SOCKET
//	sink tcp HOST:PORT
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
)

// bufSize is each read's size: large, so that a fast stream costs few
// system calls on the host's side.
const bufSize = 256 << 10

func main() {
	network, addr, err := parseArgs(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(2)
	}
	if network == "unix" {
		os.Remove(addr)
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	fmt.Printf("sink: listening on %s %s\n", network, addr)
	err = serve(l, func(n int64) { fmt.Printf("sink: a connection ended after %d bytes\n", n) })
	fmt.Fprintln(os.Stderr, "sink:", err)
	os.Exit(1)
}

// parseArgs reads the command line (without the program's name): a UNIX
// socket's path, or "tcp" and an address with a port.
func parseArgs(args []string) (network, addr string, err error) {
	const usage = "usage: sink SOCKET | sink tcp HOST:PORT"
	switch {
	case len(args) == 1 && args[0] != "" && args[0] != "tcp":
		return "unix", args[0], nil
	case len(args) == 2 && args[0] == "tcp":
		if _, port, err := net.SplitHostPort(args[1]); err != nil || port == "" {
			return "", "", fmt.Errorf("tcp address %q: want HOST:PORT, such as 10.0.2.2:5001 or :5001 (%s)", args[1], usage)
		}
		return "tcp", args[1], nil
	}
	return "", "", errors.New(usage)
}

// serve accepts connections on l until it fails (its error is the
// accept's, never nil), reads each to its end in
// its own goroutine, closes it and calls done with the bytes read.
func serve(l net.Listener, done func(int64)) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			n, _ := drain(c)
			c.Close()
			done(n)
		}()
	}
}

// drain reads r to its end and returns how many bytes it read.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, bufSize)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
