package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/vmm"
)

// escapeByte, then 'x', typed on a terminal console ends the guest (as in
// QEMU: Ctrl-A x).
const escapeByte = 0x01

// defaultConsoleLimit is how large a file: console grows unless told
// otherwise (--console-limit, console-limit:): a guest that prints
// without end must not fill the host's disk, and 64 MiB holds days of a
// chatty kernel's log.
const defaultConsoleLimit = "64M"

// openConsole connects the guest's console as spec says: "stdio",
// "file:PATH" or "pty"; a file stops growing at limit bytes (0: never).
// It returns a function that undoes it.
func openConsole(spec string, limit uint64, cfg *vmm.Config, stderr io.Writer) (func(), error) {
	switch {
	case spec == "stdio":
		out := &lineEnder{w: os.Stdout}
		cfg.Console.Out = out
		restore, raw := makeRaw(int(os.Stdin.Fd()))
		if raw {
			cfg.Console.In = &escapeReader{r: os.Stdin}
			fmt.Fprintf(stderr, "tandem: console on this terminal; Ctrl-A x quits\r\n")
		} else {
			cfg.Console.In = os.Stdin
		}
		return func() { restore(); out.end() }, nil
	case strings.HasPrefix(spec, "file:"):
		path := strings.TrimPrefix(spec, "file:")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, fmt.Errorf("--console %s: %w", spec, err)
		}
		cfg.Console.Out = &cappedWriter{w: f, limit: limit}
		return func() { f.Close() }, nil
	case spec == "pty":
		master, name, err := openPTY()
		if err != nil {
			return nil, fmt.Errorf("--console pty: %w", err)
		}
		fmt.Fprintf(stderr, "tandem: console on %s\n", name)
		cfg.Console.Out, cfg.Console.In = master, master
		return func() { master.Close() }, nil
	}
	return nil, fmt.Errorf("--console %q: want stdio, file:PATH or pty", spec)
}

// cappedWriter stops a console file at limit bytes (0: no limit): what
// reaches the limit is written, then one line saying output stopped, and
// everything after is dropped while the guest carries on, unaware, as
// with a disconnected terminal. Console devices on several vCPUs write
// to it, so it serialises them.
type cappedWriter struct {
	w     io.Writer
	limit uint64

	// mu protects n and stopped.
	mu      sync.Mutex
	n       uint64 // bytes written so far
	stopped bool
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return len(p), nil
	}
	if c.limit == 0 || c.n+uint64(len(p)) <= c.limit {
		n, err := c.w.Write(p)
		c.n += uint64(n)
		return n, err
	}
	room := p[:c.limit-c.n]
	n, err := c.w.Write(room)
	c.n += uint64(n)
	c.stopped = true
	fmt.Fprintf(c.w, "\ntandem: console output stopped here: the file reached its limit of %d bytes (--console-limit, console-limit:); the guest runs on\n", c.limit)
	if err != nil {
		return n, err
	}
	return len(p), nil
}

// lineEnder passes the guest's console output through and, at the end,
// finishes a line the guest left open: the VMM's own last words (how the
// guest ended), written next to the same stream, then start a line of
// their own instead of running into a report cut off mid-line.
type lineEnder struct {
	w   io.Writer
	mid atomic.Bool // the last byte written was not a newline
}

func (l *lineEnder) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if n > 0 {
		l.mid.Store(p[n-1] != '\n')
	}
	return n, err
}

// end writes the newline an unfinished last line lacks.
func (l *lineEnder) end() {
	if l.mid.Swap(false) {
		l.w.Write([]byte("\n"))
	}
}

// makeRaw puts a terminal into raw mode so keys reach the guest as typed.
func makeRaw(fd int) (restore func(), ok bool) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return func() {}, false // not a terminal
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return func() {}, false
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, true
}

// escapeReader passes keys through until Ctrl-A x, then reports EOF and
// sends the process SIGTERM, which stops the guest.
type escapeReader struct {
	r       io.Reader
	pending bool
}

func (e *escapeReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	out := p[:0]
	for _, b := range p[:n] {
		switch {
		case e.pending && b == 'x':
			unix.Kill(os.Getpid(), unix.SIGTERM)
			return len(out), io.EOF
		case e.pending:
			e.pending = false
			out = append(out, escapeByte, b)
		case b == escapeByte:
			e.pending = true
		default:
			out = append(out, b)
		}
	}
	return len(out), err
}

// openPTY opens a pseudo-terminal pair and returns the master and the
// slave's path, for `screen` or `minicom` to attach to.
func openPTY() (*os.File, string, error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("unlocking pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		unix.Close(fd)
		return nil, "", fmt.Errorf("pty number: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), fmt.Sprintf("/dev/pts/%d", n), nil
}

func parseMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Errorf("%q: want a 6-byte MAC such as 52:54:00:12:34:56", s)
	}
	return mac, nil
}
