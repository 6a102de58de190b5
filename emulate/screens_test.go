package emulate

import (
	"bytes"
	"strings"
	"testing"
)

// TestScreensRoundTrip prints pictures as tandem init does and reads them
// back from the console's lines, interleaved with other lines and with a
// picture cut short or corrupted, which are reported, not kept.
func TestScreensRoundTrip(t *testing.T) {
	png1 := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{1, 2, 3, 250}, 100)...)
	png2 := append([]byte("\x89PNG\r\n\x1a\n"), []byte("second")...)
	var out strings.Builder
	WriteScreen(&out, "infotainment", 1, 2, png1)
	out.WriteString("control | TANDEM-CONTROL sent=5\n")
	WriteScreen(&out, "infotainment", 2, 2, png2)
	// cut short: no end line
	out.WriteString("tandem init: screen other 1/1 png 10\ntandem init: screen other 1/1 data AAAA\n")
	// corrupted: the size does not match
	out.WriteString("tandem init: screen bad 1/1 png 99\ntandem init: screen bad 1/1 data iVBORw==\ntandem init: screen bad 1/1 end\n")
	var s screens
	var data, other int
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if IsScreenData(l) {
			data++
		}
		if !s.line(l) {
			other++
		}
	}
	if other != 1 {
		t.Errorf("%d lines taken for other lines, want 1 (the guest's)", other)
	}
	if want := (len(png1)*4/3+screenDataWidth)/screenDataWidth + 1 + 1 + 1; data < 3 || data > want {
		t.Errorf("%d data lines, want between 3 and %d", data, want)
	}
	if len(s.done) != 2 {
		t.Fatalf("%d pictures read back, want 2: %+v", len(s.done), s.done)
	}
	for i, want := range [][]byte{png1, png2} {
		if got := s.done[i]; got.Guest != "infotainment" || got.Shot != i+1 || got.Of != 2 || !bytes.Equal(got.PNG, want) {
			t.Errorf("picture %d = %s %d/%d (%d bytes), want infotainment %d/2 (%d bytes)", i, got.Guest, got.Shot, got.Of, len(got.PNG), i+1, len(want))
		}
	}
	if len(s.errs) != 1 || !strings.Contains(s.errs[0], "screen bad 1/1") {
		t.Errorf("errors = %q, want one for the corrupted picture", s.errs)
	}
}
