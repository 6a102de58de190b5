// Command sink is a host service for benchmarks: it listens on a UNIX
// socket or a TCP address and reads every connection to its end,
// discarding what it reads, then closes it. The mixed-criticality bench
// gives it to the control guest running alone, so that the guest
// publishes its vehicle state as it does beside the infotainment guest,
// and the two runs differ only in the other guest. The net bench's guest
// (guests/iobench, tandem.io=net) streams to it over TCP through a TAP
// and takes its close as the end of the transfer.
//
// As a source (sink source HOST:PORT) it serves the other direction: each
// connection sends a line with a byte count, and the source writes that
// many bytes back and closes.
//
//	sink SOCKET
//	sink tcp HOST:PORT
//	sink source HOST:PORT
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
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
	handle := drain
	if network == "source" {
		network, handle = "tcp", source
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	fmt.Printf("sink: listening on %s %s\n", network, addr)
	err = serve(l, handle, func(n int64) { fmt.Printf("sink: a connection ended after %d bytes\n", n) })
	fmt.Fprintln(os.Stderr, "sink:", err)
	os.Exit(1)
}

// parseArgs reads the command line (without the program's name): a UNIX
// socket's path, or "tcp" or "source" and an address with a port.
func parseArgs(args []string) (network, addr string, err error) {
	const usage = "usage: sink SOCKET | sink tcp HOST:PORT | sink source HOST:PORT"
	switch {
	case len(args) == 1 && args[0] != "" && args[0] != "tcp" && args[0] != "source":
		return "unix", args[0], nil
	case len(args) == 2 && (args[0] == "tcp" || args[0] == "source"):
		if _, port, err := net.SplitHostPort(args[1]); err != nil || port == "" {
			return "", "", fmt.Errorf("%s address %q: want HOST:PORT, such as 10.0.2.2:5001 or :5001 (%s)", args[0], args[1], usage)
		}
		return args[0], args[1], nil
	}
	return "", "", errors.New(usage)
}

// serve accepts connections on l until it fails (its error is the
// accept's, never nil), hands each to handle in its own goroutine, closes
// it and calls done with the bytes handle read or wrote.
func serve(l net.Listener, handle func(io.ReadWriter) (int64, error), done func(int64)) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			n, _ := handle(c)
			c.Close()
			done(n)
		}()
	}
}

// maxSource bounds what one request to the source may ask for.
const maxSource = 1 << 40

// source reads a request line holding a byte count from rw, writes that
// many bytes to it and returns how many it wrote.
func source(rw io.ReadWriter) (int64, error) {
	line, err := bufio.NewReader(io.LimitReader(rw, 32)).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("reading the request line: %w", err)
	}
	want, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil || want < 0 || want > maxSource {
		return 0, fmt.Errorf("request %q: want a byte count from 0 to %d", strings.TrimSpace(line), int64(maxSource))
	}
	buf := make([]byte, bufSize)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	var n int64
	for n < want {
		k, err := rw.Write(buf[:min(int64(len(buf)), want-n)])
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// drain reads r to its end and returns how many bytes it read.
func drain(r io.ReadWriter) (int64, error) {
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
