// Package vnc is a VNC server (RFB 3.8, RFC 6143) for a guest's display:
// security type None, the Raw and Zlib encodings, any true-colour pixel
// format a client asks for, key and pointer events to the guest's
// keyboard and touch screen. It speaks to the display through the small
// interfaces below, so it needs nothing of the device models.
//
// A client never holds up the guest: the display tells the server what
// changed (Damage), which only records it and wakes the client's own
// writer; a client that stops reading is dropped when a write has waited
// writeTimeout. Every length a client sends is bounded before anything
// is read or allocated for it.
package vnc

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"net"
	"sync"
	"time"
)

// Screen is the display the server shows: the guest's scanout.
type Screen interface {
	// Size is the framebuffer's size, fixed for the server's life.
	Size() (w, h int)
	// Snapshot returns what the display shows now; a picture smaller
	// than Size is shown at the top left, the rest black.
	Snapshot() (*image.RGBA, error)
}

// Keyboard takes Linux key codes.
type Keyboard interface {
	Key(code uint16, down bool) error
}

// Touchscreen takes positions in the framebuffer's pixels.
type Touchscreen interface {
	Touch(x, y int, down bool) error
}

// Config configures a Server.
type Config struct {
	Screen Screen
	// Keyboard and Touch receive the clients' input; nil drops it.
	Keyboard Keyboard
	Touch    Touchscreen
	// Name is the desktop name ServerInit sends.
	Name string
	// Log receives one line per client connected, dropped or refused;
	// nil: none.
	Log func(format string, args ...any)
}

// RFB constants (RFC 6143).
const (
	version33 = "RFB 003.003\n"
	version37 = "RFB 003.007\n"
	version38 = "RFB 003.008\n"

	securityInvalid = 0
	securityNone    = 1

	// Client-to-server message types (§7.5).
	msgSetPixelFormat  = 0
	msgSetEncodings    = 2
	msgUpdateRequest   = 3
	msgKeyEvent        = 4
	msgPointerEvent    = 5
	msgClientCutText   = 6
	msgFramebufferUpdt = 0 // server to client (§7.6.1)

	// Encodings (§7.7).
	EncodingRaw  = 0
	EncodingZlib = 6
)

// Bounds on what a client may send or hold.
const (
	// maxEncodings bounds SetEncodings' list; real clients send a few
	// dozen.
	maxEncodings = 1024
	// maxCutText bounds ClientCutText, which is read and dropped.
	maxCutText = 1 << 20
	// maxClients is how many clients may be connected at once.
	maxClients = 8
	// handshakeTimeout bounds the handshake; after it a client may be
	// idle as long as it likes.
	handshakeTimeout = 10 * time.Second
	// writeTimeout drops a client that stops reading.
	writeTimeout = 10 * time.Second
)

// Server serves one display to any number of clients.
type Server struct {
	cfg  Config
	w, h int

	// mu guards clients and closed.
	mu      sync.Mutex
	clients map[*client]bool
	closed  bool
}

// New returns a server for cfg's screen.
func New(cfg Config) (*Server, error) {
	if cfg.Screen == nil {
		return nil, errors.New("vnc: no screen")
	}
	w, h := cfg.Screen.Size()
	if w <= 0 || h <= 0 || w > 0xffff || h > 0xffff {
		return nil, fmt.Errorf("vnc: screen of %dx%d: RFB carries 1 to 65535 pixels a side", w, h)
	}
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	return &Server{cfg: cfg, w: w, h: h, clients: map[*client]bool{}}, nil
}

// Damage records that rectangle r of the screen changed and wakes the
// clients waiting for it. It never blocks: the display calls it from the
// guest's vCPU thread.
func (s *Server) Damage(r image.Rectangle) {
	r = r.Intersect(image.Rect(0, 0, s.w, s.h))
	if r.Empty() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.clients {
		c.damage(r)
	}
}

// Serve accepts clients on l until l is closed or Close is called.
func (s *Server) Serve(l net.Listener) error {
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.ServeConn(conn)
	}
}

// Close drops every client; Serve's listener is its caller's to close.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.clients {
		c.conn.Close()
	}
	s.mu.Unlock()
}

// ServeConn serves one client until it leaves or breaks the protocol,
// and closes conn.
func (s *Server) ServeConn(conn net.Conn) error {
	defer conn.Close()
	c := &client{s: s, conn: conn, r: bufio.NewReader(conn), pf: ServerFormat, wake: make(chan struct{}, 1), done: make(chan struct{})}
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.handshake(); err != nil {
		s.cfg.Log("vnc: client %s: handshake: %v", conn.RemoteAddr(), err)
		return err
	}
	conn.SetDeadline(time.Time{})
	s.mu.Lock()
	s.clients[c] = true
	s.mu.Unlock()
	s.cfg.Log("vnc: client %s connected", conn.RemoteAddr())
	defer func() {
		s.mu.Lock()
		delete(s.clients, c)
		s.mu.Unlock()
	}()
	go c.writer()
	err := c.reader()
	close(c.done)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		s.cfg.Log("vnc: client %s dropped: %v", conn.RemoteAddr(), err)
		return err
	}
	return nil
}

// client is one connection. Its reader goroutine reads its messages; its
// writer goroutine sends updates when damage meets a request.
type client struct {
	s    *Server
	conn net.Conn
	r    *bufio.Reader
	wake chan struct{} // capacity 1: an update may be due
	done chan struct{} // closed when the reader ends

	// mu guards the fields below; Server.mu before client.mu.
	mu      sync.Mutex
	pf      PixelFormat
	zlib    bool              // the client takes EncodingZlib
	dirty   []image.Rectangle // changed and not sent: at most maxDirty, disjoint
	request image.Rectangle   // what an outstanding update request covers; empty: none
	buttons uint8
	px, py  int

	// The writer goroutine's own.
	zbuf bytes.Buffer
	zw   *zlib.Writer
}

// damage records r and wakes the writer.
func (c *client) damage(r image.Rectangle) {
	c.mu.Lock()
	c.addDirty(r)
	c.mu.Unlock()
	c.poke()
}

// maxDirty bounds the rectangles a client's damage is kept as; past it
// they merge into their union.
const maxDirty = 16

// addDirty adds r to the damage, merging it with the rectangles it
// overlaps. Called with mu held.
func (c *client) addDirty(r image.Rectangle) {
	for merged := true; merged; {
		merged = false
		for i, d := range c.dirty {
			if d.Overlaps(r) || d.Eq(r) {
				r = r.Union(d)
				c.dirty = append(c.dirty[:i], c.dirty[i+1:]...)
				merged = true
				break
			}
		}
	}
	c.dirty = append(c.dirty, r)
	if len(c.dirty) > maxDirty {
		u := image.Rectangle{}
		for _, d := range c.dirty {
			u = u.Union(d)
		}
		c.dirty = append(c.dirty[:0], u)
	}
}

func (c *client) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// handshake runs the protocol version, security and initialisation
// phases (§7.1, §7.3).
func (c *client) handshake() error {
	if _, err := io.WriteString(c.conn, version38); err != nil {
		return err
	}
	var v [12]byte
	if _, err := io.ReadFull(c.r, v[:]); err != nil {
		return fmt.Errorf("reading the protocol version: %w", err)
	}
	var major, minor int
	if n, _ := fmt.Sscanf(string(v[:]), "RFB %03d.%03d\n", &major, &minor); n != 2 || major != 3 {
		return fmt.Errorf("protocol version %q: want RFB 003.00x", v[:])
	}
	c.s.mu.Lock()
	full := len(c.s.clients) >= maxClients || c.s.closed
	c.s.mu.Unlock()
	switch {
	case minor >= 8:
		minor = 8
	case minor == 7:
	default:
		minor = 3 // what the spec says a server does for other versions
	}
	if full {
		reason := fmt.Sprintf("the server has %d clients already", maxClients)
		if minor == 3 {
			binary.Write(c.conn, binary.BigEndian, uint32(securityInvalid))
		} else {
			c.conn.Write([]byte{0})
		}
		binary.Write(c.conn, binary.BigEndian, uint32(len(reason)))
		io.WriteString(c.conn, reason)
		return errors.New(reason)
	}
	if minor == 3 {
		// 3.3: the server names the type; None has no result.
		if err := binary.Write(c.conn, binary.BigEndian, uint32(securityNone)); err != nil {
			return err
		}
	} else {
		if _, err := c.conn.Write([]byte{1, securityNone}); err != nil {
			return err
		}
		t, err := c.r.ReadByte()
		if err != nil {
			return fmt.Errorf("reading the security type: %w", err)
		}
		if t != securityNone {
			if minor == 8 {
				reason := "security type None only"
				binary.Write(c.conn, binary.BigEndian, uint32(1))
				binary.Write(c.conn, binary.BigEndian, uint32(len(reason)))
				io.WriteString(c.conn, reason)
			}
			return fmt.Errorf("security type %d: want None", t)
		}
		if minor == 8 {
			if err := binary.Write(c.conn, binary.BigEndian, uint32(0)); err != nil {
				return err
			}
		}
	}
	if _, err := c.r.ReadByte(); err != nil { // ClientInit's shared flag: every client shares
		return fmt.Errorf("reading ClientInit: %w", err)
	}
	init := binary.BigEndian.AppendUint16(nil, uint16(c.s.w))
	init = binary.BigEndian.AppendUint16(init, uint16(c.s.h))
	init = append(init, ServerFormat.Marshal()...)
	init = binary.BigEndian.AppendUint32(init, uint32(len(c.s.cfg.Name)))
	init = append(init, c.s.cfg.Name...)
	_, err := c.conn.Write(init)
	return err
}

// reader reads the client's messages until it leaves or breaks the
// protocol; either way the connection is closed.
func (c *client) reader() error {
	defer c.conn.Close()
	var b [20]byte
	for {
		t, err := c.r.ReadByte()
		if err != nil {
			return err
		}
		switch t {
		case msgSetPixelFormat:
			if _, err := io.ReadFull(c.r, b[:3+pixelFormatSize]); err != nil {
				return err
			}
			pf := UnmarshalPixelFormat(b[3:])
			if err := pf.check(); err != nil {
				return fmt.Errorf("SetPixelFormat: %w", err)
			}
			c.mu.Lock()
			c.pf = pf
			c.mu.Unlock()
		case msgSetEncodings:
			if _, err := io.ReadFull(c.r, b[:3]); err != nil {
				return err
			}
			n := int(binary.BigEndian.Uint16(b[1:]))
			if n > maxEncodings {
				return fmt.Errorf("SetEncodings: %d encodings, at most %d", n, maxEncodings)
			}
			zl := false
			for range n {
				if _, err := io.ReadFull(c.r, b[:4]); err != nil {
					return err
				}
				if int32(binary.BigEndian.Uint32(b[:])) == EncodingZlib {
					zl = true
				}
			}
			c.mu.Lock()
			c.zlib = zl
			c.mu.Unlock()
		case msgUpdateRequest:
			if _, err := io.ReadFull(c.r, b[:9]); err != nil {
				return err
			}
			x, y := int(binary.BigEndian.Uint16(b[1:])), int(binary.BigEndian.Uint16(b[3:]))
			w, h := int(binary.BigEndian.Uint16(b[5:])), int(binary.BigEndian.Uint16(b[7:]))
			r := image.Rect(x, y, x+w, y+h).Intersect(image.Rect(0, 0, c.s.w, c.s.h))
			c.mu.Lock()
			if b[0] == 0 && !r.Empty() { // not incremental: the whole rectangle is due
				c.addDirty(r)
			}
			if r.Empty() { // nothing to cover: still owed an answer
				r = image.Rect(0, 0, c.s.w, c.s.h)
			}
			c.request = c.request.Union(r)
			c.mu.Unlock()
			c.poke()
		case msgKeyEvent:
			if _, err := io.ReadFull(c.r, b[:7]); err != nil {
				return err
			}
			c.key(binary.BigEndian.Uint32(b[3:]), b[0] != 0)
		case msgPointerEvent:
			if _, err := io.ReadFull(c.r, b[:5]); err != nil {
				return err
			}
			c.pointer(b[0], int(binary.BigEndian.Uint16(b[1:])), int(binary.BigEndian.Uint16(b[3:])))
		case msgClientCutText:
			if _, err := io.ReadFull(c.r, b[:7]); err != nil {
				return err
			}
			n := binary.BigEndian.Uint32(b[3:])
			if n > maxCutText {
				return fmt.Errorf("ClientCutText of %d bytes, at most %d", n, maxCutText)
			}
			if _, err := io.CopyN(io.Discard, c.r, int64(n)); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown message type %d", t)
		}
	}
}

// key sends a KeyEvent's key to the keyboard; a keysym without a key
// is dropped. The guest not taking events is no fault of the client's.
func (c *client) key(keysym uint32, down bool) {
	code := KeyCode(keysym)
	if code == 0 || c.s.cfg.Keyboard == nil {
		return
	}
	c.s.cfg.Keyboard.Key(code, down)
}

// pointer sends a PointerEvent to the touch screen: button 1 touches.
// Moves without a touch, and repeats, are not sent.
func (c *client) pointer(mask uint8, x, y int) {
	x, y = min(x, c.s.w-1), min(y, c.s.h-1)
	c.mu.Lock()
	was, moved := c.buttons&1 != 0, x != c.px || y != c.py
	c.buttons, c.px, c.py = mask, x, y
	c.mu.Unlock()
	down := mask&1 != 0
	if c.s.cfg.Touch == nil || down == was && (!down || !moved) {
		return
	}
	c.s.cfg.Touch.Touch(x, y, down)
}

// writer sends an update whenever damage meets an outstanding request.
func (c *client) writer() {
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		// What is due: each damaged rectangle's part in the request. A
		// rectangle sent whole is no longer damage; one sent in part
		// stays, and is sent again whole.
		var due []image.Rectangle
		kept := c.dirty[:0]
		for _, d := range c.dirty {
			if r := d.Intersect(c.request); !r.Empty() {
				due = append(due, r)
			}
			if !d.In(c.request) {
				kept = append(kept, d)
			}
		}
		if len(due) == 0 {
			c.mu.Unlock()
			continue
		}
		c.dirty = kept
		c.request = image.Rectangle{}
		pf, zl := c.pf, c.zlib
		c.mu.Unlock()
		if err := c.update(due, pf, zl); err != nil {
			c.s.cfg.Log("vnc: client %s: %v", c.conn.RemoteAddr(), err)
			c.conn.Close()
			return
		}
	}
}

// update sends one FramebufferUpdate of rectangles rs of the screen.
func (c *client) update(rs []image.Rectangle, pf PixelFormat, zl bool) error {
	frame, err := c.s.cfg.Screen.Snapshot()
	if err != nil {
		return fmt.Errorf("taking the screen: %w", err)
	}
	msg := []byte{msgFramebufferUpdt, 0}
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(rs)))
	for _, r := range rs {
		if msg, err = c.rectangle(msg, frame, r, pf, zl); err != nil {
			return err
		}
	}
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.conn.Write(msg)
	return err
}

// rectangle appends rectangle r of frame to msg in the client's
// encoding and format.
func (c *client) rectangle(msg []byte, frame *image.RGBA, r image.Rectangle, pf PixelFormat, zl bool) ([]byte, error) {
	msg = binary.BigEndian.AppendUint16(msg, uint16(r.Min.X))
	msg = binary.BigEndian.AppendUint16(msg, uint16(r.Min.Y))
	msg = binary.BigEndian.AppendUint16(msg, uint16(r.Dx()))
	msg = binary.BigEndian.AppendUint16(msg, uint16(r.Dy()))
	if zl {
		msg = binary.BigEndian.AppendUint32(msg, EncodingZlib)
		if c.zw == nil {
			// One zlib stream for the connection's life (§7.7.2,
			// as clients expect): each rectangle ends in a sync flush.
			c.zw = zlib.NewWriter(&c.zbuf)
		}
		c.zbuf.Reset()
		if _, err := c.zw.Write(pf.appendPixels(nil, frame, r)); err != nil {
			return nil, err
		}
		if err := c.zw.Flush(); err != nil {
			return nil, err
		}
		msg = binary.BigEndian.AppendUint32(msg, uint32(c.zbuf.Len()))
		msg = append(msg, c.zbuf.Bytes()...)
	} else {
		msg = binary.BigEndian.AppendUint32(msg, EncodingRaw)
		msg = pf.appendPixels(msg, frame, r)
	}
	return msg, nil
}
