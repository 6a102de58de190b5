package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The vsock round-trip test: the host's echo service and what is sent.
const (
	// echoPort is the host port (CID 2) of the echo service the bench
	// runs beside each VMM (internal/cmd/vsockecho).
	echoPort = 5000
	// msgSize is the size of each message and of its echo.
	msgSize = 64
	// warmUp round trips are made and not counted, then rounds are
	// timed one at a time.
	warmUp = 200
	rounds = 2000
	// connectFor bounds the tries to connect: the driver probes in the
	// kernel's own threads after its module is loaded, and the host side
	// may still be starting.
	connectFor = 20 * time.Second
)

// vsockBench connects to the host's echo service and returns the round
// trips' median, 99th percentile and mean as key=value words.
func vsockBench() (string, error) {
	fd, err := connectHost(echoPort, connectFor)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	msg, back := make([]byte, msgSize), make([]byte, msgSize)
	samples := make([]time.Duration, 0, rounds)
	for i := 0; i < warmUp+rounds; i++ {
		for j := range msg {
			msg[j] = byte(i + j)
		}
		start := time.Now()
		if err := writeAll(fd, msg); err != nil {
			return "", fmt.Errorf("round trip %d: sending: %w", i, err)
		}
		if err := readFull(fd, back); err != nil {
			return "", fmt.Errorf("round trip %d: reading the echo: %w", i, err)
		}
		d := time.Since(start)
		if !bytes.Equal(msg, back) {
			return "", fmt.Errorf("round trip %d: the echo differs from what was sent", i)
		}
		if i >= warmUp {
			samples = append(samples, d)
		}
	}
	return strings.Join(rttWords(samples), " "), nil
}

// rttWords sorts samples and returns their median, 99th percentile and
// mean in microseconds (nearest rank).
func rttWords(samples []time.Duration) []string {
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	us := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e3) }
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(samples))+0.5) - 1
		return samples[max(0, min(i, len(samples)-1))]
	}
	return []string{
		"rtt-p50-us=" + us(rank(0.50)),
		"rtt-p99-us=" + us(rank(0.99)),
		"rtt-mean-us=" + us(sum/time.Duration(len(samples))),
	}
}

// connectHost connects a stream socket to the host's port, trying again
// until d has passed.
func connectHost(port uint32, d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_HOST, Port: port})
			if err == nil {
				return fd, nil
			}
			unix.Close(fd)
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("connecting to the host's port %d: %w (tried for %v)", port, err, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func readFull(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Read(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("the host closed the connection")
		}
		b = b[n:]
	}
	return nil
}
