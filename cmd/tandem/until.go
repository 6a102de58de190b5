package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// untilExample is what tandem.until's error messages show.
const untilExample = "tandem.until=control:TANDEM-CONTROL.*sent=[1-9]"

// marker is one GUEST:REGEX pair of tandem.until: the system has reached
// it once a line of the guest's console log matches the regexp.
type marker struct {
	guest string
	re    *regexp.Regexp
	// reached is set once a line matched, at after system start; a line
	// that later leaves the log's ring does not undo it.
	reached bool
	at      time.Duration
}

// parseUntil parses tandem.until's value: comma-separated GUEST:REGEX
// pairs, one per guest. The regexp is Go's syntax and, the kernel command
// line being split at spaces and the list at commas, holds neither (. or
// \s match a space).
func parseUntil(v string) ([]*marker, error) {
	if v == "" {
		return nil, fmt.Errorf("kernel command line tandem.until is empty: give GUEST:REGEX pairs separated by commas, e.g. %s", untilExample)
	}
	var ms []*marker
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		guest, expr, ok := strings.Cut(item, ":")
		if !ok || guest == "" || expr == "" {
			return nil, fmt.Errorf("kernel command line tandem.until: %q is not GUEST:REGEX: write the guest's name, a colon and a regexp, pairs separated by commas, e.g. %s", item, untilExample)
		}
		if seen[guest] {
			return nil, fmt.Errorf("kernel command line tandem.until names guest %s twice: give one regexp per guest (alternatives go in one regexp, a|b)", guest)
		}
		seen[guest] = true
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("kernel command line tandem.until: guest %s: %v: fix the regexp (Go syntax, no spaces or commas; . or \\s for a space)", guest, err)
		}
		ms = append(ms, &marker{guest: guest, re: re})
	}
	return ms, nil
}

// checkGuests reports a marker naming a guest the manifest lacks.
func checkGuests(ms []*marker, manifest string, guests []string) error {
	for _, m := range ms {
		found := false
		for _, g := range guests {
			found = found || g == m.guest
		}
		if !found {
			return fmt.Errorf("kernel command line tandem.until names guest %s, which %s does not have: name one of %s", m.guest, manifest, strings.Join(guests, ", "))
		}
	}
	return nil
}

// logMatches reports whether a line of log matches re.
func logMatches(log []byte, re *regexp.Regexp) bool {
	for _, l := range logLines(log) {
		if re.MatchString(l) {
			return true
		}
	}
	return false
}

// logLines splits a console log into lines without their line endings
// (serial consoles end lines with \r\n); a last line without its newline
// counts.
func logLines(log []byte) []string {
	var lines []string
	for _, l := range bytes.Split(bytes.TrimRight(log, "\r\n"), []byte("\n")) {
		lines = append(lines, string(bytes.TrimRight(l, "\r")))
	}
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	return lines
}

// lastLines returns the last n lines of log.
func lastLines(log []byte, n int) []string {
	l := logLines(log)
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
}

// checkMarkers matches each marker not yet reached against its guest's
// log (logs fetches it; a guest whose log cannot be read yet stays
// pending), marking those reached at at, and reports whether all are.
func checkMarkers(ms []*marker, logs func(guest string) ([]byte, error), at time.Duration) bool {
	all := true
	for _, m := range ms {
		if m.reached {
			continue
		}
		if log, err := logs(m.guest); err == nil && logMatches(log, m.re) {
			m.reached, m.at = true, at
			continue
		}
		all = false
	}
	return all
}
