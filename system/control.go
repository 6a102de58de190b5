package system

import (
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"
)

// The control socket takes one line, a command, and answers in text:
//
//	ps                  the guests' table
//	logs NAME           recent console output (up to 64 KiB)
//	stop NAME           stop a guest; it is not restarted. The answer
//	                    comes once it is stopped: its VMM has SIGTERM,
//	                    then after stopGrace SIGKILL
//	start NAME          start a stopped guest
//	restart NAME        stop and start a guest now, skipping any back-off
//	kill NAME           kill the guest's VMM (SIGKILL): a crash, which
//	                    its restart policy answers
//	threads NAME        the VMM's threads: policy, priority, cores
//	input NAME          what follows, until the client ends writing, is
//	                    typed on the guest's console
//	console NAME        recent output, then live output; what the client
//	                    sends goes to the guest's console input
//	screenshot NAME     a PNG of what the guest's display shows
//
// An error answer starts with "error: ".

// serveControl answers control-socket clients.
func (s *Supervisor) serveControl(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := readLine(c)
			c.SetReadDeadline(time.Time{})
			if err != nil {
				return
			}
			s.command(c, line)
		}()
	}
}

func (s *Supervisor) command(c net.Conn, line string) {
	f := strings.Fields(line)
	if len(f) == 0 {
		fmt.Fprintln(c, "error: empty command")
		return
	}
	if f[0] == "ps" {
		io.WriteString(c, FormatStatus(s.Status()))
		return
	}
	if len(f) != 2 {
		fmt.Fprintf(c, "error: %q: want COMMAND NAME\n", line)
		return
	}
	gp := s.byName[f[1]]
	if gp == nil {
		if f[0] == "input" {
			// Read what was to be typed: a connection closed with data
			// unread would reset, and the client never see the answer.
			io.Copy(io.Discard, io.LimitReader(c, maxInput+1))
		}
		fmt.Fprintf(c, "error: no guest %q\n", f[1])
		return
	}
	switch f[0] {
	case "logs":
		c.Write(gp.logs(nil))
	case "stop":
		io.WriteString(c, gp.stop(stopGrace))
	case "start", "restart":
		gp.mu.Lock()
		gp.stopReq = false
		gp.mu.Unlock()
		select {
		case gp.kick <- struct{}{}:
		default:
		}
		if f[0] == "restart" {
			gp.signal(syscall.SIGTERM)
		}
		fmt.Fprintf(c, "%sing %s\n", f[0], gp.g.Name)
	case "kill":
		// A crash, for fault-injection tests: the VMM dies with SIGKILL,
		// and the guest's restart policy decides what follows (stop
		// would turn it off).
		pid := gp.pid()
		if gp.signal(syscall.SIGKILL) {
			fmt.Fprintf(c, "killed %s's VMM (pid %d)\n", gp.g.Name, pid)
		} else {
			fmt.Fprintf(c, "%s is not running\n", gp.g.Name)
		}
	case "threads":
		pid := gp.pid()
		if pid == 0 {
			fmt.Fprintf(c, "%s%s is not running\n", errorPrefix, gp.g.Name)
			return
		}
		ts, err := Threads(pid)
		if err != nil {
			fmt.Fprintf(c, "%s%v\n", errorPrefix, err)
			return
		}
		io.WriteString(c, FormatThreads(ts))
	case "input":
		// The rest of the connection, up to the client's end of writing,
		// is typed on the guest's console.
		data, err := io.ReadAll(io.LimitReader(c, maxInput+1))
		switch {
		case err != nil:
			fmt.Fprintf(c, "%s%v\n", errorPrefix, err)
		case len(data) > maxInput:
			fmt.Fprintf(c, "%sinput longer than %d bytes: send it in parts\n", errorPrefix, maxInput)
		default:
			gp.mu.Lock()
			in := gp.stdin
			gp.mu.Unlock()
			if in == nil {
				fmt.Fprintf(c, "%s%s is not running\n", errorPrefix, gp.g.Name)
				return
			}
			if _, err := in.Write(data); err != nil {
				fmt.Fprintf(c, "%s%s's console: %v\n", errorPrefix, gp.g.Name, err)
				return
			}
			fmt.Fprintf(c, "sent %d bytes to %s's console\n", len(data), gp.g.Name)
		}
	case "console":
		ch := make(chan []byte, 256)
		ring := gp.logs(ch)
		defer func() {
			gp.mu.Lock()
			delete(gp.consoles, ch)
			gp.mu.Unlock()
		}()
		if _, err := c.Write(ring); err != nil {
			return
		}
		go func() {
			buf := make([]byte, 1024)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					gp.mu.Lock()
					in := gp.stdin
					gp.mu.Unlock()
					if in != nil {
						in.Write(buf[:n])
					}
				}
				if err != nil {
					c.Close()
					return
				}
			}
		}()
		for b := range ch {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	case "screenshot":
		if err := gp.screenshot(c); err != nil {
			fmt.Fprintf(c, "%s%v\n", errorPrefix, err)
		}
	default:
		fmt.Fprintf(c, "error: unknown command %q (ps, logs, stop, start, restart, kill, threads, input, console, screenshot)\n", f[0])
	}
}

// stopGrace is how long tandem stop lets a VMM end its guest after
// SIGTERM before it kills the VMM, as the supervisor's own end does.
const stopGrace = 5 * time.Second

// stop ends the guest and keeps it from being restarted; it returns once
// the guest is stopped, so that what follows (tandem ps, a start) sees it
// so. A VMM that outlives grace after SIGTERM is killed. A guest waiting
// out its restart back-off is not started again.
func (gp *guestProc) stop(grace time.Duration) string {
	gp.mu.Lock()
	gp.stopReq = true
	state := gp.state
	running := gp.cmd != nil && gp.cmd.Process != nil
	if running {
		gp.state = StateStopping
	}
	gp.mu.Unlock()
	if !running {
		if state == StateBackoff {
			// Wake the back-off: it sees stopReq and leaves the guest
			// stopped.
			select {
			case gp.kick <- struct{}{}:
			default:
			}
			if gp.waitState(grace, StateBackoff) {
				return fmt.Sprintf("stopped %s (it was waiting to restart)\n", gp.g.Name)
			}
		}
		return fmt.Sprintf("%s is not running (%s)\n", gp.g.Name, state)
	}
	pid := gp.pid()
	gp.signal(syscall.SIGTERM)
	if gp.waitState(grace, StateStopping) {
		return fmt.Sprintf("stopped %s\n", gp.g.Name)
	}
	gp.signal(syscall.SIGKILL)
	if gp.waitState(grace, StateStopping) {
		return fmt.Sprintf("stopped %s: its VMM (pid %d) did not end within %v of SIGTERM and was killed\n", gp.g.Name, pid, grace)
	}
	return fmt.Sprintf("%s%s's VMM (pid %d) has not ended %v after SIGKILL: it is stuck in the host kernel (tandem threads %s, dmesg)\n", errorPrefix, gp.g.Name, pid, 2*grace, gp.g.Name)
}

// waitState waits up to d for the guest to leave state st; false if it
// has not.
func (gp *guestProc) waitState(d time.Duration, st string) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		gp.mu.Lock()
		cur := gp.state
		gp.mu.Unlock()
		if cur != st {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// maxInput bounds what one input command types on a guest's console.
const maxInput = 64 << 10

// Input types data on guest's console through a supervisor's control
// socket and returns the supervisor's answer.
func Input(socket, guest string, data []byte) (string, error) {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return "", fmt.Errorf("control socket %s (is tandem system running?): %w", socket, err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "input %s\n%s", guest, data); err != nil {
		return "", err
	}
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return "", err
	}
	answer, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	if msg, ok := strings.CutPrefix(string(answer), errorPrefix); ok {
		return "", fmt.Errorf("%s", strings.TrimSpace(msg))
	}
	return strings.TrimSpace(string(answer)), nil
}

// Control sends one command to a supervisor's control socket and copies
// the answer to w. For console, in is sent to the guest.
func Control(socket, command string, in io.Reader, w io.Writer) error {
	c, err := net.Dial("unix", socket)
	if err != nil {
		return fmt.Errorf("control socket %s (is tandem system running?): %w", socket, err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s\n", command); err != nil {
		return err
	}
	if in != nil {
		go io.Copy(c, in)
	}
	var first [7]byte
	n, _ := io.ReadFull(c, first[:])
	if string(first[:n]) == "error: " {
		msg, _ := io.ReadAll(c)
		return fmt.Errorf("%s", strings.TrimSpace(string(msg)))
	}
	w.Write(first[:n])
	_, err = io.Copy(w, c)
	return err
}
