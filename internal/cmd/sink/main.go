// Command sink is a host service for benchmarks: it listens on a UNIX
// socket and reads every connection to its end, discarding what it reads.
// The mixed-criticality bench gives it to the control guest running alone,
// so that the guest publishes its vehicle state as it does beside the
// infotainment guest, and the two runs differ only in the other guest.
//
//	sink SOCKET
package main

import (
	"fmt"
	"io"
	"net"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sink SOCKET")
		os.Exit(2)
	}
	os.Remove(os.Args[1])
	l, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "sink:", err)
			os.Exit(1)
		}
		go func() {
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			fmt.Printf("sink: a connection ended after %d bytes\n", n)
		}()
	}
}
