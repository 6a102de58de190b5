package virtio

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

const (
	testGuestCID = 3
	testPeerCID  = 4
)

// pipeHost hands each guest connection one end of a net.Pipe and keeps
// the other for the test, or refuses when refuse is set.
type pipeHost struct {
	refuse bool
	conns  chan net.Conn
	mu     sync.Mutex
	asked  []string
}

func newPipeHost() *pipeHost { return &pipeHost{conns: make(chan net.Conn, 16)} }

func (p *pipeHost) Connect(srcPort uint32, dstCID uint64, dstPort uint32) (io.ReadWriteCloser, error) {
	p.mu.Lock()
	p.asked = append(p.asked, fmt.Sprintf("%d:%d:%d", srcPort, dstCID, dstPort))
	p.mu.Unlock()
	if p.refuse {
		return nil, errors.New("refused")
	}
	a, b := net.Pipe()
	p.conns <- b
	return a, nil
}

// vsockDriver is the guest's side: it posts receive buffers and sends
// packets the way Linux's virtio_transport does.
type vsockDriver struct {
	*driver
	rxBufs map[uint32]uint64 // head → buffer address
}

const testRxBuf = VsockHeaderSize + 4096

func newVsockDriver(t *testing.T, v *Vsock) *vsockDriver {
	d := newDriver(t, v)
	d.start(allRingFeatures, 3, 256)
	vd := &vsockDriver{driver: d, rxBufs: map[uint32]uint64{}}
	vd.postRx(32)
	return vd
}

func (d *vsockDriver) postRx(n int) {
	for range n {
		a := d.allocate(testRxBuf)
		h := d.add(d.q[vsockRxQueue], buf{a, testRxBuf, true})
		d.rxBufs[uint32(h)] = a
	}
	d.kick(d.q[vsockRxQueue])
}

func (d *vsockDriver) send(h VsockHeader, payload []byte) {
	h.Len = uint32(len(payload))
	d.sendRaw(h, payload)
}

// sendRaw sends h as it is (Len included) followed by payload.
func (d *vsockDriver) sendRaw(h VsockHeader, payload []byte) {
	b := make([]byte, VsockHeaderSize+len(payload))
	h.Encode(b)
	copy(b[VsockHeaderSize:], payload)
	a := d.allocate(uint64(len(b)))
	d.write(a, b)
	d.add(d.q[vsockTxQueue], buf{a, uint32(len(b)), false})
	d.kick(d.q[vsockTxQueue])
	d.takeUsed(d.q[vsockTxQueue])
}

type rxPacket struct {
	VsockHeader
	data []byte
}

// recv waits for n packets from the device and reposts their buffers.
func (d *vsockDriver) recv(n int) []rxPacket {
	d.t.Helper()
	var out []rxPacket
	for _, u := range d.waitUsed(d.q[vsockRxQueue], n) {
		a := d.rxBufs[u.id]
		b := d.read(a, int(u.len))
		h, err := DecodeVsockHeader(b)
		if err != nil {
			d.t.Fatalf("DecodeVsockHeader(device packet) = %v", err)
		}
		out = append(out, rxPacket{h, b[VsockHeaderSize:]})
		delete(d.rxBufs, u.id)
	}
	d.postRx(len(out))
	return out
}

// noRecv checks the device sends nothing for a moment.
func (d *vsockDriver) noRecv() {
	d.t.Helper()
	time.Sleep(50 * time.Millisecond)
	if u := d.takeUsed(d.q[vsockRxQueue]); len(u) != 0 {
		d.t.Errorf("device sent %d packets, want none", len(u))
	}
}

// guestHeader is a packet from guest port 1000 to peer port 5000.
func guestHeader(op uint16) VsockHeader {
	return VsockHeader{SrcCID: testGuestCID, DstCID: testPeerCID, SrcPort: 1000, DstPort: 5000,
		Type: VsockTypeStream, Op: op, BufAlloc: 64 << 10}
}

// connectGuest opens a connection from the guest and returns the host's
// end of it.
func connectGuest(t *testing.T, d *vsockDriver, host *pipeHost) net.Conn {
	t.Helper()
	d.send(guestHeader(VsockOpRequest), nil)
	p := d.recv(1)[0]
	if p.Op != VsockOpResponse || p.SrcCID != testPeerCID || p.DstPort != 1000 || p.SrcPort != 5000 || p.BufAlloc != vsockBufAlloc {
		t.Fatalf("answer to REQUEST = %+v, want RESPONSE from %d:5000 to port 1000 with buf_alloc %d", p.VsockHeader, testPeerCID, vsockBufAlloc)
	}
	select {
	case c := <-host.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("host saw no connection")
	}
	return nil
}

func TestVsockConfig(t *testing.T) {
	v := NewVsock(0x1122334455667788, nil)
	b := make([]byte, 8)
	v.ReadConfig(0, b)
	if want := []byte{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}; !bytes.Equal(b, want) {
		t.Errorf("ReadConfig(0) = %x, want %x", b, want)
	}
	v.ReadConfig(4, b[:4])
	if want := []byte{0x44, 0x33, 0x22, 0x11}; !bytes.Equal(b[:4], want) {
		t.Errorf("ReadConfig(4) = %x, want %x", b[:4], want)
	}
	if v.DeviceID() != 19 {
		t.Errorf("DeviceID() = %d, want 19", v.DeviceID())
	}
}

func TestVsockHeaderLayout(t *testing.T) {
	h := VsockHeader{SrcCID: 1, DstCID: 2, SrcPort: 3, DstPort: 4, Len: 5, Type: 6, Op: 7, Flags: 8, BufAlloc: 9, FwdCnt: 10}
	b := make([]byte, VsockHeaderSize)
	h.Encode(b)
	for _, f := range []struct {
		off  int
		want byte
	}{{0, 1}, {8, 2}, {16, 3}, {20, 4}, {24, 5}, {28, 6}, {30, 7}, {32, 8}, {36, 9}, {40, 10}} {
		if b[f.off] != f.want {
			t.Errorf("Encode()[%d] = %d, want %d", f.off, b[f.off], f.want)
		}
	}
	if got, err := DecodeVsockHeader(b); err != nil || got != h {
		t.Errorf("DecodeVsockHeader(Encode(h)) = %+v, %v, want %+v", got, err, h)
	}
	if _, err := DecodeVsockHeader(b[:43]); err == nil {
		t.Errorf("DecodeVsockHeader(43 bytes) = nil error, want one")
	}
}

func TestVsockStream(t *testing.T) {
	host := newPipeHost()
	d := newVsockDriver(t, NewVsock(testGuestCID, host))
	hc := connectGuest(t, d, host)
	if got, want := host.asked, []string{"1000:4:5000"}; len(got) != 1 || got[0] != want[0] {
		t.Errorf("host.Connect calls = %v, want %v", got, want)
	}

	// Guest to host.
	d.send(guestHeader(VsockOpRW), []byte("hello"))
	got := make([]byte, 5)
	if _, err := io.ReadFull(hc, got); err != nil || string(got) != "hello" {
		t.Fatalf("host read = %q, %v, want hello", got, err)
	}

	// Host to guest. A few forwarded bytes are no reason for a
	// CREDIT_UPDATE of their own: the next packet is the data.
	go hc.Write([]byte("world"))
	if p := d.recv(1)[0]; p.Op != VsockOpRW || string(p.data) != "world" || p.DstPort != 1000 {
		t.Errorf("host write = %+v %q, want RW world to port 1000", p.VsockHeader, p.data)
	}

	// A quarter of the buffer forwarded comes back as credit.
	big := make([]byte, vsockBufAlloc/4)
	d.send(guestHeader(VsockOpRW), big)
	if _, err := io.ReadFull(hc, big); err != nil {
		t.Fatalf("host read of %d bytes: %v", len(big), err)
	}
	if p := d.recv(1)[0]; p.Op != VsockOpCreditUpdate || p.FwdCnt != uint32(5+len(big)) {
		t.Errorf("after forwarding a quarter of the buffer = %+v, want CREDIT_UPDATE with fwd_cnt %d", p.VsockHeader, 5+len(big))
	}

	// CREDIT_REQUEST is answered.
	d.send(guestHeader(VsockOpCreditRequest), nil)
	if p := d.recv(1)[0]; p.Op != VsockOpCreditUpdate {
		t.Errorf("answer to CREDIT_REQUEST = %+v, want CREDIT_UPDATE", p.VsockHeader)
	}

	// The guest closes: SHUTDOWN both ways, the host sees EOF, the
	// device ends the connection with RST.
	sh := guestHeader(VsockOpShutdown)
	sh.Flags = VsockShutdownRcv | VsockShutdownSend
	d.send(sh, nil)
	if n, err := hc.Read(got); err != io.EOF {
		t.Errorf("host read after SHUTDOWN = %d, %v, want EOF", n, err)
	}
	if p := d.recv(1)[0]; p.Op != VsockOpRST {
		t.Errorf("after SHUTDOWN = %+v, want RST", p.VsockHeader)
	}
}

func TestVsockHostCloses(t *testing.T) {
	host := newPipeHost()
	d := newVsockDriver(t, NewVsock(testGuestCID, host))
	hc := connectGuest(t, d, host)
	hc.Close()
	if p := d.recv(1)[0]; p.Op != VsockOpShutdown || p.Flags != VsockShutdownRcv|VsockShutdownSend {
		t.Fatalf("after the host closed = %+v, want SHUTDOWN both ways", p.VsockHeader)
	}
	d.send(guestHeader(VsockOpRST), nil)
	d.send(guestHeader(VsockOpRW), []byte("late"))
	if p := d.recv(1)[0]; p.Op != VsockOpRST {
		t.Errorf("RW after RST = %+v, want RST", p.VsockHeader)
	}
}

func TestVsockRefused(t *testing.T) {
	tests := []struct {
		name string
		host VsockHost
	}{
		{"host refuses", &pipeHost{refuse: true}},
		{"no host", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newVsockDriver(t, NewVsock(testGuestCID, tt.host))
			d.send(guestHeader(VsockOpRequest), nil)
			if p := d.recv(1)[0]; p.Op != VsockOpRST || p.DstPort != 1000 || p.SrcCID != testPeerCID {
				t.Errorf("answer to REQUEST = %+v, want RST from %d to port 1000", p.VsockHeader, testPeerCID)
			}
		})
	}
}

// TestVsockBadPackets corrupts one field of a good packet at a time.
func TestVsockBadPackets(t *testing.T) {
	tests := []struct {
		name    string
		h       func(h *VsockHeader)
		payload string
		raw     bool   // send h.Len as set, not the payload's length
		want    uint16 // the answer's op; 0: none
		broken  bool   // the device needs a reset
	}{
		{name: "forged source CID", h: func(h *VsockHeader) { h.SrcCID = 7 }, want: 0},
		{name: "unknown type", h: func(h *VsockHeader) { h.Type = 9 }, want: VsockOpRST},
		{name: "seqpacket not offered", h: func(h *VsockHeader) { h.Type = 2 }, want: VsockOpRST},
		{name: "unknown op", h: func(h *VsockHeader) { h.Op = 42 }, want: VsockOpRST},
		{name: "op invalid", h: func(h *VsockHeader) { h.Op = 0 }, want: VsockOpRST},
		{name: "RW without connection", h: func(h *VsockHeader) { h.Op = VsockOpRW }, payload: "x", want: VsockOpRST},
		{name: "RESPONSE unasked", h: func(h *VsockHeader) { h.Op = VsockOpResponse }, want: VsockOpRST},
		{name: "SHUTDOWN without connection", h: func(h *VsockHeader) { h.Op = VsockOpShutdown }, want: VsockOpRST},
		{name: "RST without connection", h: func(h *VsockHeader) { h.Op = VsockOpRST }, want: 0},
		{name: "len past the buffer", h: func(h *VsockHeader) { h.Op = VsockOpRW; h.Len = 100 }, payload: "short", raw: true, want: VsockOpRST},
		{name: "len huge", h: func(h *VsockHeader) { h.Op = VsockOpRW; h.Len = 0xffffffff }, raw: true, want: VsockOpRST},
		{name: "loopback to itself", h: func(h *VsockHeader) { h.DstCID = testGuestCID }, want: VsockOpRST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := newPipeHost()
			d := newVsockDriver(t, NewVsock(testGuestCID, host))
			h := guestHeader(VsockOpRequest)
			tt.h(&h)
			if tt.raw {
				d.sendRaw(h, []byte(tt.payload))
			} else {
				d.send(h, []byte(tt.payload))
			}
			if tt.want == 0 {
				d.noRecv()
			} else if p := d.recv(1)[0]; p.Op != tt.want {
				t.Errorf("answer = %+v, want op %d", p.VsockHeader, tt.want)
			}
			if len(host.conns) != 0 {
				t.Errorf("host got a connection, want none")
			}
		})
	}
	t.Run("packet shorter than its header", func(t *testing.T) {
		d := newVsockDriver(t, NewVsock(testGuestCID, newPipeHost()))
		a := d.allocate(16)
		d.add(d.q[vsockTxQueue], buf{a, 16, false})
		d.kick(d.q[vsockTxQueue])
		if d.status()&StatusDeviceNeedsReset == 0 {
			t.Errorf("status = %#x, want DEVICE_NEEDS_RESET", d.status())
		}
	})
}

// TestVsockCredit: a guest that sends past its credit while the host
// does not read is reset; the VMM holds at most vsockBufAlloc for it.
func TestVsockCredit(t *testing.T) {
	host := newPipeHost()
	v := NewVsock(testGuestCID, host)
	d := newVsockDriver(t, v)
	hc := connectGuest(t, d, host)
	defer hc.Close()
	chunk := make([]byte, maxVsockPayload)
	// net.Pipe is unbuffered: the writer goroutine takes one chunk and
	// blocks on it; the rest waits in the device, up to the credit.
	var rst bool
	for i := 0; i < 2*vsockBufAlloc/maxVsockPayload && !rst; i++ {
		d.send(guestHeader(VsockOpRW), chunk)
		for _, u := range d.takeUsed(d.q[vsockRxQueue]) {
			h, _ := DecodeVsockHeader(d.read(d.rxBufs[u.id], VsockHeaderSize))
			rst = rst || h.Op == VsockOpRST
		}
		v.mu.Lock()
		held := 0
		for _, c := range v.conns {
			held += len(c.in) + cap(c.spare)
		}
		v.mu.Unlock()
		if held > 2*vsockBufAlloc {
			t.Fatalf("device holds %d bytes after %d chunks, want at most %d", held, i+1, 2*vsockBufAlloc)
		}
	}
	if !rst {
		t.Errorf("guest sent %d bytes past its credit and got no RST", vsockBufAlloc)
	}
	v.mu.Lock()
	n := len(v.conns)
	v.mu.Unlock()
	if n != 0 {
		t.Errorf("connections after the overflow = %d, want 0", n)
	}
}

// TestVsockHostToGuestCredit: the device reads from a host stream no more
// than the guest has room for.
func TestVsockHostToGuestCredit(t *testing.T) {
	host := newPipeHost()
	v := NewVsock(testGuestCID, host)
	d := newVsockDriver(t, v)
	h := guestHeader(VsockOpRequest)
	h.BufAlloc = 100
	d.send(h, nil)
	d.recv(1)
	hc := <-host.conns
	go hc.Write(bytes.Repeat([]byte("a"), 250))
	p := d.recv(1)[0]
	if len(p.data) != 100 {
		t.Errorf("first RW = %d bytes, want the credit, 100", len(p.data))
	}
	d.noRecv()
	cu := guestHeader(VsockOpCreditUpdate)
	cu.BufAlloc, cu.FwdCnt = 100, 100
	d.send(cu, nil)
	if p := d.recv(1)[0]; len(p.data) != 100 {
		t.Errorf("RW after credit = %d bytes, want 100", len(p.data))
	}
	hc.Close()
}

func TestVsockDial(t *testing.T) {
	tests := []struct {
		name   string
		answer uint16
		want   error
	}{
		{"accepted", VsockOpResponse, nil},
		{"refused", VsockOpRST, ErrVsockRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVsock(testGuestCID, nil)
			d := newVsockDriver(t, v)
			a, b := net.Pipe()
			defer b.Close()
			done := make(chan error, 1)
			go func() { done <- v.Dial(2, 40000, 5000, a) }()
			req := d.recv(1)[0]
			if req.Op != VsockOpRequest || req.SrcCID != 2 || req.SrcPort != 40000 || req.DstPort != 5000 {
				t.Fatalf("Dial sent %+v, want REQUEST from 2:40000 to port 5000", req.VsockHeader)
			}
			ans := VsockHeader{SrcCID: testGuestCID, DstCID: 2, SrcPort: 5000, DstPort: 40000, Type: VsockTypeStream, Op: tt.answer, BufAlloc: 4096}
			d.send(ans, nil)
			if err := <-done; !errors.Is(err, tt.want) {
				t.Fatalf("Dial() = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				return
			}
			go b.Write([]byte("ping"))
			if p := d.recv(1)[0]; p.Op != VsockOpRW || string(p.data) != "ping" {
				t.Errorf("after Dial = %+v %q, want RW ping", p.VsockHeader, p.data)
			}
		})
	}
}

// FuzzVsockPacket feeds the device arbitrary packets on a connected
// stream: it must not panic or hold more than its bound.
func FuzzVsockPacket(f *testing.F) {
	for _, op := range []uint16{VsockOpRequest, VsockOpRW, VsockOpShutdown, VsockOpCreditUpdate, VsockOpRST, 99} {
		b := make([]byte, VsockHeaderSize+4)
		h := guestHeader(op)
		h.Len = 4
		h.Encode(b)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 2*maxVsockPayload {
			return
		}
		host := newPipeHost()
		v := NewVsock(testGuestCID, host)
		v.SetWarnings(nil)
		d := newVsockDriver(t, v)
		for off := 0; off < len(data); off += VsockHeaderSize + 8 {
			end := min(len(data), off+VsockHeaderSize+8)
			if end-off < VsockHeaderSize {
				break
			}
			a := d.allocate(uint64(end - off))
			d.write(a, data[off:end])
			d.add(d.q[vsockTxQueue], buf{a, uint32(end - off), false})
			d.kick(d.q[vsockTxQueue])
			d.takeUsed(d.q[vsockTxQueue])
		}
		v.mu.Lock()
		if len(v.conns) > maxVsockConns || len(v.replies) > maxVsockReplies {
			t.Errorf("device holds %d connections, %d replies", len(v.conns), len(v.replies))
		}
		v.mu.Unlock()
		for len(host.conns) > 0 {
			(<-host.conns).Close()
		}
	})
}
