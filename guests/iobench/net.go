package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/guests/internal/guestinit"
)

// The virtio-net throughput test: the guest's address on its NIC, the
// host's on the TAP behind it, and what is sent.
const (
	// guestAddr and hostAddr share a /24 (netMask); the bench gives the
	// host's TAP hostAddr and runs a sink (internal/cmd/sink tcp) on
	// sinkPort.
	guestAddr = "10.0.2.15"
	hostAddr  = "10.0.2.2"
	netMask   = "255.255.255.0"
	sinkPort  = 5001
	// sourcePort is the host's source (internal/cmd/sink source), which
	// sends the guest the bytes it asks for: the host→guest direction.
	sourcePort = 5002
	// netWarmUp bytes go over a first connection, not timed: ARP, the
	// TAP's first packets and TCP's slow start; then netBytes over a
	// second, timed.
	netWarmUp = 8 << 20
	netBytes  = 64 << 20
	// netChunk is each write's size.
	netChunk = 256 << 10
)

// netBench brings up the virtio-net NIC with guestAddr, streams netBytes
// to the host's sink over TCP, then has the host's source stream as many
// back, and returns both throughputs as key=value words, on the guest's
// clock: from the first byte written to the sink closing the connection
// after reading the last, and from the request to the source to its
// last byte read.
func netBench() (string, error) {
	nic, err := waitNIC(10 * time.Second)
	if err != nil {
		return "", err
	}
	if err := configureNIC(nic, guestAddr, netMask); err != nil {
		return "", fmt.Errorf("%s: %w", nic, err)
	}
	if _, err := sendToSink(netWarmUp); err != nil {
		return "", fmt.Errorf("warm-up: %w", err)
	}
	s, err := sendToSink(netBytes)
	if err != nil {
		return "", err
	}
	if _, err := readFromSource(netWarmUp); err != nil {
		return "", fmt.Errorf("warm-up, host to guest: %w", err)
	}
	pkts0, bytes0 := nicCounters(nic, "rx")
	r, err := readFromSource(netBytes)
	if err != nil {
		return "", err
	}
	pkts1, bytes1 := nicCounters(nic, "rx")
	frame := 0.0
	if pkts1 > pkts0 {
		frame = float64(bytes1-bytes0) / float64(pkts1-pkts0)
	}
	return fmt.Sprintf("tx-MBps=%.1f rx-MBps=%.1f rx-frame-bytes=%.0f", float64(netBytes)/s/1e6, float64(netBytes)/r/1e6, frame), nil
}

// nicCounters reads the interface's packet and byte counters for dir
// ("rx" or "tx"); the mean frame size between two readings shows whether
// segments arrive whole (offloaded) or cut to the MTU.
func nicCounters(nic, dir string) (packets, bytes uint64) {
	read := func(what string) uint64 {
		b, _ := os.ReadFile(filepath.Join("/sys/class/net", nic, "statistics", dir+"_"+what))
		v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		return v
	}
	return read("packets"), read("bytes")
}

// dialHost connects to the host's port, trying for connectFor.
func dialHost(port int) (*net.TCPConn, error) {
	addr := net.JoinHostPort(hostAddr, fmt.Sprint(port))
	deadline := time.Now().Add(connectFor)
	for {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to %s: %w (tried for %v)", addr, err, connectFor)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readFromSource asks the host's source for n bytes and reads them to
// the source's close. It returns the seconds from the request to the end.
func readFromSource(n int) (float64, error) {
	c, err := dialHost(sourcePort)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, netChunk)
	start := time.Now()
	if _, err := fmt.Fprintf(c, "%d\n", n); err != nil {
		return 0, fmt.Errorf("asking %s for %d bytes: %w", c.RemoteAddr(), n, err)
	}
	got := 0
	for {
		k, err := c.Read(buf)
		got += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("reading from %s with %d of %d bytes read: %w", c.RemoteAddr(), got, n, err)
		}
	}
	if got != n {
		return 0, fmt.Errorf("%s sent %d bytes, want %d", c.RemoteAddr(), got, n)
	}
	return time.Since(start).Seconds(), nil
}

// sendToSink connects to the host's sink, writes n bytes, closes its
// side and waits for the sink to close: the sink has then read them all.
// It returns the seconds from the first write to the sink's close.
func sendToSink(n int) (float64, error) {
	tc, err := dialHost(sinkPort)
	if err != nil {
		return 0, err
	}
	defer tc.Close()
	addr := tc.RemoteAddr()
	buf := make([]byte, netChunk)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for left := n; left > 0; {
		m := min(left, len(buf))
		if _, err := tc.Write(buf[:m]); err != nil {
			return 0, fmt.Errorf("sending to %s with %d of %d bytes left: %w", addr, left, n, err)
		}
		left -= m
	}
	if err := tc.CloseWrite(); err != nil {
		return 0, fmt.Errorf("closing the sending side to %s: %w", addr, err)
	}
	// The sink sends nothing; its close is the end of the transfer.
	if k, err := io.Copy(io.Discard, tc); err != nil || k != 0 {
		return 0, fmt.Errorf("waiting for %s to close: %d bytes back, %v", addr, k, err)
	}
	return time.Since(start).Seconds(), nil
}

// waitNIC returns the first network interface other than the loopback
// one, waiting for the driver to register it.
func waitNIC(d time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		m, _ := filepath.Glob("/sys/class/net/*")
		var nics []string
		for _, p := range m {
			if n := filepath.Base(p); n != "lo" {
				nics = append(nics, n)
			}
		}
		if len(nics) > 0 {
			sort.Strings(nics)
			return nics[0], nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no network interface after %v (is virtio_net loaded and a virtio-net device there?)", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// configureNIC gives the interface name an IPv4 address and netmask and
// brings it up, with the ioctls `ip addr add` and `ip link set up` use.
func configureNIC(name, addr, mask string) error {
	a, m := net.ParseIP(addr).To4(), net.ParseIP(mask).To4()
	if a == nil || m == nil {
		return fmt.Errorf("address %q or netmask %q is not IPv4", addr, mask)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	for _, s := range []struct {
		req  uint
		what string
		ip   []byte
	}{{unix.SIOCSIFADDR, "SIOCSIFADDR", a}, {unix.SIOCSIFNETMASK, "SIOCSIFNETMASK", m}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(s.ip); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, s.req, ifr); err != nil {
			return fmt.Errorf("%s %s: %w", s.what, net.IP(s.ip), err)
		}
	}
	return guestinit.LinkUp(name)
}
