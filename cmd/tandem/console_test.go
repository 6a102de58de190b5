package main

import (
	"bytes"
	"testing"
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
