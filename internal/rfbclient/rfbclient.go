// Package rfbclient is a scripted RFB 3.8 client (RFC 6143) for tests of
// the VNC server: it runs the handshake, asks for updates and decodes
// Raw and Zlib rectangles into a picture, and sends key and pointer
// events. It checks what the server sends strictly, so that a test fails
// on any byte out of place.
package rfbclient

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"image"
	"io"
	"net"
	"time"
)

// Encodings.
const (
	Raw  = 0
	Zlib = 6
)

// Format mirrors PIXEL_FORMAT (RFC 6143 §7.4).
type Format struct {
	BPP, Depth                uint8
	BigEndian, TrueColour     bool
	RedMax, GreenMax, BlueMax uint16
	RedShift, GreenShift      uint8
	BlueShift                 uint8
}

func (f Format) bytes() []byte {
	b := []byte{f.BPP, f.Depth, b2u(f.BigEndian), b2u(f.TrueColour)}
	b = binary.BigEndian.AppendUint16(b, f.RedMax)
	b = binary.BigEndian.AppendUint16(b, f.GreenMax)
	b = binary.BigEndian.AppendUint16(b, f.BlueMax)
	return append(b, f.RedShift, f.GreenShift, f.BlueShift, 0, 0, 0)
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// Client is one connection to a server.
type Client struct {
	c      net.Conn
	W, H   int
	Name   string
	Server Format // the format ServerInit offered
	format Format // the format asked for
	// Frame is the client's copy of the framebuffer, in the server's
	// channels scaled to 8 bits (exact for 8-bit channels).
	Frame *image.RGBA
	zr    io.ReadCloser
	zsrc  *bytes.Buffer
}

// Dial connects and runs the 3.8 handshake with security type None.
func Dial(network, addr string) (*Client, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	cl, err := Handshake(c)
	if err != nil {
		c.Close()
	}
	return cl, err
}

// Handshake runs the 3.8 handshake on c.
func Handshake(c net.Conn) (*Client, error) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	var v [12]byte
	if _, err := io.ReadFull(c, v[:]); err != nil {
		return nil, fmt.Errorf("reading the server's version: %w", err)
	}
	if string(v[:]) != "RFB 003.008\n" {
		return nil, fmt.Errorf("server version %q, want RFB 003.008", v[:])
	}
	if _, err := c.Write(v[:]); err != nil {
		return nil, err
	}
	var n [1]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return nil, err
	}
	if n[0] == 0 {
		return nil, fmt.Errorf("server refused: %s", readReason(c))
	}
	types := make([]byte, n[0])
	if _, err := io.ReadFull(c, types); err != nil {
		return nil, err
	}
	if !bytes.Contains(types, []byte{1}) {
		return nil, fmt.Errorf("security types %v lack None (1)", types)
	}
	if _, err := c.Write([]byte{1}); err != nil {
		return nil, err
	}
	var result uint32
	if err := binary.Read(c, binary.BigEndian, &result); err != nil {
		return nil, err
	}
	if result != 0 {
		return nil, fmt.Errorf("security result %d: %s", result, readReason(c))
	}
	if _, err := c.Write([]byte{1}); err != nil { // ClientInit: shared
		return nil, err
	}
	var init [24]byte
	if _, err := io.ReadFull(c, init[:]); err != nil {
		return nil, fmt.Errorf("reading ServerInit: %w", err)
	}
	cl := &Client{c: c, W: int(binary.BigEndian.Uint16(init[0:])), H: int(binary.BigEndian.Uint16(init[2:]))}
	f := init[4:20]
	cl.Server = Format{f[0], f[1], f[2] != 0, f[3] != 0, binary.BigEndian.Uint16(f[4:]), binary.BigEndian.Uint16(f[6:]), binary.BigEndian.Uint16(f[8:]), f[10], f[11], f[12]}
	cl.format = cl.Server
	name := make([]byte, min(binary.BigEndian.Uint32(init[20:]), 4096))
	if _, err := io.ReadFull(c, name); err != nil {
		return nil, err
	}
	cl.Name = string(name)
	cl.Frame = image.NewRGBA(image.Rect(0, 0, cl.W, cl.H))
	return cl, nil
}

func readReason(c net.Conn) string {
	var n uint32
	if binary.Read(c, binary.BigEndian, &n) != nil || n > 4096 {
		return "(no reason)"
	}
	b := make([]byte, n)
	io.ReadFull(c, b)
	return string(b)
}

// Conn is the client's connection, for tests that send their own bytes.
func (cl *Client) Conn() net.Conn { return cl.c }

// Close closes the connection.
func (cl *Client) Close() error { return cl.c.Close() }

// SetFormat sends SetPixelFormat.
func (cl *Client) SetFormat(f Format) error {
	cl.format = f
	_, err := cl.c.Write(append([]byte{0, 0, 0, 0}, f.bytes()...))
	return err
}

// SetEncodings sends SetEncodings.
func (cl *Client) SetEncodings(encs ...int32) error {
	b := []byte{2, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(len(encs)))
	for _, e := range encs {
		b = binary.BigEndian.AppendUint32(b, uint32(e))
	}
	_, err := cl.c.Write(b)
	return err
}

// Request sends FramebufferUpdateRequest.
func (cl *Client) Request(incremental bool, r image.Rectangle) error {
	b := []byte{3, b2u(incremental)}
	for _, v := range []int{r.Min.X, r.Min.Y, r.Dx(), r.Dy()} {
		b = binary.BigEndian.AppendUint16(b, uint16(v))
	}
	_, err := cl.c.Write(b)
	return err
}

// Key sends KeyEvent.
func (cl *Client) Key(keysym uint32, down bool) error {
	b := []byte{4, b2u(down), 0, 0}
	_, err := cl.c.Write(binary.BigEndian.AppendUint32(b, keysym))
	return err
}

// Pointer sends PointerEvent.
func (cl *Client) Pointer(buttons uint8, x, y int) error {
	b := []byte{5, buttons}
	b = binary.BigEndian.AppendUint16(b, uint16(x))
	_, err := cl.c.Write(binary.BigEndian.AppendUint16(b, uint16(y)))
	return err
}

// Rect is one rectangle of an update.
type Rect struct {
	image.Rectangle
	Encoding int32
}

// ReadUpdate reads one FramebufferUpdate within timeout, applies it to
// Frame and returns its rectangles.
func (cl *Client) ReadUpdate(timeout time.Duration) ([]Rect, error) {
	cl.c.SetReadDeadline(time.Now().Add(timeout))
	defer cl.c.SetReadDeadline(time.Time{})
	var hdr [4]byte
	if _, err := io.ReadFull(cl.c, hdr[:]); err != nil {
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, fmt.Errorf("message type %d, want FramebufferUpdate (0)", hdr[0])
	}
	var rects []Rect
	for range binary.BigEndian.Uint16(hdr[2:]) {
		var rh [12]byte
		if _, err := io.ReadFull(cl.c, rh[:]); err != nil {
			return nil, err
		}
		x, y := int(binary.BigEndian.Uint16(rh[0:])), int(binary.BigEndian.Uint16(rh[2:]))
		r := Rect{image.Rect(x, y, x+int(binary.BigEndian.Uint16(rh[4:])), y+int(binary.BigEndian.Uint16(rh[6:]))), int32(binary.BigEndian.Uint32(rh[8:]))}
		if !r.In(image.Rect(0, 0, cl.W, cl.H)) {
			return nil, fmt.Errorf("rectangle %v outside the %dx%d framebuffer", r.Rectangle, cl.W, cl.H)
		}
		pix := make([]byte, r.Dx()*r.Dy()*int(cl.format.BPP/8))
		switch r.Encoding {
		case Raw:
			if _, err := io.ReadFull(cl.c, pix); err != nil {
				return nil, err
			}
		case Zlib:
			var n uint32
			if err := binary.Read(cl.c, binary.BigEndian, &n); err != nil {
				return nil, err
			}
			if n > 64<<20 {
				return nil, fmt.Errorf("zlib data of %d bytes", n)
			}
			z := make([]byte, n)
			if _, err := io.ReadFull(cl.c, z); err != nil {
				return nil, err
			}
			if err := cl.inflate(z, pix); err != nil {
				return nil, fmt.Errorf("rectangle %v: %w", r.Rectangle, err)
			}
		default:
			return nil, fmt.Errorf("encoding %d, want Raw or Zlib", r.Encoding)
		}
		cl.apply(r.Rectangle, pix)
		rects = append(rects, r)
	}
	return rects, nil
}

// inflate reads len(pix) bytes of the connection's one zlib stream,
// which z continues, and checks that z holds exactly those.
func (cl *Client) inflate(z, pix []byte) error {
	if cl.zsrc == nil {
		cl.zsrc = &bytes.Buffer{}
	}
	cl.zsrc.Write(z)
	if cl.zr == nil {
		r, err := zlib.NewReader(cl.zsrc)
		if err != nil {
			return err
		}
		cl.zr = r
	}
	if _, err := io.ReadFull(cl.zr, pix); err != nil {
		return err
	}
	if cl.zsrc.Len() != 0 {
		return fmt.Errorf("%d bytes of zlib data left after the rectangle", cl.zsrc.Len())
	}
	return nil
}

// apply writes pixels in the client's format into Frame.
func (cl *Client) apply(r image.Rectangle, pix []byte) {
	f := cl.format
	bpp := int(f.BPP / 8)
	ch := func(v uint32, max uint16, shift uint8) uint8 {
		return uint8((v>>shift&uint32(max))*255/uint32(max) + 0)
	}
	i := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			var v uint32
			switch {
			case bpp == 1:
				v = uint32(pix[i])
			case bpp == 2 && f.BigEndian:
				v = uint32(binary.BigEndian.Uint16(pix[i:]))
			case bpp == 2:
				v = uint32(binary.LittleEndian.Uint16(pix[i:]))
			case f.BigEndian:
				v = binary.BigEndian.Uint32(pix[i:])
			default:
				v = binary.LittleEndian.Uint32(pix[i:])
			}
			i += bpp
			o := cl.Frame.PixOffset(x, y)
			cl.Frame.Pix[o+0] = ch(v, f.RedMax, f.RedShift)
			cl.Frame.Pix[o+1] = ch(v, f.GreenMax, f.GreenShift)
			cl.Frame.Pix[o+2] = ch(v, f.BlueMax, f.BlueShift)
			cl.Frame.Pix[o+3] = 0xff
		}
	}
}
