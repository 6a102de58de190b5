package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseUntil checks tandem.until's parsing: GUEST:REGEX pairs, and a
// one-line error naming the parameter and the fix for each malformed value.
func TestParseUntil(t *testing.T) {
	for _, tc := range []struct {
		in      string
		guests  []string
		exprs   []string
		wantErr string // substring; "" means no error
	}{
		{in: "control:TANDEM-CONTROL.*sent=[1-9]", guests: []string{"control"}, exprs: []string{"TANDEM-CONTROL.*sent=[1-9]"}},
		{in: "control:TANDEM-CONTROL.*sent=[1-9],infotainment:TANDEM-INFO.received=[1-9][0-9]*.faults=0\\s",
			guests: []string{"control", "infotainment"}, exprs: []string{"TANDEM-CONTROL.*sent=[1-9]", "TANDEM-INFO.received=[1-9][0-9]*.faults=0\\s"}},
		// Only the first colon separates: the regexp may hold more.
		{in: "a:x:y", guests: []string{"a"}, exprs: []string{"x:y"}},
		{in: "", wantErr: "tandem.until is empty: give GUEST:REGEX pairs"},
		{in: "control", wantErr: `tandem.until: "control" is not GUEST:REGEX`},
		{in: ":TANDEM", wantErr: `tandem.until: ":TANDEM" is not GUEST:REGEX`},
		{in: "control:", wantErr: `tandem.until: "control:" is not GUEST:REGEX`},
		{in: "control:x,", wantErr: `tandem.until: "" is not GUEST:REGEX`},
		{in: "control:x,control:y", wantErr: "names guest control twice"},
		{in: "control:sent=[1-", wantErr: "tandem.until: guest control: error parsing regexp"},
	} {
		ms, err := parseUntil(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parseUntil(%q) = %v; want an error containing %q", tc.in, err, tc.wantErr)
			} else if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "kernel command line tandem.until") {
				t.Errorf("parseUntil(%q) error %q: want one line naming the parameter", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseUntil(%q): %v", tc.in, err)
			continue
		}
		var guests, exprs []string
		for _, m := range ms {
			guests, exprs = append(guests, m.guest), append(exprs, m.re.String())
		}
		if !slices.Equal(guests, tc.guests) || !slices.Equal(exprs, tc.exprs) {
			t.Errorf("parseUntil(%q) = %q %q; want %q %q", tc.in, guests, exprs, tc.guests, tc.exprs)
		}
	}
}

// TestCheckGuests checks that a marker for a guest the manifest lacks is
// an error naming the guests it has.
func TestCheckGuests(t *testing.T) {
	ms, _ := parseUntil("control:x,infotainment:y")
	if err := checkGuests(ms, "system.yaml", []string{"control", "infotainment", "other"}); err != nil {
		t.Errorf("checkGuests: %v", err)
	}
	err := checkGuests(ms, "system.yaml", []string{"control", "radio"})
	if err == nil || !strings.Contains(err.Error(), "names guest infotainment, which system.yaml does not have: name one of control, radio") {
		t.Errorf("checkGuests = %v; want an error naming infotainment and the manifest's guests", err)
	}
}

// The demo's markers, as internal/cmd/demo passes them.
const (
	controlMarker = `TANDEM-CONTROL.*sent=[1-9]`
	infoMarker    = `TANDEM-INFO.received=[1-9][0-9]*.faults=0.crc=`
)

// TestLogMatches checks matching a regexp against a guest's console log
// line by line, with the report lines the demo guests print.
func TestLogMatches(t *testing.T) {
	for _, tc := range []struct {
		name, expr, log string
		want            bool
	}{
		{"empty log", controlMarker, "", false},
		{"control sent", controlMarker,
			"TANDEM-CONTROL probe=4:5000 connected\r\nTANDEM-CONTROL misses=0 p50-us=61 p99-us=220 max-us=900 cycles=1000 sent=100 dropped=0 connected=true\r\n", true},
		{"control sent=0", controlMarker,
			"TANDEM-CONTROL misses=3 p50-us=61 p99-us=220 max-us=900 cycles=1000 sent=0 dropped=100 connected=false\n", false},
		{"last line without newline", controlMarker, "boot\nTANDEM-CONTROL misses=0 cycles=9 sent=7", true},
		// A match must lie within one line.
		{"across lines", controlMarker, "TANDEM-CONTROL misses=0\nsent=5\n", false},
		{"info received", infoMarker,
			"TANDEM-INFO listening port=5000\nTANDEM-INFO received=250 faults=0 crc=0 repeated=0 reordered=0 lost=0 connections=1 seq=249 speed=50.0 rpm=2000 gear=3\n", true},
		{"info nothing received", infoMarker,
			"TANDEM-INFO received=0 faults=0 crc=0 repeated=0 reordered=0 lost=0 connections=0 seq=0 speed=0.0 rpm=0 gear=0\n", false},
		{"info faults", infoMarker,
			"TANDEM-INFO received=250 faults=2 crc=2 repeated=0 reordered=0 lost=0 connections=1 seq=249 speed=50.0 rpm=2000 gear=3\n", false},
		{"info faults=0 then more digits", infoMarker, "TANDEM-INFO received=250 faults=01 crc=0\n", false},
		// The VMM's own last words are in the log too; they are no report.
		{"vmm line", controlMarker, "tandem: guest ended: watchdog: sent=1\n", false},
	} {
		m, err := parseUntil("g:" + tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := logMatches([]byte(tc.log), m[0].re); got != tc.want {
			t.Errorf("%s: logMatches(%q, %s) = %v; want %v", tc.name, tc.log, tc.expr, got, tc.want)
		}
	}
}

// TestCheckMarkers checks polling: a marker is reached once its guest's
// log matches, stays reached when its line leaves the log, and a log that
// cannot be read (the supervisor not serving yet) leaves it pending.
func TestCheckMarkers(t *testing.T) {
	ms, err := parseUntil("control:" + controlMarker + ",infotainment:" + infoMarker)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]string{}
	readErr := errors.New("control socket /run/tandem/control: no such file")
	fetch := func(guest string) ([]byte, error) {
		if logs == nil {
			return nil, readErr
		}
		return []byte(logs[guest]), nil
	}
	steps := []struct {
		logs    map[string]string
		want    bool
		reached []string
	}{
		{nil, false, nil},
		{map[string]string{"control": "TANDEM-CONTROL misses=0 cycles=1000 sent=0 dropped=100\n"}, false, nil},
		{map[string]string{"control": "TANDEM-CONTROL misses=0 cycles=2000 sent=100 dropped=100\n", "infotainment": "TANDEM-INFO listening port=5000\n"}, false, []string{"control"}},
		{map[string]string{"control": "(ring rolled over)\n", "infotainment": "TANDEM-INFO received=90 faults=0 crc=0\n"}, true, []string{"control", "infotainment"}},
	}
	for i, s := range steps {
		logs = s.logs
		if got := checkMarkers(ms, fetch, time.Duration(i)*time.Second); got != s.want {
			t.Errorf("step %d: checkMarkers = %v; want %v", i, got, s.want)
		}
		var reached []string
		for _, m := range ms {
			if m.reached {
				reached = append(reached, m.guest)
			}
		}
		if !slices.Equal(reached, s.reached) {
			t.Errorf("step %d: reached %q; want %q", i, reached, s.reached)
		}
	}
	if ms[0].at != 2*time.Second || ms[1].at != 3*time.Second {
		t.Errorf("reached at %v, %v; want 2s, 3s", ms[0].at, ms[1].at)
	}
}

// TestLastLines checks the tail init prints for a marker that never came.
func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		log  string
		n    int
		want []string
	}{
		{"", 10, nil},
		{"\r\n", 10, nil},
		{"a\r\nb\r\n", 10, []string{"a", "b"}},
		{"a\nb\nc\nd", 2, []string{"c", "d"}},
		{"a\nb\nc\n\n\n", 2, []string{"b", "c"}},
	} {
		if got := lastLines([]byte(tc.log), tc.n); !slices.Equal(got, tc.want) {
			t.Errorf("lastLines(%q, %d) = %q; want %q", tc.log, tc.n, got, tc.want)
		}
	}
}

// writes records each Write on its own.
type writes []string

func (w *writes) Write(p []byte) (int, error) { *w = append(*w, string(p)); return len(p), nil }

// TestReportMissing checks what init prints, in one write, for a marker
// that never came: the marker, and the last 10 lines of its guest's log.
func TestReportMissing(t *testing.T) {
	ms, _ := parseUntil("control:" + controlMarker)
	var log strings.Builder
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&log, "line %d\r\n", i)
	}
	for _, tc := range []struct {
		name, log string
		err       error
		want      string
	}{
		{"tail", log.String(), nil, "tandem init: tandem.until: no line of control matched TANDEM-CONTROL.*sent=[1-9] within tandem.runfor=40s; its last 10 lines:\n" +
			"tandem init:   control | line 3\n" + "tandem init:   control | line 4\n" + "tandem init:   control | line 5\n" +
			"tandem init:   control | line 6\n" + "tandem init:   control | line 7\n" + "tandem init:   control | line 8\n" +
			"tandem init:   control | line 9\n" + "tandem init:   control | line 10\n" + "tandem init:   control | line 11\n" +
			"tandem init:   control | line 12\n"},
		{"silent", "", nil, "tandem init: tandem.until: no line of control matched TANDEM-CONTROL.*sent=[1-9] within tandem.runfor=40s: its console printed nothing\n"},
		{"unreadable", "", errors.New("no guest"), "tandem init: tandem.until: no line of control matched TANDEM-CONTROL.*sent=[1-9] within tandem.runfor=40s, and its log cannot be read: no guest\n"},
	} {
		var w writes
		reportMissing(&w, ms[0], 40*time.Second, func(string) ([]byte, error) { return []byte(tc.log), tc.err })
		if len(w) != 1 || w[0] != tc.want {
			t.Errorf("%s: reportMissing wrote %q; want one write of %q", tc.name, w, tc.want)
		}
	}
}
