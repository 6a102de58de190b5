package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/vmm"
)

// tandem.kill=GUEST on the kernel command line (demos, tests) shows a
// restart on the board: once every tandem.until marker came, init kills
// GUEST's VMM (the control socket's kill, SIGKILL, as a crash would end
// it), waits for the supervisor to restart it by its policy and for
// GUEST's marker to come again in what its new run prints, and only then
// stops the system. Around it, init prints a line at each moment the
// board's own display is worth a picture, and holds screenGap after each
// for it to be taken (tandem emulate's screendumps wait for these lines):
//
//	tandem init: board screen 1: every guest runs
//	tandem init: board screen 2: GUEST restarted

// boardScreenLine starts the lines that mark those moments.
const boardScreenLine = "tandem init: board screen "

// killRestartBound bounds the wait for the restarted guest's marker when
// tandem.runfor gives no deadline.
const killRestartBound = 5 * time.Minute

// killAndWait runs tandem.kill=guest once the markers came; deadline is
// tandem.runfor's end (zero: none), gap the hold around each picture
// (screenGap). logs and control talk to the supervisor's control socket.
//
// screen, if set, reads the board's display (the host's framebuffer,
// when a guest is shown on it): each picture's line waits, within
// screenLiveBound, until two reads of it differ and are not all black,
// so that the picture taken shows the guest's live screen, not a frame
// a slow board has yet to replace.
func killAndWait(guest string, markers []*marker, deadline time.Time, gap time.Duration, screen func() ([]byte, error), logs func(string) ([]byte, error), control func(string) (string, error), log io.Writer) {
	var m *marker
	for _, mk := range markers {
		if mk.guest == guest {
			m = mk
		}
	}
	if m == nil {
		fmt.Fprintf(log, "tandem init: tandem.kill=%s: no tandem.until marker for %s to wait for after its restart: add %s:REGEX to tandem.until\n", guest, guest, guest)
		return
	}
	time.Sleep(gap)
	waitScreenLive(screen, log)
	fmt.Fprintf(log, "%s1: every guest runs\n", boardScreenLine)
	time.Sleep(gap)
	ps, err := control("ps")
	if err != nil {
		fmt.Fprintf(log, "tandem init: tandem.kill: %v\n", err)
		return
	}
	_, pid := guestRow(ps, guest)
	answer, err := control("kill " + guest)
	if err != nil {
		fmt.Fprintf(log, "tandem init: tandem.kill: %v\n", err)
		return
	}
	fmt.Fprintf(log, "tandem init: tandem.kill: %s; the supervisor restarts it by its policy\n", strings.TrimSpace(answer))
	killed := time.Now()
	if deadline.IsZero() {
		deadline = killed.Add(killRestartBound)
	}
	// The new run: another VMM running. What the guest prints from then
	// on is the new run's; lines the killed VMM had still on their way
	// came before.
	for ; ; time.Sleep(min(untilPoll, gap)) {
		if ps, err := control("ps"); err == nil {
			if state, now := guestRow(ps, guest); state == "running" && now != 0 && now != pid {
				break
			}
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(log, "tandem init: tandem.kill: %s was not restarted before tandem.runfor's end\n", guest)
			return
		}
	}
	before, _ := logs(guest)
	for ; ; time.Sleep(min(untilPoll, gap)) {
		if now, err := logs(guest); err == nil && logMatches(since(before, now), m.re) {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(log, "tandem init: tandem.kill: %s's marker %s did not come again before tandem.runfor's end\n", guest, m.re)
			return
		}
	}
	fmt.Fprintf(log, "tandem init: tandem.kill: %s is back: its marker came again %.1fs after the kill\n", guest, time.Since(killed).Seconds())
	// What the other guests' markers say now, with the killed guest
	// back: each must then say something new (the infotainment guest's
	// counts moving again) before the second picture. Taken before the
	// kill, the reports of messages still on their way as it died would
	// pass for the channel's return.
	lastSeen := map[*marker]string{}
	for _, mk := range markers {
		if mk.guest != guest {
			if l, err := logs(mk.guest); err == nil {
				lastSeen[mk] = lastMatch(l, mk.re)
			}
		}
	}
	for _, mk := range markers {
		if mk.guest == guest {
			continue
		}
		end := time.Now().Add(peerMarkerBound)
		if deadline.Before(end) {
			end = deadline
		}
		for ; ; time.Sleep(min(untilPoll, gap)) {
			if l, err := logs(mk.guest); err == nil {
				if now := lastMatch(l, mk.re); now != "" && now != lastSeen[mk] {
					fmt.Fprintf(log, "tandem init: tandem.kill: %s's marker says something new %.1fs after the kill\n", mk.guest, time.Since(killed).Seconds())
					break
				}
			}
			if time.Now().After(end) {
				fmt.Fprintf(log, "tandem init: tandem.kill: %s's marker %s said nothing new within %v of %s's return\n", mk.guest, mk.re, peerMarkerBound, guest)
				break
			}
		}
	}
	time.Sleep(gap)
	waitScreenLive(screen, log)
	fmt.Fprintf(log, "%s2: %s restarted\n", boardScreenLine, guest)
	time.Sleep(gap)
}

// peerMarkerBound bounds the wait for the other guests' markers to say
// something new after the killed guest's return.
const peerMarkerBound = time.Minute

// lastMatch returns the last line of log that re matches, "" if none.
func lastMatch(log []byte, re *regexp.Regexp) string {
	lines := logLines(log)
	for i := len(lines) - 1; i >= 0; i-- {
		if re.MatchString(lines[i]) {
			return lines[i]
		}
	}
	return ""
}

// guestRow reads a guest's state and VMM's PID from tandem ps's table
// (0 when the guest has no row or no VMM).
func guestRow(ps, guest string) (state string, pid int) {
	for _, l := range strings.Split(ps, "\n") {
		f := strings.Fields(l)
		if len(f) > 3 && f[0] == guest {
			pid, _ = strconv.Atoi(f[3])
			return f[2], pid
		}
	}
	return "", 0
}

// screenLiveBound bounds the wait for the board's display to show a live
// picture.
const screenLiveBound = time.Minute

// waitScreenLive waits until two reads of the board's display, half a
// second apart, differ and the second is not all black; it says so when
// that does not happen within screenLiveBound.
func waitScreenLive(screen func() ([]byte, error), log io.Writer) {
	if screen == nil {
		return
	}
	var before []byte
	for end := time.Now().Add(screenLiveBound); ; time.Sleep(500 * time.Millisecond) {
		now, err := screen()
		if err != nil {
			fmt.Fprintf(log, "tandem init: board screen: %v\n", err)
			return
		}
		if before != nil && !bytes.Equal(before, now) && bytes.ContainsFunc(now, func(r rune) bool { return r != 0 }) {
			return
		}
		if time.Now().After(end) {
			fmt.Fprintf(log, "tandem init: board screen: the board's display did not change in %v\n", screenLiveBound)
			return
		}
		before = now
	}
}

// boardScreen reads the board's display when the manifest shows a guest
// on it (display.board), or is nil.
func boardScreen(manifest string) func() ([]byte, error) {
	m, err := system.LoadManifest(manifest)
	if err != nil {
		return nil
	}
	for _, g := range m.Guests {
		if g.BoardDisplay {
			return func() ([]byte, error) { return os.ReadFile(vmm.BoardFramebuffer) }
		}
	}
	return nil
}

// runDeadline is tandem.runfor's end for a system started at start (zero
// without tandem.runfor).
func runDeadline(start time.Time, runFor time.Duration) time.Time {
	if runFor <= 0 {
		return time.Time{}
	}
	return start.Add(runFor)
}

// controlText sends commands to the control socket and returns the
// answers as text.
func controlText(socket string) func(string) (string, error) {
	return func(cmd string) (string, error) {
		var b bytes.Buffer
		err := system.Control(socket, cmd, nil, &b)
		return b.String(), err
	}
}

// sinceTail is how much of the older log since looks for in the newer
// one when the log's ring has dropped its start.
const sinceTail = 256

// since returns what a guest's log (the supervisor's ring of its recent
// output) holds beyond before, an earlier read of it: the rest after
// before when it still starts the log; else what follows the last
// occurrence of before's end; else all of now.
func since(before, now []byte) []byte {
	if bytes.HasPrefix(now, before) {
		return now[len(before):]
	}
	tail := before[max(0, len(before)-sinceTail):]
	if i := bytes.LastIndex(now, tail); i >= 0 && len(tail) > 0 {
		return now[i+len(tail):]
	}
	return now
}
