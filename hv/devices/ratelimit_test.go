package devices

import (
	"bytes"
	"strings"
	"testing"
)

func TestWarningsAreRateLimited(t *testing.T) {
	var log bytes.Buffer
	w := NewRateLimited(&log, 3)
	for i := 0; i < 100; i++ {
		w.Printf("hole %d", i)
	}
	if n := strings.Count(log.String(), "\n"); n != 3 {
		t.Errorf("%d warnings written, want 3:\n%s", n, log.String())
	}
	if !strings.HasPrefix(log.String(), "tandem: warning: hole 0\n") {
		t.Errorf("warnings = %q, want them to start with the first", log.String())
	}
}

func TestRateLimitedWithoutOutput(t *testing.T) {
	var nilLimiter *RateLimited
	nilLimiter.Printf("dropped")
	w := NewRateLimited(nil, 3)
	w.Printf("dropped")
	var log bytes.Buffer
	w.SetOutput(&log)
	w.Printf("kept")
	if got, want := log.String(), "tandem: warning: kept\n"; got != want {
		t.Errorf("after SetOutput: %q, want %q", got, want)
	}
}
