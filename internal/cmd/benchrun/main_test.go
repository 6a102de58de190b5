package main

import (
	"strings"
	"testing"
	"time"
)

// TestParseSmaps: the mappings of exactly the guest's size are left out;
// the others' resident memory is the overhead, its file-backed part apart.
func TestParseSmaps(t *testing.T) {
	smaps := `00400000-00865000 r-xp 00000000 00:1f 12 /tandem
Size:               4500 kB
Rss:                1200 kB
7f0000000000-7f0010000000 rw-p 00000000 00:00 0 
Size:             262144 kB
Rss:               60000 kB
7f0010000000-7f0010100000 rw-p 00000000 00:00 0 
Size:               1024 kB
Rss:                 300 kB
7ffc3e33a000-7ffc3e35b000 rw-p 00000000 00:00 0                          [stack]
Rss:                  12 kB
`
	tests := []struct {
		name            string
		guest           uint64
		wantRSS, wantFS uint64 // KiB
	}{
		{"256 MiB guest", 256 << 20, 1200 + 300 + 12, 1200},
		{"no mapping of the guest's size", 512 << 20, 1200 + 60000 + 300 + 12, 1200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := parseSmaps(smaps, tt.guest)
			if err != nil || u.rss>>10 != tt.wantRSS || u.file>>10 != tt.wantFS {
				t.Errorf("parseSmaps() = %+v, %v, want rss %d KiB, file %d KiB", u, err, tt.wantRSS, tt.wantFS)
			}
		})
	}
	if _, err := parseSmaps("zz-00 rw-p 0 0 0\n", 1); err == nil || !strings.Contains(err.Error(), "bad mapping") {
		t.Errorf("parseSmaps(a bad address) = %v, want an error", err)
	}
}

// TestRun: the marker's time and the command's status are reported, and
// only the echoed lines pass.
func TestRun(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-marker", "ready", "-echo", "KEEP", "--", "sh", "-c", "echo noise; echo KEEP this; echo ready; exit 3"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.HasPrefix(got, "KEEP this\nBENCHRUN status=3 ") || strings.Contains(got, "noise") || strings.Contains(got, "marker-seconds=-1") {
		t.Errorf("run() printed %q, want the KEEP line, then status 3 with the marker's time", got)
	}
}

// TestRunTimeout: a marker that does not come within -timeout ends the
// command, even one that ignores SIGTERM, and benchrun says so; one that
// comes in time is not cut short.
func TestRunTimeout(t *testing.T) {
	tests := []struct {
		name, script string
		wantErr      bool
		want         string
	}{
		{"the marker never comes", "echo starting; sleep 60", true, "marker-seconds=-1.000"},
		{"SIGTERM is ignored", "trap '' TERM; echo starting; sleep 60", true, "timed-out=1"},
		{"the marker comes in time", "echo ready; sleep 1.5; exit 0", false, "status=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			start := time.Now()
			err := run([]string{"-marker", "ready", "-timeout", "1s", "--", "sh", "-c", tt.script}, &out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("run() error = %v, want an error: %v", err, tt.wantErr)
			}
			if !strings.Contains(out.String(), tt.want) {
				t.Errorf("run() printed %q, want %q in it", out.String(), tt.want)
			}
			if tt.wantErr != strings.Contains(out.String(), "timed-out=1") {
				t.Errorf("run() printed %q: timed-out=1 there must match the error", out.String())
			}
			if d := time.Since(start); d > 1*time.Second+killGrace+5*time.Second {
				t.Errorf("run() took %v, want it ended soon after the limit", d)
			}
		})
	}
}
