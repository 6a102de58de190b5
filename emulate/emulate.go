// Package emulate boots a Tandem image on QEMU's model of its board and
// checks it, for a user's CI as for Tandem's own demo: `tandem emulate`.
//
// The board boots the image as it would on the bench (for
// qemu-virt-arm64: Debian's U-Boot as firmware runs boot.scr from the
// image's boot partition, the image is a virtio disk; for zcu102, whose
// firmware QEMU cannot run, QEMU loads the boot partition's kernel,
// device tree and initramfs with the boot script's command line, as the
// board's U-Boot would, and the image is the SD card: DirectBoot). The serial console
// carries the board's own lines and, prefixed "NAME | ", each guest's
// console (the supervisor prints them so); the run splits them into
// consoles, streams them, and checks them against expectations: lines
// that must come (--expect, a test file's wait steps), lines that must
// not (--expect-not). It stops once every expectation held (or at the
// --until line, or when the board powers off) or at the timeout.
//
// A test file's steps also drive the running system: with
// tandem.commands=1 on the host's command line, tandem init runs the
// console commands typed on the board's serial console (tandem ps, tandem
// stop|start|restart|kill NAME, …) and prints their answers there, which
// the run checks (Step.Command).
package emulate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// DefaultTimeout bounds a run that is given none: a demo boot takes two
// to four minutes under software emulation on a loaded two-core machine.
const DefaultTimeout = 10 * time.Minute

// TailLines is how many of a console's last lines a failure shows.
const TailLines = 20

// Options configure a run.
type Options struct {
	// Image is the image file; Board the board it is booted as.
	Image string
	Board *Board
	// Guests are the guests' names (ImageInfo.Guests); nil: any
	// "NAME | " prefix is a guest's.
	Guests []string
	// Expect are the lines that must come and must not (Check.Not).
	Expect []*Check
	// Steps run in order, alongside Expect.
	Steps []*Step
	// Until, if set, ends the run at its first line instead of once
	// every expectation held; UntilPowerOff runs until the board powers
	// off.
	Until         *Check
	UntilPowerOff bool
	// Timeout bounds the run, from QEMU's start (DefaultTimeout if 0).
	Timeout time.Duration
	// Out, if set, gets the serial console as it comes.
	Out io.Writer
	// Artifacts, if set, is a directory for every console's log and the
	// timeline (artifacts.go).
	Artifacts string
	// TPM, if set, is the control socket of a software TPM (swtpm socket
	// --ctrl) attached to the board as its TPM 2.0 (Board.TPMDevice).
	TPM string
	// Firmware, if set, is started instead of the board's own
	// (Board.Firmware), e.g. a newer Debian build of it.
	Firmware string
	// Screendumps save the board's own display at console lines; the
	// board gets its display device (Board.Display) and QEMU a monitor
	// socket for them.
	Screendumps []*Screendump
}

// End says why a run ended.
type End string

const (
	EndExpectations End = "every expectation held"
	EndUntil        End = "the --until line came"
	EndFailed       End = "an expectation failed"
	EndPowerOff     End = "the board powered off"
	EndExited       End = "QEMU ended without the board's power-off"
	EndTimeout      End = "timeout"
	EndCancelled    End = "cancelled"
)

// A Case is the outcome of one expectation or step: a JUnit test case.
type Case struct {
	Name string
	// Console is the console it watched ("" for any).
	Console string
	Passed  bool
	// Skipped: a step after a failed one, never run.
	Skipped bool
	// Failure says why it failed, or why it was skipped.
	Failure string
	// Line is the line that held it, or that failed an ExpectNot.
	Line string
	// Time is how long it took: until the line came, or the failure.
	Time time.Duration
	// Excerpt is its console's last lines, on failure.
	Excerpt []string
}

// Result is what a run found.
type Result struct {
	Cases    []*Case
	End      End
	Duration time.Duration
	// PoweredOff: the board's power-off line came.
	PoweredOff bool
	// Screens are the pictures of the guests' displays the board printed
	// (tandem.screens=N; screens.go).
	Screens []Screen
	// Screendumps are what became of Options.Screendumps, in order.
	Screendumps []ScreendumpResult
}

// Passed reports whether every case passed.
func (r *Result) Passed() bool {
	for _, c := range r.Cases {
		if !c.Passed {
			return false
		}
	}
	return true
}

// Failed returns the cases that failed or were skipped.
func (r *Result) Failed() []*Case {
	var l []*Case
	for _, c := range r.Cases {
		if !c.Passed {
			l = append(l, c)
		}
	}
	return l
}

// ErrQEMU wraps QEMU's own failures (it could not start, or ended with an
// error before the board powered off).
var ErrQEMU = errors.New("qemu")

// Run boots opt.Image on opt.Board and watches it until it ends (End).
// The error is for what kept the run from happening or from completing
// (a missing package, QEMU's failure, an artifact that cannot be
// written); expectations that did not hold are the Result's.
func Run(ctx context.Context, opt Options) (*Result, error) {
	if opt.Firmware != "" {
		if _, err := os.Stat(opt.Firmware); err != nil {
			return nil, fmt.Errorf("firmware: %w", err)
		}
		b := *opt.Board
		b.Firmware = opt.Firmware
		opt.Board = &b
	}
	if err := opt.Board.Check(); err != nil {
		return nil, err
	}
	if len(opt.Screendumps) > 0 && opt.Board.Display == nil {
		return nil, fmt.Errorf("board %s has no display in QEMU's model of it: take no screendumps", opt.Board.Name)
	}
	if _, err := os.Stat(opt.Image); err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	arts, err := openArtifacts(opt.Artifacts)
	if err != nil {
		return nil, err
	}
	s := newSession(opt, arts)
	res, runErr := s.boot(ctx)
	if err := arts.close(s.timeline); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

// boot starts QEMU, feeds its console to the session, and ends it when
// the session is done, the timeout runs out or ctx is cancelled.
func (s *session) boot(ctx context.Context) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	stop, stopQEMU := context.WithCancel(ctx)
	defer stopQEMU()
	work, err := os.MkdirTemp("", "tandem-emulate-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	args, fixes, err := s.opt.Board.command(s.opt.Image, work, s.opt.TPM)
	if err != nil {
		return nil, err
	}
	for _, f := range fixes {
		s.event("device tree for QEMU: %s", f)
	}
	if len(s.opt.Screendumps) > 0 {
		s.qmp = &qmp{path: qmpSocket(work)}
		defer s.qmp.close()
		args = append(args, s.opt.Board.DisplayArgs(s.qmp.path)...)
	}
	q := exec.CommandContext(stop, s.opt.Board.QEMU, args...)
	q.WaitDelay = 5 * time.Second
	stdin, err := q.StdinPipe()
	if err != nil {
		return nil, err
	}
	defer stdin.Close()
	lines := NewLines(s.line)
	out := []io.Writer{lines}
	if s.opt.Out != nil {
		out = append(out, s.opt.Out)
	}
	if s.arts != nil {
		out = append(out, s.arts.serial)
	}
	var stderr bytes.Buffer
	q.Stdout = io.MultiWriter(out...)
	q.Stderr = &limitedBuffer{b: &stderr, max: 64 << 10}
	s.event("starting %s (board %s): %s", s.opt.Board.QEMU, s.opt.Board.Name, s.opt.Image)
	if err := q.Start(); err != nil {
		return nil, fmt.Errorf("%w: starting %s: %v", ErrQEMU, s.opt.Board.QEMU, err)
	}
	s.started = time.Now()
	exited := make(chan error, 1)
	go func() { exited <- q.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var end End
	var werr error
loop:
	for {
		select {
		case werr = <-exited:
			lines.Flush()
			end = s.exitEnd()
			break loop
		case <-ctx.Done():
			end = EndTimeout
			if ctx.Err() == context.Canceled {
				end = EndCancelled
			}
			break loop
		case <-s.changed:
		case <-tick.C:
		}
		if send, ok := s.pendingSend(); ok {
			if _, err := io.WriteString(stdin, send); err != nil {
				s.event("sending to the board's console: %v", err)
			}
		}
		if e, done := s.done(); done {
			end = e
			break loop
		}
	}
	// A picture asked for is taken before QEMU is stopped.
	s.waitScreendumps()
	if end != EndPowerOff && end != EndExited {
		stopQEMU()
		<-exited
		lines.Flush()
	}
	res := s.result(end)
	s.event("ended: %s", end)
	if end == EndExited && werr != nil && !s.poweredOff() {
		return res, fmt.Errorf("%w: %v: %s", ErrQEMU, werr, bytes.TrimSpace(stderr.Bytes()))
	}
	return res, nil
}

// limitedBuffer keeps the first max bytes written to it: QEMU's
// messages, for an error.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
