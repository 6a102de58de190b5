package system

import (
	"bufio"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tandem-hv/tandem/vmm"
)

// A guest's display, seen from the supervisor. The supervisor makes its
// sockets and its VMMs inherit them, so that a VMM running as its own
// user needs no right to make sockets, and the sockets outlive a
// restart:
//
//   - NAME.display in the run directory, made for each run of the VMM,
//     which answers one line, "screenshot", with a PNG of what the
//     guest's display shows, or "error: " and why; the control socket's
//     screenshot command relays it;
//   - the VNC server's socket, where display.vnc says, made once when
//     the supervisor starts: a client that connects while the guest
//     restarts is served by its next VMM.
const (
	opScreenshot = "screenshot"
	// screenshotTimeout bounds a screenshot's round trip to the VMM.
	screenshotTimeout = 10 * time.Second
)

func (gp *guestProc) displaySocket() string {
	return filepath.Join(gp.s.RunDir, gp.g.Name+".display")
}

// listenDisplay makes the socket the VMM answers screenshots on, for it
// to inherit; only the supervisor connects to it.
func (gp *guestProc) listenDisplay() (*os.File, error) {
	os.Remove(gp.displaySocket())
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: gp.displaySocket(), Net: "unix"})
	if err != nil {
		return nil, err
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	return l.File()
}

// displayFiles are the sockets a run of gp's VMM inherits for its
// display, with the flags that name them: fds count from first.
// cleanup removes what the run leaves.
func (gp *guestProc) displayFiles(first int) (files []*os.File, args []string, cleanup func(), err error) {
	cleanup = func() {}
	if gp.g.Display == nil {
		return nil, nil, cleanup, nil
	}
	f, err := gp.listenDisplay()
	if err != nil {
		return nil, nil, cleanup, fmt.Errorf("guest %s: display socket: %w", gp.g.Name, err)
	}
	files = append(files, f)
	args = append(args, "--display-fd", fmt.Sprint(first))
	cleanup = func() { os.Remove(gp.displaySocket()) }
	if gp.vnc != nil {
		v, err := gp.vnc.File()
		if err != nil {
			f.Close()
			return nil, nil, cleanup, fmt.Errorf("guest %s: VNC socket: %w", gp.g.Name, err)
		}
		files = append(files, v)
		args = append(args, "--vnc-fd", fmt.Sprint(first+1))
	}
	return files, args, cleanup, nil
}

// fileListener is a listener whose socket a child can inherit.
type fileListener interface {
	net.Listener
	File() (*os.File, error)
}

// listenVNC makes the VNC sockets of the guests that have one.
func (s *Supervisor) listenVNC() ([]net.Listener, error) {
	var ls []net.Listener
	for _, gp := range s.guests {
		d := gp.g.Display
		if d == nil || d.VNC == "" {
			continue
		}
		if a := d.VNC; len(a) > 5 && a[:5] == "unix:" {
			os.MkdirAll(filepath.Dir(a[5:]), 0o700)
		}
		l, err := vmm.ListenVNC(d)
		if err != nil {
			return ls, fmt.Errorf("guest %s: display.vnc: %w", gp.g.Name, err)
		}
		ls = append(ls, l)
		fl, ok := l.(fileListener)
		if !ok {
			return ls, fmt.Errorf("guest %s: display.vnc: a %T cannot be passed to the VMM", gp.g.Name, l)
		}
		gp.vnc = fl
		s.logf("%s: VNC at %s", gp.g.Name, d.VNC)
	}
	return ls, nil
}

// screenshot relays a PNG of gp's display from its VMM to w.
func (gp *guestProc) screenshot(w io.Writer) error {
	if gp.g.Display == nil {
		return fmt.Errorf("guest %q has no display (display: in the manifest)", gp.g.Name)
	}
	c, err := net.DialTimeout("unix", gp.displaySocket(), dialTimeout)
	if err != nil {
		return fmt.Errorf("guest %q is not running", gp.g.Name)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(screenshotTimeout))
	if _, err := fmt.Fprintf(c, "%s\n", opScreenshot); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	if head, _ := r.Peek(len(errorPrefix)); string(head) == errorPrefix {
		line, _ := readLine(r)
		return fmt.Errorf("guest %q: %s", gp.g.Name, line[len(errorPrefix):])
	}
	_, err = io.Copy(w, r)
	return err
}

// errorPrefix starts an error answer, on the control socket as on a
// VMM's display socket.
const errorPrefix = "error: "

// ServeScreenshots answers the supervisor's screenshot requests on l
// with PNGs of what snapshot returns (the display's GPU's Snapshot).
func ServeScreenshots(l net.Listener, snapshot func() (*image.RGBA, error)) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(screenshotTimeout))
			line, err := readLine(c)
			if err != nil {
				return
			}
			if line != opScreenshot {
				fmt.Fprintf(c, "%sunknown request %q: want %s\n", errorPrefix, line, opScreenshot)
				return
			}
			img, err := snapshot()
			if err != nil {
				fmt.Fprintf(c, "%s%v\n", errorPrefix, err)
				return
			}
			png.Encode(c, img)
		}()
	}
}
