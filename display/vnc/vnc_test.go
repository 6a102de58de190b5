package vnc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/rfbclient"
)

// These tests run the server against the scripted client over real
// sockets. The screen is a picture the test paints (what the GPU's
// Snapshot returns is checked in virtio's TestVNCShowsTheGPU); the input
// devices record what reaches them.

// picture is a screen whose pixels the test sets.
type picture struct {
	mu  sync.Mutex
	img *image.RGBA
}

func (p *picture) Size() (int, int) { return p.img.Rect.Dx(), p.img.Rect.Dy() }
func (p *picture) Snapshot() (*image.RGBA, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := *p.img
	c.Pix = append([]byte(nil), p.img.Pix...)
	return &c, nil
}

// paint fills r with a pattern that differs per pixel and per seed.
func (p *picture) paint(r image.Rectangle, seed int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			o := p.img.PixOffset(x, y)
			p.img.Pix[o], p.img.Pix[o+1], p.img.Pix[o+2], p.img.Pix[o+3] = byte(x*7+seed), byte(y*13+seed*3), byte(x*y+seed*5), 0xff
		}
	}
}

func newPicture(w, h int) *picture {
	p := &picture{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	p.paint(p.img.Rect, 0)
	return p
}

// events records what the input devices were given.
type events struct {
	mu   sync.Mutex
	list []string
	ch   chan struct{}
}

func newEvents() *events { return &events{ch: make(chan struct{}, 100)} }

func (e *events) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
	e.ch <- struct{}{}
}
func (e *events) Key(code uint16, down bool) error {
	e.add(keyString(code, down))
	return nil
}
func (e *events) Touch(x, y int, down bool) error {
	e.add(touchString(x, y, down))
	return nil
}

// wait returns the first n events, failing after a few seconds.
func (e *events) wait(t *testing.T, n int) []string {
	t.Helper()
	for range n {
		select {
		case <-e.ch:
		case <-time.After(5 * time.Second):
			e.mu.Lock()
			defer e.mu.Unlock()
			t.Fatalf("events %q, want %d", e.list, n)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

func keyString(code uint16, down bool) string {
	return fmt.Sprintf("key %d %s", code, map[bool]string{true: "down", false: "up"}[down])
}
func touchString(x, y int, down bool) string {
	return fmt.Sprintf("touch %d,%d %s", x, y, map[bool]string{true: "down", false: "up"}[down])
}

// serve starts a server for p on a UNIX socket and returns its address.
func serve(t *testing.T, p *picture, ev *events) (*Server, string) {
	t.Helper()
	s, err := New(Config{Screen: p, Keyboard: ev, Touch: ev, Name: "guest"})
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/vnc.sock"
	l, err := Listen(Addr{"unix", path})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { l.Close(); s.Close() })
	return s, path
}

func dial(t *testing.T, path string) *rfbclient.Client {
	t.Helper()
	c, err := rfbclient.Dial("unix", path)
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// samePixels compares a client's frame with the screen in r.
func samePixels(t *testing.T, got *image.RGBA, want *picture, r image.Rectangle) {
	t.Helper()
	w, _ := want.Snapshot()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			g, e := got.RGBAAt(x, y), w.RGBAAt(x, y)
			if g != e {
				t.Fatalf("pixel (%d, %d) = %v, want %v", x, y, g, e)
			}
		}
	}
}

func TestHandshakeOffersTheScreen(t *testing.T) {
	p := newPicture(320, 200)
	_, path := serve(t, p, newEvents())
	c := dial(t, path)
	if c.W != 320 || c.H != 200 || c.Name != "guest" {
		t.Errorf("ServerInit = %dx%d %q, want 320x200 \"guest\"", c.W, c.H, c.Name)
	}
	want := rfbclient.Format{BPP: 32, Depth: 24, TrueColour: true, RedMax: 255, GreenMax: 255, BlueMax: 255, RedShift: 16, GreenShift: 8}
	if c.Server != want {
		t.Errorf("ServerInit format = %+v, want %+v", c.Server, want)
	}
}

// TestHandshakeOlderVersions: 3.3 clients are told the type; 3.7 choose
// it and get no result; a version not 3.x is refused.
func TestHandshakeOlderVersions(t *testing.T) {
	tests := []struct {
		name    string
		version string
		choose  bool   // the client sends a security type
		want    []byte // what follows the version, up to ServerInit
		wantErr bool
	}{
		{"3.3", "RFB 003.003\n", false, []byte{0, 0, 0, 1}, false},
		{"3.7", "RFB 003.007\n", true, []byte{1, 1}, false},
		{"3.5 treated as 3.3", "RFB 003.005\n", false, []byte{0, 0, 0, 1}, false},
		{"4.0", "RFB 004.000\n", false, nil, true},
		{"not RFB", "HTTP/1.1 200", false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path := serve(t, newPicture(320, 200), newEvents())
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var v [12]byte
			io.ReadFull(c, v[:])
			io.WriteString(c, tt.version)
			got := make([]byte, len(tt.want))
			_, err = io.ReadFull(c, got)
			if tt.wantErr {
				var b [1]byte
				if n, _ := c.Read(b[:]); n != 0 {
					t.Errorf("server sent %x after version %q, want the connection closed", b, tt.version)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("after version %q: %x, %v; want %x", tt.version, got, err, tt.want)
			}
			if tt.choose {
				c.Write([]byte{1})
			}
			c.Write([]byte{1})
			var init [24]byte
			if _, err := io.ReadFull(c, init[:]); err != nil || binary.BigEndian.Uint16(init[:]) != 320 {
				t.Errorf("ServerInit = %x, %v; want width 320", init, err)
			}
		})
	}
}

// TestUpdatesPixelExact: a full request in each encoding and format
// brings the whole screen; after the screen changes in a rectangle, an
// incremental request brings only that rectangle.
func TestUpdatesPixelExact(t *testing.T) {
	bgr233 := rfbclient.Format{BPP: 8, Depth: 8, TrueColour: true, RedMax: 7, GreenMax: 7, BlueMax: 3, RedShift: 0, GreenShift: 3, BlueShift: 6}
	rgb565be := rfbclient.Format{BPP: 16, Depth: 16, BigEndian: true, TrueColour: true, RedMax: 31, GreenMax: 63, BlueMax: 31, RedShift: 11, GreenShift: 5}
	xbgrBE := rfbclient.Format{BPP: 32, Depth: 24, BigEndian: true, TrueColour: true, RedMax: 255, GreenMax: 255, BlueMax: 255, RedShift: 0, GreenShift: 8, BlueShift: 16}
	tests := []struct {
		name   string
		enc    []int32
		format *rfbclient.Format
		exact  bool // 8 bits a channel: compare pixels exactly
	}{
		{"raw", []int32{rfbclient.Raw}, nil, true},
		{"zlib", []int32{rfbclient.Zlib, rfbclient.Raw}, nil, true},
		{"zlib among unknown encodings", []int32{16, -223, rfbclient.Zlib}, nil, true},
		{"raw, 32-bit big-endian BGR", []int32{rfbclient.Raw}, &xbgrBE, true},
		{"zlib, 16-bit big-endian", []int32{rfbclient.Zlib}, &rgb565be, false},
		{"raw, 8-bit", nil, &bgr233, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPicture(320, 200)
			s, path := serve(t, p, newEvents())
			c := dial(t, path)
			if tt.format != nil {
				c.SetFormat(*tt.format)
			}
			if tt.enc != nil {
				c.SetEncodings(tt.enc...)
			}
			all := image.Rect(0, 0, 320, 200)
			for round, change := range []image.Rectangle{{}, image.Rect(10, 20, 50, 41), image.Rect(300, 190, 320, 200)} {
				if round == 0 {
					c.Request(false, all)
				} else {
					p.paint(change, round)
					s.Damage(change)
					c.Request(true, all)
				}
				rects, err := c.ReadUpdate(5 * time.Second)
				if err != nil {
					t.Fatalf("round %d: ReadUpdate() = %v", round, err)
				}
				want := all
				if round > 0 {
					want = change
				}
				wantEnc := int32(rfbclient.Raw)
				if len(tt.enc) > 0 && tt.enc[len(tt.enc)-1] == rfbclient.Zlib || len(tt.enc) > 0 && tt.enc[0] == rfbclient.Zlib {
					wantEnc = rfbclient.Zlib
				}
				if len(rects) != 1 || rects[0].Rectangle != want || rects[0].Encoding != wantEnc {
					t.Fatalf("round %d: rectangles %v, want one %v in encoding %d", round, rects, want, wantEnc)
				}
				if tt.exact {
					samePixels(t, c.Frame, p, all)
					continue
				}
				// Fewer bits: each channel within the format's step.
				snap, _ := p.Snapshot()
				f := *tt.format
				for y := 0; y < 200; y++ {
					for x := 0; x < 320; x++ {
						g, w := c.Frame.RGBAAt(x, y), snap.RGBAAt(x, y)
						for i, pair := range [][3]int{{int(g.R), int(w.R), int(f.RedMax)}, {int(g.G), int(w.G), int(f.GreenMax)}, {int(g.B), int(w.B), int(f.BlueMax)}} {
							if d := pair[0] - pair[1]; d*d*pair[2]*pair[2] > 255*255 {
								t.Fatalf("pixel (%d, %d) channel %d = %d, want %d within 255/%d", x, y, i, pair[0], pair[1], pair[2])
							}
						}
					}
				}
			}
		})
	}
}

// TestNoUpdateWithoutDamage: an incremental request waits for damage; a
// change outside the requested rectangle does not answer it.
func TestNoUpdateWithoutDamage(t *testing.T) {
	p := newPicture(320, 200)
	s, path := serve(t, p, newEvents())
	c := dial(t, path)
	c.Request(false, image.Rect(0, 0, 320, 200))
	if _, err := c.ReadUpdate(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.Request(true, image.Rect(0, 0, 100, 100))
	s.Damage(image.Rect(200, 150, 210, 160))
	if rects, err := c.ReadUpdate(300 * time.Millisecond); !errors.Is(err, errTimeout(err)) || err == nil {
		t.Fatalf("update %v, %v without damage in the request, want a timeout", rects, err)
	}
	p.paint(image.Rect(5, 5, 6, 6), 9)
	s.Damage(image.Rect(5, 5, 6, 6))
	rects, err := c.ReadUpdate(5 * time.Second)
	if err != nil || len(rects) != 1 || rects[0].Rectangle != image.Rect(5, 5, 6, 6) {
		t.Fatalf("update %v, %v; want (5,5)-(6,6)", rects, err)
	}
	samePixels(t, c.Frame, p, image.Rect(0, 0, 100, 100))
}

// errTimeout returns err when it is a timeout, for errors.Is.
func errTimeout(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return errors.New("not a timeout")
}

// TestInputReachesTheDevices: keysyms become Linux key codes; button 1
// touches, moves while touching are sent, moves without are not.
func TestInputReachesTheDevices(t *testing.T) {
	ev := newEvents()
	_, path := serve(t, newPicture(320, 200), ev)
	c := dial(t, path)
	c.Key('a', true)
	c.Key('a', false)
	c.Key('A', true)
	c.Key(0xff0d, true) // Return
	c.Key(0x20ac, true) // EuroSign: no key, dropped
	c.Key(0xffc9, true) // F12
	c.Pointer(0, 10, 10)
	c.Pointer(1, 11, 12)
	c.Pointer(1, 11, 12)
	c.Pointer(1, 1000, 1000)
	c.Pointer(0, 319, 199)
	want := []string{"key 30 down", "key 30 up", "key 30 down", "key 28 down", "key 88 down",
		"touch 11,12 down", "touch 319,199 down", "touch 319,199 up"}
	got := ev.wait(t, len(want))
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}

// TestBadClientsAreDropped: each client breaks one rule; the server
// closes its connection without reading or allocating what it claims,
// and still serves the next client.
func TestBadClientsAreDropped(t *testing.T) {
	u16 := func(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	format := func(bpp, tc byte, max uint16, shift byte) []byte {
		f := []byte{0, 0, 0, 0, bpp, 24, 0, tc}
		for range 3 {
			f = append(f, u16(int(max))...)
		}
		return append(f, shift, 8, 0, 0, 0, 0)
	}
	tests := []struct {
		name string
		msg  []byte
	}{
		{"too many encodings", append([]byte{2, 0}, u16(maxEncodings+1)...)},
		{"cut text too long", append([]byte{6, 0, 0, 0}, u32(maxCutText+1)...)},
		{"cut text of 4 GiB", append([]byte{6, 0, 0, 0}, u32(0xffffffff)...)},
		{"unknown message", []byte{200}},
		{"colour map", format(32, 0, 255, 16)},
		{"24 bits per pixel", format(24, 1, 255, 16)},
		{"channel past the pixel", format(16, 1, 255, 12)},
		{"max not 2^n-1", format(32, 1, 200, 16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, path := serve(t, newPicture(320, 200), newEvents())
			c := dial(t, path)
			c.Conn().Write(tt.msg)
			c.Conn().SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Conn().Read(make([]byte, 1)); n != 0 || errTimeout(err) == err {
				t.Errorf("after %x: read %d bytes, %v; want the connection closed", tt.msg, n, err)
			}
			next := dial(t, path)
			if err := next.Request(false, image.Rect(0, 0, 1, 1)); err != nil {
				t.Fatal(err)
			}
			if _, err := next.ReadUpdate(5 * time.Second); err != nil {
				t.Errorf("the next client: ReadUpdate() = %v", err)
			}
		})
	}
}

// TestStalledClientDoesNotBlockDamage: a client that asks for updates
// and never reads them costs Damage nothing; the server drops it.
func TestStalledClientDoesNotBlockDamage(t *testing.T) {
	p := newPicture(1280, 720)
	s, path := serve(t, p, newEvents())
	c := dial(t, path)
	all := image.Rect(0, 0, 1280, 720)
	start := time.Now()
	for i := range 200 {
		c.Request(false, all)
		s.Damage(image.Rect(0, 0, 1280, 720).Add(image.Pt(i%2, 0)))
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("200 Damage calls with a stalled client took %v", d)
	}
}

func TestTooManyClientsRefused(t *testing.T) {
	_, path := serve(t, newPicture(320, 200), newEvents())
	for range maxClients {
		dial(t, path)
	}
	time.Sleep(100 * time.Millisecond) // the last one is registered
	if c, err := rfbclient.Dial("unix", path); err == nil || !strings.Contains(err.Error(), "clients already") {
		if c != nil {
			c.Close()
		}
		t.Errorf("client %d: Dial() = %v, want refused: clients already", maxClients+1, err)
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in     string
		remote bool
		want   string
		err    string
	}{
		{"unix:/run/tandem/a.vnc", false, "unix:/run/tandem/a.vnc", ""},
		{"tcp:127.0.0.1:5901", false, "tcp:127.0.0.1:5901", ""},
		{"tcp:[::1]:5901", false, "tcp:[::1]:5901", ""},
		{"tcp:localhost:5901", false, "tcp:localhost:5901", ""},
		{"tcp:0.0.0.0:5901", false, "", "listens beyond this host"},
		{"tcp::5901", false, "", "listens beyond this host"},
		{"tcp:192.168.1.2:5901", false, "", "vnc-allow-remote: true"},
		{"tcp:192.168.1.2:5901", true, "tcp:192.168.1.2:5901", ""},
		{"tcp:example.com:5901", true, "", "give an IP address"},
		{"tcp:127.0.0.1:0", false, "", "1 to 65535"},
		{"tcp:127.0.0.1", false, "", "want tcp:HOST:PORT"},
		{"unix:a.vnc", false, "", "must be absolute"},
		{"5901", false, "", "want unix:PATH or tcp:HOST:PORT"},
		{"udp:127.0.0.1:5901", false, "", `network "udp"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseAddr(tt.in, tt.remote)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("ParseAddr(%q) = %v, %v; want an error with %q", tt.in, a, err, tt.err)
				}
				return
			}
			if err != nil || a.String() != tt.want {
				t.Errorf("ParseAddr(%q) = %v, %v; want %s", tt.in, a, err, tt.want)
			}
		})
	}
}

func TestKeyCode(t *testing.T) {
	tests := []struct {
		keysym uint32
		want   uint16
	}{
		{'a', 30}, {'Z', 44}, {'z', 44}, {'0', 11}, {')', 11}, {' ', 57}, {'~', 41},
		{0xff1b, 1}, {0xffbe, 59}, {0xffc7, 68}, {0xffc8, 87}, {0xffc9, 88},
		{0xffe1, 42}, {0xff52, 103}, {0xffff, 111}, {0x20ac, 0}, {0x7f, 0},
	}
	for _, tt := range tests {
		if got := KeyCode(tt.keysym); got != tt.want {
			t.Errorf("KeyCode(%#x) = %d, want %d", tt.keysym, got, tt.want)
		}
	}
}
