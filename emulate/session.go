package emulate

import (
	"fmt"
	"strings"
	"sync"
	"time"
)

// milestones are the board's boot stages as its console shows them, for
// the timeline: U-Boot's, then the boot script's and the host's
// (images/bootscript.go, cmd/tandem/init.go).
var milestones = []struct{ match, name string }{
	{"Found U-Boot script", "U-Boot found the boot script"},
	{"with script", "U-Boot found the boot script"}, // bootflows: trixie's U-Boot
	{"Tandem: starting the host", "the boot script starts the host kernel"},
	{"tandem init: data partition", "tandem init mounted the data partition"},
	{"tandem init: starting tandem system", "tandem init starts tandem system"},
}

// watch is an expectation's state.
type watch struct {
	c      *Check
	held   bool // a line matched (for Not: the run failed)
	at     time.Duration
	line   string
	tail   []string // for Not: the console's last lines when it matched
	within time.Duration
	// A command step's: the line typed, whether it was typed, and
	// whether tandem init has shown it ran it (its answer comes next).
	cmd        string
	sent, echo bool
	answer     []string
}

// session is one run's state: the consoles' tails, the expectations and
// the steps. Lines come from QEMU's output copier; the run's loop asks
// done and pendingSend.
type session struct {
	opt     Options
	arts    *artifacts
	started time.Time     // QEMU's start
	changed chan struct{} // a line came that may have changed the state

	mu         sync.Mutex // protects the fields below
	expects    []*watch
	steps      []*watch // a send step's watch has a nil Check
	step       int      // the step under way; len(steps) once all are done
	stepStart  time.Duration
	stepFailed string
	failed     bool // an expect-not matched, or a step failed
	until      *watch
	power      bool
	reached    map[string]bool     // milestones and consoles seen
	tails      map[string][]string // console ("": all of them): its last lines, as shown
	timeline   []string
	screens    screens
	dumps      []*dumpState

	qmp         *qmp           // QEMU's monitor, with Screendumps
	dumping     sync.WaitGroup // screendumps under way
	dumpsClosed bool           // the run ends: no more screendumps start
}

// dumpState is a Screendump's progress.
type dumpState struct {
	d    *Screendump
	res  ScreendumpResult
	took bool // its line came: the picture is taken or failed
}

func newSession(opt Options, arts *artifacts) *session {
	s := &session{opt: opt, arts: arts, started: time.Now(), changed: make(chan struct{}, 1),
		reached: map[string]bool{}, tails: map[string][]string{}}
	for _, c := range opt.Expect {
		s.expects = append(s.expects, &watch{c: c})
	}
	for _, st := range opt.Steps {
		w := &watch{c: st.Wait, within: st.Within, cmd: st.Command}
		if w.cmd != "" && w.within == 0 {
			w.within = DefaultCommandWithin
		}
		s.steps = append(s.steps, w)
	}
	if opt.Until != nil {
		s.until = &watch{c: opt.Until}
	}
	for _, d := range opt.Screendumps {
		s.dumps = append(s.dumps, &dumpState{d: d, res: ScreendumpResult{File: d.File, Err: fmt.Sprintf("no line of %s matched %s", consoleName(d.At.Console), d.At.Re)}})
	}
	return s
}

func (s *session) since() time.Duration { return time.Since(s.started) }

// event adds a line to the timeline.
func (s *session) event(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.eventLocked(format, args...)
}

func (s *session) eventLocked(format string, args ...any) {
	s.timeline = append(s.timeline, fmt.Sprintf("%8.1fs  %s", s.since().Seconds(), fmt.Sprintf(format, args...)))
}

// line takes one line of the serial console.
func (s *session) line(l string) {
	console, text := SplitLine(l, s.opt.Guests)
	vmm := console != BoardConsole && vmmLine(text)
	s.arts.line(console, text)
	s.mu.Lock()
	defer s.mu.Unlock()
	if console == BoardConsole {
		done, errs := len(s.screens.done), len(s.screens.errs)
		if s.screens.line(text) {
			// A picture's lines are no console's to show or check.
			for _, sc := range s.screens.done[done:] {
				s.eventLocked("screen %s %d/%d: %d bytes of PNG", sc.Guest, sc.Shot, sc.Of, len(sc.PNG))
				s.arts.screen(sc)
			}
			for _, e := range s.screens.errs[errs:] {
				s.eventLocked("%s", e)
			}
			return
		}
	}
	at := s.since()
	t := s.keep(console, l)
	s.keep("", l)
	s.milestone(console, l)
	for _, w := range s.expects {
		if !w.held && w.c.matches(console, text, vmm) {
			w.held, w.at, w.line = true, at, l
			if w.c.Not {
				w.tail = append([]string(nil), t...)
				s.failed = true
				s.eventLocked("expect-not %s: FAILED: %s", w.c.Spec, l)
			} else {
				s.eventLocked("expect %s: held: %s", w.c.Spec, l)
			}
		}
	}
	if s.step < len(s.steps) && !s.failed {
		w := s.steps[s.step]
		switch {
		case w.c != nil && w.c.matches(console, text, vmm):
			w.held, w.at, w.line = true, at, l
			s.eventLocked("step %d (%s): done: %s", s.step+1, s.opt.Steps[s.step].Name, l)
			s.step, s.stepStart = s.step+1, at
		case w.cmd != "" && w.sent && console == BoardConsole:
			s.commandLine(w, text, at)
		}
	}
	for _, d := range s.dumps {
		if !d.took && !s.dumpsClosed && d.d.At.matches(console, text, vmm) {
			d.took, d.res.Line, d.res.At, d.res.Err = true, l, at, ""
			s.dumping.Add(1)
			go s.screendump(d)
		}
	}
	if s.until != nil && !s.until.held && s.until.c.matches(console, text, vmm) {
		s.until.held, s.until.at, s.until.line = true, at, l
		s.eventLocked("until %s: %s", s.until.c.Spec, l)
	}
	if console == BoardConsole && strings.Contains(l, s.opt.Board.PowerOff) && !s.power {
		s.power = true
		s.eventLocked("the board powers off")
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// milestone adds the first line of each boot stage and of each guest's
// console to the timeline.
func (s *session) milestone(console, l string) {
	if console != BoardConsole {
		if !s.reached["console "+console] {
			s.reached["console "+console] = true
			s.eventLocked("%s: its console's first line", console)
		}
		return
	}
	for _, m := range milestones {
		if !s.reached[m.match] && strings.Contains(l, m.match) {
			s.reached[m.match] = true
			s.eventLocked("%s", m.name)
		}
	}
}

// commandLine takes a board line while a command step waits: first
// tandem init's line that it runs the command, then its answer, then its
// status, which says whether it failed.
func (s *session) commandLine(w *watch, text string, at time.Duration) {
	text = strings.TrimRight(text, "\r")
	name := s.opt.Steps[s.step].Name
	switch {
	case !w.echo:
		if text == commandEcho+w.cmd {
			w.echo, w.line = true, text
		}
		return
	case strings.HasPrefix(text, commandAnswer):
		if w.line == commandEcho+w.cmd {
			w.line = text // the answer's first line shows in the case
		}
		w.answer = append(w.answer, strings.TrimPrefix(text, commandAnswer))
		return
	case !strings.HasPrefix(text, commandStatus):
		return // another line of the board's, printed meanwhile
	case strings.TrimPrefix(text, commandStatus) != "0":
		s.failed = true
		s.stepFailed = fmt.Sprintf("the board ran %q and it failed (%s): %s", w.cmd, text, strings.Join(w.answer, "; "))
		s.eventLocked("step %d (%s): FAILED: %s", s.step+1, name, s.stepFailed)
		return
	}
	w.held, w.at = true, at
	s.eventLocked("step %d (%s): done: %s", s.step+1, name, strings.Join(w.answer, "; "))
	s.step, s.stepStart = s.step+1, at
}

// pendingSend returns the text of a send or command step that is due:
// a send step is then done, a command step waits for the board to run
// it.
func (s *session) pendingSend() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed || s.step >= len(s.steps) || s.steps[s.step].c != nil {
		return "", false
	}
	if w := s.steps[s.step]; w.cmd != "" {
		if w.sent {
			return "", false
		}
		w.sent, s.stepStart = true, s.since()
		s.eventLocked("step %d (%s): typed on the board's console", s.step+1, s.opt.Steps[s.step].Name)
		return w.cmd + "\n", true
	}
	st := s.opt.Steps[s.step]
	w := s.steps[s.step]
	w.held, w.at = true, s.since()
	s.eventLocked("step %d (%s): sent", s.step+1, st.Name)
	s.step, s.stepStart = s.step+1, w.at
	return st.Send, true
}

// done says whether the run may end, and why.
func (s *session) done() (End, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.step < len(s.steps) && !s.failed {
		w := s.steps[s.step]
		switch {
		case w.c != nil && w.within > 0 && s.since()-s.stepStart > w.within:
			s.failed = true
			s.stepFailed = fmt.Sprintf("no line of %s matched %s within %v", consoleName(w.c.Console), w.c.Re, w.within)
			s.eventLocked("step %d (%s): FAILED: %s", s.step+1, s.opt.Steps[s.step].Name, s.stepFailed)
		case w.cmd != "" && w.sent && s.since()-s.stepStart > w.within:
			s.failed = true
			s.stepFailed = fmt.Sprintf("the board did not run %q within %v: is the image's host command line without %s (tandem image build --cmdline %s)?", w.cmd, w.within, CommandsParam, CommandsParam)
			if w.echo {
				s.stepFailed = fmt.Sprintf("the board ran %q but gave no answer within %v", w.cmd, w.within)
			}
			s.eventLocked("step %d (%s): FAILED: %s", s.step+1, s.opt.Steps[s.step].Name, s.stepFailed)
		}
	}
	switch {
	case s.failed:
		return EndFailed, true
	case s.until != nil:
		return EndUntil, s.until.held
	case s.opt.UntilPowerOff:
		return "", false
	}
	waiting := s.step < len(s.steps)
	any := len(s.steps) > 0
	for _, w := range s.expects {
		if !w.c.Not {
			any = true
			waiting = waiting || !w.held
		}
	}
	return EndExpectations, any && !waiting
}

func (s *session) poweredOff() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.power
}

// exitEnd is the run's end when QEMU ended by itself.
func (s *session) exitEnd() End {
	if s.poweredOff() {
		return EndPowerOff
	}
	return EndExited
}

func consoleName(c string) string {
	if c == "" {
		return "any console"
	}
	return c
}

// keep adds l to the tail of console ("": the whole serial console) and
// returns that tail.
func (s *session) keep(console, l string) []string {
	t := append(s.tails[console], l)
	if len(t) > TailLines {
		t = append(t[:0:0], t[len(t)-TailLines:]...)
	}
	s.tails[console] = t
	return t
}

// tail returns a console's last lines ("": the whole serial console's).
func (s *session) tail(console string) []string {
	return append([]string(nil), s.tails[console]...)
}

// result turns the state into test cases, once the run has ended.
func (s *session) result(end End) *Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.since()
	res := &Result{End: end, Duration: total, PoweredOff: s.power, Screens: s.screens.done}
	for _, d := range s.dumps {
		res.Screendumps = append(res.Screendumps, d.res)
	}
	ended := fmt.Sprintf("within %.1fs (the run ended: %s)", total.Seconds(), end)
	for _, w := range s.expects {
		c := &Case{Console: w.c.Console, Line: w.line}
		switch {
		case w.c.Not && w.held:
			c.Name, c.Time, c.Excerpt = "expect-not "+w.c.Spec, w.at, w.tail
			c.Failure = fmt.Sprintf("%s printed a line matching %s at %.1fs: %s", consoleName(w.c.Console), w.c.Re, w.at.Seconds(), w.line)
		case w.c.Not:
			c.Name, c.Time, c.Passed = "expect-not "+w.c.Spec, total, true
		case w.held:
			c.Name, c.Time, c.Passed = "expect "+w.c.Spec, w.at, true
		default:
			c.Name, c.Time, c.Excerpt = "expect "+w.c.Spec, total, s.tail(w.c.Console)
			c.Failure = fmt.Sprintf("no line of %s matched %s %s", consoleName(w.c.Console), w.c.Re, ended)
		}
		res.Cases = append(res.Cases, c)
	}
	for i, w := range s.steps {
		st := s.opt.Steps[i]
		c := &Case{Name: fmt.Sprintf("step %d: %s", i+1, st.Name), Line: w.line}
		if w.c != nil {
			c.Console = w.c.Console
		}
		if w.cmd != "" {
			c.Console = BoardConsole
		}
		switch {
		case i < s.step:
			c.Passed, c.Time = true, w.at
		case i == s.step && (w.c != nil || w.cmd != ""):
			c.Time, c.Excerpt = total, s.tail(c.Console)
			c.Failure = s.stepFailed
			if c.Failure == "" {
				c.Failure = fmt.Sprintf("no line of %s matched %s %s", consoleName(w.c.Console), w.c.Re, ended)
				if w.cmd != "" {
					c.Failure = fmt.Sprintf("the board did not run %q %s", w.cmd, ended)
				}
			}
		default:
			c.Skipped = true
			c.Failure = fmt.Sprintf("not run: the run ended (%s) before step %d", end, s.step+1)
		}
		res.Cases = append(res.Cases, c)
	}
	switch {
	case s.until != nil:
		c := &Case{Name: "until " + s.until.c.Spec, Console: s.until.c.Console, Passed: s.until.held, Time: s.until.at, Line: s.until.line}
		if !c.Passed {
			c.Time, c.Excerpt = total, s.tail(s.until.c.Console)
			c.Failure = fmt.Sprintf("no line of %s matched %s %s", consoleName(s.until.c.Console), s.until.c.Re, ended)
		}
		res.Cases = append(res.Cases, c)
	case s.opt.UntilPowerOff:
		c := &Case{Name: "until " + PowerOff, Console: BoardConsole, Passed: s.power, Time: total}
		if !c.Passed {
			c.Excerpt = s.tail(BoardConsole)
			c.Failure = fmt.Sprintf("the board did not power off %s", ended)
		}
		res.Cases = append(res.Cases, c)
	}
	if end == EndExited {
		res.Cases = append(res.Cases, &Case{Name: "board: no reset or crash", Console: BoardConsole, Time: total, Excerpt: s.tail(BoardConsole),
			Failure: "QEMU ended without the board's power-off line: the board reset or crashed"})
	}
	return res
}

// waitScreendumps lets no more screendumps start and waits for those
// under way.
func (s *session) waitScreendumps() {
	s.mu.Lock()
	s.dumpsClosed = true
	s.mu.Unlock()
	s.dumping.Wait()
}

// screendump takes d's picture, off the console's goroutine: the board's
// output must not wait on QEMU's monitor.
func (s *session) screendump(d *dumpState) {
	defer s.dumping.Done()
	err := s.qmp.screendump(d.d.File)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		d.res.Err = err.Error()
		s.eventLocked("screendump %s: FAILED: %v", d.d.File, err)
		return
	}
	s.eventLocked("screendump %s: the board's display at %s", d.d.File, d.res.Line)
}
