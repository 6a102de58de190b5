package virtio

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// This file gives the hostile-guest tests (the fuzz targets and the
// adversarial virtqueue suite) every virtio device with a backend that
// needs no privileges, and what each promises to hold at most.

// testDevice is one device type the hostile tests run on.
type testDevice struct {
	name string
	nq   int // queues the driver sets up
	// make builds the device; host, when not nil, is an action from the
	// host's side (input, a received frame) that the fuzzers trigger.
	make func(t testing.TB) (dev Device, host func(data []byte))
	// bounds checks what the device holds for the guest against the
	// bounds its package documents; nil error when within them.
	bounds func(dev Device) error
}

var testDevices = []testDevice{
	{name: "blk", nq: 1, make: func(t testing.TB) (Device, func([]byte)) { return newTestBlock(t, 16, false), nil }},
	{name: "rng", nq: 1, make: func(t testing.TB) (Device, func([]byte)) { return NewRNG(), nil }},
	{name: "console", nq: 2, make: func(t testing.TB) (Device, func([]byte)) {
		in := make(chanReader, 4)
		return NewConsole(in, io.Discard), in.send
	}, bounds: func(dev Device) error {
		c := dev.(*Console)
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.pending) > maxConsoleInput {
			return fmt.Errorf("console holds %d bytes of input, more than %d", len(c.pending), maxConsoleInput)
		}
		return nil
	}},
	{name: "net", nq: 2, make: newFakeNet},
	{name: "vsock", nq: 3, make: func(t testing.TB) (Device, func([]byte)) {
		host := newPipeHost()
		v := NewVsock(testGuestCID, host)
		v.SetWarnings(nil)
		t.Cleanup(func() {
			v.Close()
			for len(host.conns) > 0 {
				(<-host.conns).Close()
			}
		})
		// The host closes its end of a connection: the device must
		// tell the guest (SHUTDOWN), not hold on.
		return v, func([]byte) {
			select {
			case c := <-host.conns:
				c.Close()
			default:
			}
		}
	}, bounds: func(dev Device) error {
		v := dev.(*Vsock)
		v.mu.Lock()
		defer v.mu.Unlock()
		if len(v.conns) > maxVsockConns || len(v.order) != len(v.conns) || len(v.replies) > maxVsockReplies+maxVsockConns {
			return fmt.Errorf("vsock holds %d connections (%d in order), %d replies", len(v.conns), len(v.order), len(v.replies))
		}
		for _, c := range v.conns {
			if len(c.in) > vsockBufAlloc || len(c.out) > vsockReadChunk {
				return fmt.Errorf("vsock connection %v holds %d bytes from the guest, %d for it", c.key, len(c.in), len(c.out))
			}
		}
		return nil
	}},
	{name: "gpu", nq: 2, make: func(t testing.TB) (Device, func([]byte)) {
		// A small display and memory limit keep each fuzz run cheap.
		g, err := NewGPU(GPUConfig{Width: MinDisplayWidth, Height: MinDisplayHeight, MaxMemory: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		g.SetWarnings(nil)
		// The host takes a picture of what the guest shows.
		return g, func([]byte) { g.Snapshot() }
	}, bounds: func(dev Device) error { return dev.(*GPU).checkAccounting() }},
	{name: "keyboard", nq: 2, make: func(t testing.TB) (Device, func([]byte)) {
		in := NewKeyboard()
		return in, func(b []byte) {
			b = append(b, 0, 0, 0)
			in.Key(binary.LittleEndian.Uint16(b), b[2]&1 != 0)
		}
	}, bounds: inputBounds},
	{name: "touch", nq: 2, make: func(t testing.TB) (Device, func([]byte)) {
		in, err := NewTouchscreen(MinDisplayWidth, MinDisplayHeight)
		if err != nil {
			t.Fatal(err)
		}
		return in, func(b []byte) {
			b = append(b, 0, 0, 0, 0, 0)
			in.Touch(int(binary.LittleEndian.Uint16(b)), int(binary.LittleEndian.Uint16(b[2:])), b[4]&1 != 0)
		}
	}, bounds: inputBounds},
}

func inputBounds(dev Device) error {
	in := dev.(*Input)
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.pending) > maxInputPending*inputEventSize || len(in.pending)%inputEventSize != 0 {
		return fmt.Errorf("input holds %d bytes of events, more than %d events or not whole ones", len(in.pending), maxInputPending)
	}
	return nil
}

// chanReader is console input that the test feeds a chunk at a time.
type chanReader chan []byte

func (c chanReader) Read(p []byte) (int, error) {
	b, ok := <-c
	if !ok {
		return 0, io.EOF
	}
	return copy(p, b), nil
}

func (c chanReader) Close() error { close(c); return nil }

// send queues input unless the reader is behind: a host typing faster
// than the device reads loses keys rather than blocking the test.
func (c chanReader) send(b []byte) {
	select {
	case c <- append([]byte(nil), b...):
	default:
	}
}

// newFakeNet is a virtio-net device whose "TAP" is one end of a
// SOCK_SEQPACKET socket pair, which keeps frame boundaries as a TAP does.
// What the guest transmits is read and dropped; host(frame) sends a
// frame to the guest (a virtio-net header and the frame, as a TAP with
// IFF_VNET_HDR delivers).
func newFakeNet(t testing.TB) (Device, func([]byte)) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	dev := os.NewFile(uintptr(fds[0]), "fake-tap")
	host := fds[1]
	unix.SetNonblock(host, false)
	n := newNet(dev, "fake0", net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1})
	n.warn.SetOutput(nil)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		b := make([]byte, vnetHdrLen+maxFrame)
		for {
			if n, err := unix.Read(host, b); err != nil || n == 0 {
				return // the device's end is closed
			}
		}
	}()
	t.Cleanup(func() {
		n.Close()
		unix.Shutdown(host, unix.SHUT_RDWR)
		<-drained
		unix.Close(host)
	})
	return n, func(frame []byte) {
		b := make([]byte, vnetHdrLen+len(frame))
		copy(b[vnetHdrLen:], frame)
		unix.Sendto(host, b, unix.MSG_DONTWAIT, nil)
	}
}
