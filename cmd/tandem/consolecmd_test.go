package main

import (
	"testing"

	"github.com/tandem-hv/tandem/emulate"
)

// TestInputEscapes: what a test file's input step types goes through the
// board's console line as Go escapes (emulate.EscapeInput) and comes back
// byte for byte in tandem init (unescape), as does what a person types
// with tandem input.
func TestInputEscapes(t *testing.T) {
	for _, text := range []string{"ls\n", `say "hi"`, "tab\there", "\x1b[A", `back\slash`, "ü\r\n", " leading space"} {
		line := emulate.EscapeInput(text)
		got, err := unescape(line)
		if err != nil || got != text {
			t.Errorf("unescape(EscapeInput(%q) = %q) = %q, %v; want it back", text, line, got, err)
		}
	}
	typed := []struct{ in, want string }{
		{`ls\n`, "ls\n"},
		{`echo "a b"`, `echo "a b"`},
		{`quote \" inside`, `quote " inside`},
	}
	for _, tt := range typed {
		if got, err := unescape(tt.in); err != nil || got != tt.want {
			t.Errorf("unescape(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := unescape(`bad \q escape`); err == nil {
		t.Errorf("unescape(`bad \\q escape`) = nil error, want one")
	}
}
