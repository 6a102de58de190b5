package emulate

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// A Check is one thing the run watches the consoles for.
type Check struct {
	// Spec is the check as written ("control: TANDEM-CONTROL"); the
	// JUnit test case is named after it.
	Spec string
	// Console is BoardConsole, a guest's name, or "" for any console.
	Console string
	Re      *regexp.Regexp
	// Not: the run fails if a line matches (--expect-not); else it
	// fails unless one does (--expect).
	Not bool
}

// PowerOff is --until's value for running until the board powers off.
const PowerOff = "poweroff"

// ParseExpect parses --expect's CONSOLE: REGEX, CONSOLE being "board", a
// guest's name or * (any console). flag names the option in errors.
func ParseExpect(flag, s string) (*Check, error) {
	console, expr, ok := splitConsole(s)
	if !ok {
		return nil, fmt.Errorf("%s %q: want CONSOLE: REGEX, CONSOLE a guest's name, %s or %s (any), e.g. %s 'control: TANDEM-CONTROL'", flag, s, BoardConsole, AnyConsole, flag)
	}
	re, err := compile(flag, s, expr)
	if err != nil {
		return nil, err
	}
	return &Check{Spec: s, Console: console, Re: re}, nil
}

// ParseExpectNot parses --expect-not's [CONSOLE: ]REGEX: without a
// console, a line of any console fails the run.
func ParseExpectNot(flag, s string) (*Check, error) {
	console, expr, ok := splitConsole(s)
	if !ok {
		console, expr = "", s
	}
	re, err := compile(flag, s, expr)
	if err != nil {
		return nil, err
	}
	return &Check{Spec: s, Console: console, Re: re, Not: true}, nil
}

// AnyConsole, as CONSOLE, is every console: the board's and the guests'.
const AnyConsole = "*"

// splitConsole splits CONSOLE: REGEX. CONSOLE has a guest name's
// characters, or is AnyConsole (console ""), so a regexp that merely
// holds a colon ("Kernel panic - not syncing: x") stays whole.
func splitConsole(s string) (console, expr string, ok bool) {
	console, expr, ok = strings.Cut(s, ":")
	expr = strings.TrimSpace(expr)
	switch {
	case !ok || expr == "":
		return "", "", false
	case console == AnyConsole:
		return "", expr, true
	case validGuestName(console):
		return console, expr, true
	}
	return "", "", false
}

func compile(flag, s, expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %v: fix the regexp (Go's syntax)", flag, s, err)
	}
	return re, nil
}

// matches reports whether a line of console (its text without the
// guest's prefix) satisfies c's pattern; vmm says the line is the VMM's
// own on a guest's console, which only ExpectNot sees.
func (c *Check) matches(console, text string, vmm bool) bool {
	if c.Console != "" && c.Console != console {
		return false
	}
	if vmm && !c.Not {
		return false
	}
	return c.Re.MatchString(text)
}

// CheckConsoles reports a check naming a console the image does not
// have; guests nil (the manifest unread) accepts any name.
func CheckConsoles(flag string, checks []*Check, guests []string) error {
	if guests == nil {
		return nil
	}
	for _, c := range checks {
		if c.Console == "" || c.Console == BoardConsole {
			continue
		}
		found := false
		for _, g := range guests {
			found = found || g == c.Console
		}
		if !found {
			return fmt.Errorf("%s %q: the image's manifest has no guest %s: name one of %s, or %s", flag, c.Spec, c.Console, strings.Join(guests, ", "), BoardConsole)
		}
	}
	return nil
}

// A Step is one step of a test file, run in order.
type Step struct {
	// Name is the step's JUnit test case.
	Name string
	// Wait, if set, is a line to wait for on its console, from the end
	// of the step before; Within bounds the wait (0: the run's timeout).
	Wait   *Check
	Within time.Duration
	// Send, if Wait is nil, is typed on the board's console.
	Send string
	// Command, if set, is a console command line (tandem ps, tandem
	// stop NAME, …: cmd/tandem/consolecmd.go) typed on the board's
	// console; the step holds once tandem init has run it ("tandem init:
	// $ COMMAND") and fails if its answer is an error, or if it was not
	// run within Within (DefaultCommandWithin if 0).
	Command string
	// Guest is the guest a command names ("" for none).
	Guest string
}

// CommandsParam turns the board's console commands on, on the host
// kernel's command line.
const CommandsParam = "tandem.commands=1"

// DefaultCommandWithin bounds a command step that gives no within: the
// board's init answers at once when console commands are on.
const DefaultCommandWithin = time.Minute

// commandEcho and commandAnswer start the lines tandem init prints for a
// console command: the command, then each line of its answer.
const (
	commandEcho   = "tandem init: $ "
	commandAnswer = "tandem init: > "
)
