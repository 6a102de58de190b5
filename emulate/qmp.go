package emulate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"time"
)

// A Screendump saves the board's own display as a PNG when a console
// line matches At: QEMU's screendump command, through its QMP monitor
// (a UNIX socket the run gives QEMU). What it shows is what a screen
// plugged into the board would: the firmware's console, then whatever the
// host draws on its framebuffer. The board needs a display device in
// QEMU's model (Board.Display).
type Screendump struct {
	// At is the line that triggers the picture; each dump is taken
	// once, at the first line that matches.
	At *Check
	// File is where the PNG goes.
	File string
}

// A ScreendumpResult is what became of a Screendump.
type ScreendumpResult struct {
	File string
	// Line is the console line that triggered it ("" when none came) and
	// At when it came.
	Line string
	At   time.Duration
	// Err says why there is no picture ("" when File was written).
	Err string
}

// qmpTimeout bounds one exchange with QEMU's monitor, connecting
// included: QEMU makes its socket as it starts.
const qmpTimeout = 20 * time.Second

// qmpSocket is the monitor's socket in the run's work directory.
func qmpSocket(work string) string { return filepath.Join(work, "qmp.sock") }

// qmp is a client of QEMU's machine protocol (QMP, docs/interop/qmp-spec):
// JSON objects, one per line; a greeting, then capabilities negotiation,
// then commands answered by {"return": …} or {"error": …}, with
// asynchronous {"event": …} objects in between.
type qmp struct {
	path string
	mu   sync.Mutex // one exchange at a time
	conn net.Conn
	dec  *json.Decoder
}

// qmpReply is a message from QEMU: a command's answer, an event or the
// greeting.
type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string          `json:"event"`
	QMP   json.RawMessage `json:"QMP"`
}

// connect opens the monitor and leaves the negotiation done, retrying
// while QEMU has not made its socket yet.
func (q *qmp) connect(deadline time.Time) error {
	var err error
	for {
		if q.conn, err = net.DialTimeout("unix", q.path, time.Until(deadline)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("QEMU's monitor %s: %w", q.path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	q.conn.SetDeadline(deadline)
	q.dec = json.NewDecoder(q.conn)
	var greeting qmpReply
	if err := q.dec.Decode(&greeting); err != nil {
		return q.fail(fmt.Errorf("QEMU's monitor: reading its greeting: %w", err))
	}
	if greeting.QMP == nil {
		return q.fail(errors.New("QEMU's monitor: its first message is no QMP greeting"))
	}
	if _, err := q.exchange("qmp_capabilities", nil); err != nil {
		return q.fail(err)
	}
	return nil
}

// fail closes the connection after err, so that the next command
// connects afresh.
func (q *qmp) fail(err error) error {
	if q.conn != nil {
		q.conn.Close()
		q.conn = nil
	}
	return err
}

// exchange sends one command and returns its answer, skipping events.
func (q *qmp) exchange(cmd string, args any) (json.RawMessage, error) {
	msg := map[string]any{"execute": cmd}
	if args != nil {
		msg["arguments"] = args
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := q.conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QEMU's monitor: sending %s: %w", cmd, err)
	}
	for {
		var r qmpReply
		if err := q.dec.Decode(&r); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("QEMU's monitor: the answer to %s: %w", cmd, err)
		}
		switch {
		case r.Error != nil:
			return nil, fmt.Errorf("QEMU's monitor: %s: %s (%s)", cmd, r.Error.Desc, r.Error.Class)
		case r.Return != nil:
			return r.Return, nil
		}
		// An event: the answer is still to come.
	}
}

// command runs one command, connecting first if need be.
func (q *qmp) command(cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	deadline := time.Now().Add(qmpTimeout)
	if q.conn == nil {
		if err := q.connect(deadline); err != nil {
			return nil, err
		}
	}
	q.conn.SetDeadline(deadline)
	r, err := q.exchange(cmd, args)
	if err != nil {
		return nil, q.fail(err)
	}
	return r, nil
}

// screendump has QEMU write its display's current picture to file as a
// PNG.
func (q *qmp) screendump(file string) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	_, err = q.command("screendump", map[string]string{"filename": abs, "format": "png"})
	return err
}

// close ends the connection.
func (q *qmp) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fail(nil)
}
