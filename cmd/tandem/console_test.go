package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/vmm"
)

// TestLineEnder checks that the VMM's last words start on a line of their
// own after whatever the guest wrote.
func TestLineEnder(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"guest left a line open: it is ended", []string{"TANDEM-INFO received=3591 ", "faults=0 crc="}, "TANDEM-INFO received=3591 faults=0 crc=\n"},
		{"guest ended its line: nothing added", []string{"booted\n"}, "booted\n"},
		{"guest wrote nothing: nothing added", nil, ""},
		{"an open line ended and reopened", []string{"a\n", "b"}, "a\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := &lineEnder{w: &buf}
			for _, w := range tt.writes {
				l.Write([]byte(w))
			}
			l.end()
			l.end() // a second end adds nothing
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestConsoleFileCapped: a file: console stops at its limit with one line
// saying so, and the guest's writes go on succeeding; 0 means no limit.
func TestConsoleFileCapped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	var cfg vmm.Config
	done, err := openConsole("file:"+path, 100, &cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("x", 29) + "\n")
	for i := 0; i < 1000; i++ {
		if n, err := cfg.Console.Out.Write(line); n != len(line) || err != nil {
			t.Fatalf("write %d = %d, %v; want the guest's writes to go on succeeding", i, n, err)
		}
	}
	done()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kept, note, _ := strings.Cut(string(b), "\ntandem: console output stopped here")
	if len(kept) != 100 || note == "" || strings.Count(note, "\n") != 1 {
		t.Errorf("file = %d bytes kept and note %q; want 100 bytes, then one line", len(kept), note)
	}

	var unlimited bytes.Buffer
	c := &cappedWriter{w: &unlimited}
	for i := 0; i < 1000; i++ {
		c.Write(line)
	}
	if unlimited.Len() != 1000*len(line) {
		t.Errorf("limit 0 kept %d bytes, want all %d", unlimited.Len(), 1000*len(line))
	}
}

// TestConsoleLimitField reads console-limit from a guest file, with its
// default, and refuses a bad size naming the line.
func TestConsoleLimitField(t *testing.T) {
	dir := t.TempDir()
	if _, err := fakekernel.Write(dir, "Image"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		doc     string
		want    uint64
		wantErr string
	}{
		{"kernel: Image\n", 64 << 20, ""},
		{"kernel: Image\nconsole: file:out.log\nconsole-limit: 1M\n", 1 << 20, ""},
		{"kernel: Image\nconsole-limit: 0\n", 0, ""},
		{"kernel: Image\nconsole-limit: lots\n", 0, "g.yaml:2: console-limit"},
	} {
		spec, err := loadGuestFile(writeFile(t, filepath.Join(dir, "g.yaml"), []byte(tt.doc)))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: loadGuestFile() = %v, want an error with %q", tt.doc, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%q: loadGuestFile() = %v", tt.doc, err)
		case spec.consoleLimit != tt.want:
			t.Errorf("%q: console limit = %d, want %d", tt.doc, spec.consoleLimit, tt.want)
		}
	}
}
