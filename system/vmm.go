package system

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tandem-hv/tandem/vmm"
)

// The VMM and the supervisor speak over UNIX sockets, one connection per
// vsock stream. A connection opens with one line, answered by one line;
// after the answer it carries the stream's bytes as they are:
//
//	VMM → supervisor (out socket): "CONNECT <guest port> <peer CID> <peer port>\n"
//	supervisor → VMM (in socket):  "CONNECT <peer CID> <peer port> <guest port>\n"
//	answer:                        "OK\n" or "ERR <reason>\n"
//
// Which guest is speaking is known from the socket, never from the line:
// a VMM cannot claim another guest's CID.
const (
	opConnect    = "CONNECT"
	answerOK     = "OK"
	maxLineBytes = 256
	dialTimeout  = 5 * time.Second
)

// readLine reads one line a byte at a time, so nothing after it (the
// stream) is consumed.
func readLine(r io.Reader) (string, error) {
	var b [1]byte
	var line []byte
	for len(line) < maxLineBytes {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		if b[0] == '\n' {
			return string(line), nil
		}
		line = append(line, b[0])
	}
	return "", fmt.Errorf("line longer than %d bytes", maxLineBytes)
}

// parseConnect reads "CONNECT a b c".
func parseConnect(line string) (a uint32, b uint64, c uint32, err error) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != opConnect {
		return 0, 0, 0, fmt.Errorf("bad request %q", line)
	}
	x, e1 := strconv.ParseUint(f[1], 10, 32)
	y, e2 := strconv.ParseUint(f[2], 10, 64)
	z, e3 := strconv.ParseUint(f[3], 10, 32)
	if err := errors.Join(e1, e2, e3); err != nil {
		return 0, 0, 0, fmt.Errorf("bad request %q", line)
	}
	return uint32(x), y, uint32(z), nil
}

// answer reads the answer line: nil for OK.
func answer(c net.Conn) error {
	c.SetReadDeadline(time.Now().Add(dialTimeout))
	line, err := readLine(c)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		return err
	}
	if line == answerOK {
		return nil
	}
	return errors.New(strings.TrimPrefix(line, "ERR "))
}

// routerHost is a VMM's vsock host side: each guest connection becomes a
// connection to the supervisor's out socket for this guest.
type routerHost struct{ path string }

func (r routerHost) Connect(srcPort uint32, dstCID uint64, dstPort uint32) (io.ReadWriteCloser, error) {
	c, err := net.DialTimeout("unix", r.path, dialTimeout)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "%s %d %d %d\n", opConnect, srcPort, dstCID, dstPort); err != nil {
		c.Close()
		return nil, err
	}
	if err := answer(c); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// VMMOptions are what the supervisor gives one `tandem vmm`.
type VMMOptions struct {
	Guest    string
	VsockOut string // the supervisor's socket for this guest's connections
	// VsockIn takes connections into the guest: the listening socket
	// the supervisor made and the VMM inherited, so that only the
	// supervisor can connect, and the VMM needs no right to make
	// sockets. Nil for none.
	VsockIn net.Listener
	// VTPM is the command socket of the guest's software TPM, which the
	// supervisor starts for guests with vtpm: true.
	VTPM string
	// Display answers the supervisor's screenshot requests (see
	// display.go); VNC is the guest's VNC socket. Both inherited from
	// the supervisor; nil for none.
	Display, VNC net.Listener
	Console      vmm.Console
	// NoSandbox runs the VMM unconfined (debugging).
	NoSandbox bool
	// BoardDisplay is the board's framebuffer (vmm.BoardFramebuffer),
	// opened by the supervisor for the guest with display: {board:
	// true}; nil for none. RunVMM shows the guest's scanout on it.
	BoardDisplay *os.File
}

// RunVMM runs one guest of the manifest in this process until it ends.
// The returned error is an *vmm.ExitErr for every end but a power-off, so
// the exit status tells the supervisor how the guest ended; an error no
// restart cures (the guest's configuration, the host's KVM) is a
// *vmm.FatalError, whose status, vmm.ExitFatal, says so.
func RunVMM(ctx context.Context, m *Manifest, o VMMOptions) error {
	g := m.Guest(o.Guest)
	if g == nil {
		return &vmm.FatalError{Err: fmt.Errorf("%s: no guest %q", m.Path, o.Guest)}
	}
	cfg, err := g.Config()
	if err != nil {
		return &vmm.FatalError{Err: err}
	}
	cfg.Console = o.Console
	if g.VTPM {
		if o.VTPM == "" {
			return &vmm.FatalError{Err: fmt.Errorf("guest %s has vtpm: true and no TPM was given (--vtpm): run it under tandem system, which starts its TPM", g.Name)}
		}
		cfg.TPM = &vmm.TPM{Socket: o.VTPM}
	}
	if !o.NoSandbox {
		cfg.Sandbox = &vmm.Sandbox{}
	}
	if cfg.Vsock != nil && o.VsockOut != "" {
		cfg.Vsock.Host = routerHost{o.VsockOut}
		if cfg.Sandbox != nil {
			cfg.Sandbox.Connect = []string{o.VsockOut}
		}
	}
	if cfg.Display != nil && o.VNC != nil {
		cfg.Display.VNCListener = o.VNC
	}
	vm, err := vmm.Build(cfg)
	if err != nil {
		return fmt.Errorf("guest %s: %w", g.Name, err)
	}
	defer vm.Close()
	if vm.Display() != nil && o.Display != nil {
		go ServeScreenshots(o.Display, vm.Display().GPU.Snapshot)
	}
	if vm.Vsock() != nil && o.VsockIn != nil {
		go serveVsockIn(o.VsockIn, vm)
	}
	if o.BoardDisplay != nil {
		d := vm.Display()
		if d == nil {
			return &vmm.FatalError{Err: fmt.Errorf("guest %s: a board display was given and the guest has no display: give it display: {board: true}", g.Name)}
		}
		// Its geometry is read now, before the VMM confines itself.
		fb, err := vmm.OpenFramebuffer(o.BoardDisplay, filepath.Join("/sys/class/graphics", filepath.Base(vmm.BoardFramebuffer)))
		if err != nil {
			return &vmm.FatalError{Err: fmt.Errorf("guest %s: %w", g.Name, err)}
		}
		defer fb.Close()
		d.AddFlushSink(fb)
	}
	// Best effort: it only lowers the VMM's resident set.
	_ = vmm.ReleaseStartupPages()
	// kill -USR1 on the VMM prints where each vCPU is.
	defer vmm.DumpOnSignal(vm, syscall.SIGUSR1)()
	return vm.Run(ctx)
}

// serveVsockIn takes connections into the guest from the supervisor.
func serveVsockIn(l net.Listener, vm *vmm.VM) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			c.SetReadDeadline(time.Now().Add(dialTimeout))
			line, err := readLine(c)
			c.SetReadDeadline(time.Time{})
			if err != nil {
				c.Close()
				return
			}
			peerPort, peerCID, port, err := parseConnect(line)
			if err != nil {
				fmt.Fprintf(c, "ERR %v\n", err)
				c.Close()
				return
			}
			s := &answeredConn{Conn: c, ready: make(chan struct{})}
			s.answer(vm.Vsock().Dial(peerCID, peerPort, port, s))
		}()
	}
}

// answeredConn holds the guest's first bytes until the answer is written,
// so the answer line always comes before the stream. A refused Dial
// closes its stream before it returns (at once, or from a goroutine):
// that Close waits for the answer, so the supervisor reads why ("ERR
// connection refused by the guest") instead of an end of file.
type answeredConn struct {
	net.Conn
	once  sync.Once
	ready chan struct{}

	mu                    sync.Mutex
	answered, closeWanted bool
}

// answer writes OK, or ERR and why, then closes the connection if it was
// refused or its Close came first.
func (a *answeredConn) answer(err error) {
	a.once.Do(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			fmt.Fprintf(a.Conn, "ERR %v\n", err)
		} else {
			fmt.Fprintf(a.Conn, "%s\n", answerOK)
		}
		a.answered = true
		if err != nil || a.closeWanted {
			a.Conn.Close()
		}
		close(a.ready)
	})
}

// Close closes the connection, or, before the answer, has answer do it.
func (a *answeredConn) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.answered {
		a.closeWanted = true
		return nil
	}
	return a.Conn.Close()
}

func (a *answeredConn) Write(p []byte) (int, error) {
	<-a.ready
	return a.Conn.Write(p)
}

func (a *answeredConn) CloseWrite() error {
	<-a.ready
	if cw, ok := a.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
