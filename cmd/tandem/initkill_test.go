package main

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSince finds what a guest's log holds beyond an earlier read of it,
// also once the supervisor's ring has dropped the log's start.
func TestSince(t *testing.T) {
	long := strings.Repeat("x", 300)
	for _, tt := range []struct{ name, before, now, want string }{
		{"grown", "a\nb\n", "a\nb\nc\n", "c\n"},
		{"unchanged", "a\nb\n", "a\nb\n", ""},
		{"empty before", "", "a\n", "a\n"},
		{"ring dropped the start", "old\n" + long + "end\n", long + "end\nnew\n", "new\n"},
		{"nothing in common", "a\n", "zzz\n", "zzz\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(since([]byte(tt.before), []byte(tt.now))); got != tt.want {
				t.Errorf("since(%q, %q) = %q, want %q", tt.before, tt.now, got, tt.want)
			}
		})
	}
}

// TestKillAndWait drives tandem.kill against a scripted supervisor: the
// guest is killed once after the first board-screen line, init waits for
// another VMM to run it and then for its marker in what it printed since
// (neither the old reports nor the killed VMM's last one count), then
// prints the second; without a marker for the guest, or when the marker
// never comes again, it says so.
func TestKillAndWait(t *testing.T) {
	re := regexp.MustCompile(`TANDEM-CONTROL.*sent=[1-9]`)
	for _, tt := range []struct {
		name    string
		markers []*marker
		after   []string // the log's new lines, one more per read after the kill
		want    []string
		kills   int
	}{
		{"back", []*marker{{guest: "control", re: re}}, []string{"booting\n", "TANDEM-CONTROL sent=0\n", "TANDEM-CONTROL sent=3\n"},
			[]string{"tandem init: board screen 1: every guest runs", "tandem init: tandem.kill: killed control's VMM (pid 7); the supervisor restarts it by its policy",
				"tandem init: tandem.kill: control is back: its marker came again", "tandem init: board screen 2: control restarted"}, 1},
		{"never back", []*marker{{guest: "control", re: re}}, []string{"booting\n"},
			[]string{"tandem init: board screen 1", "did not come again before tandem.runfor's end"}, 1},
		{"no marker", []*marker{{guest: "infotainment", re: re}}, nil,
			[]string{"tandem init: tandem.kill=control: no tandem.until marker for control"}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			log := []byte("TANDEM-CONTROL sent=5\n")
			kills, reads, pss := 0, 0, 0
			logs := func(g string) ([]byte, error) {
				if g != "control" {
					return nil, fmt.Errorf("logs %s", g)
				}
				if pss > 0 && reads < len(tt.after) {
					log = append(log, tt.after[reads]...)
					reads++
				}
				return log, nil
			}
			// tandem ps: pid 7 runs; after the kill the supervisor
			// restarts it (the killed VMM's last report still arriving
			// meanwhile), then pid 9 runs.
			control := func(cmd string) (string, error) {
				const head = "NAME ROLE STATE PID UPTIME RESTARTS CPU RSS LAST END\n"
				switch {
				case cmd == "ps" && kills == 0:
					return head + "control control running 7 10s 0 1s 5M -\n", nil
				case cmd == "ps" && pss == 0:
					pss++
					log = append(log, "TANDEM-CONTROL sent=6\n"...)
					return head + "control control restarting 0 0s 1 1s 0M killed\n", nil
				case cmd == "ps":
					return head + "control control running 9 0s 1 0s 1M killed\n", nil
				case cmd == "kill control":
					kills++
					return "killed control's VMM (pid 7)\n", nil
				}
				return "", fmt.Errorf("unexpected command %q", cmd)
			}
			// The board's display: black, then a picture that changes.
			frame := 0
			screen := func() ([]byte, error) {
				frame++
				if frame == 1 {
					return make([]byte, 8), nil
				}
				return []byte{0, 0, 0, byte(frame), 0, 0, 0, 0}, nil
			}
			var out bytes.Buffer
			killAndWait("control", tt.markers, time.Now().Add(time.Second), time.Millisecond, screen, logs, control, &out)
			if kills != tt.kills {
				t.Errorf("killed %d times, want %d", kills, tt.kills)
			}
			text := out.String()
			last := -1
			for _, w := range tt.want {
				i := strings.Index(text, w)
				if i < 0 || i < last {
					t.Errorf("output lacks %q in order:\n%s", w, text)
				}
				last = i
			}
			if tt.name == "back" && reads != len(tt.after) {
				t.Errorf("back after %d of the new run's lines, want at its marker (line %d): an old line counted", reads, len(tt.after))
			}
			if tt.name != "back" && strings.Contains(text, "board screen 2") {
				t.Errorf("output has the second board screen though the guest is not back:\n%s", text)
			}
		})
	}
}

// TestLastMatch: the other guests' markers are compared by their last
// matching line, so that a stale report repeated after the kill is not
// taken for a new one.
func TestLastMatch(t *testing.T) {
	re := regexp.MustCompile(`TANDEM-INFO.received=[1-9][0-9]*.faults=0`)
	for _, tt := range []struct{ log, want string }{
		{"TANDEM-INFO received=5 faults=0\r\nTANDEM-INFO received=9 faults=0\r\nother\r\n", "TANDEM-INFO received=9 faults=0"},
		{"TANDEM-INFO received=0 faults=0\n", ""},
		{"", ""},
		{"TANDEM-INFO received=7 faults=0", "TANDEM-INFO received=7 faults=0"},
	} {
		if got := lastMatch([]byte(tt.log), re); got != tt.want {
			t.Errorf("lastMatch(%q) = %q, want %q", tt.log, got, tt.want)
		}
	}
}
