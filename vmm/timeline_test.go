package vmm

import (
	"strings"
	"testing"
	"time"
)

func TestStatStartTime(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    uint64
		wantErr string
	}{
		{"plain", "1234 (tandem) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 98765 1000000 500 18446744073709551615", 98765, ""},
		{"name with spaces and parentheses", "42 (a (b) c) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0", 555, ""},
		{"no command name", "42 tandem R 1", 0, "no ')'"},
		{"cut short", "42 (tandem) R 1 42 42", 0, "fields after the command name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := statStartTime(tt.stat)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("statStartTime() = %d, %v, want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("statStartTime() = %d, %v, want %d", got, err, tt.want)
			}
		})
	}
}

// TestTimeline: the first span covers the process's start to
// NewTimeline, each step starts where the last ended, the first vCPU's
// entry is recorded once, and the printed lines read back as the spans.
func TestTimeline(t *testing.T) {
	tl := NewTimeline()
	tl.Step("one")
	time.Sleep(2 * time.Millisecond)
	tl.Step("two")
	tl.guestEntered()
	tl.guestEntered()
	spans := tl.Spans()
	if len(spans) != 4 || spans[0].Name != "process start to main" || spans[0].Start != 0 || spans[0].End <= 0 {
		t.Fatalf("Spans() = %+v, want the process's start, one, two and the first entry", spans)
	}
	for i := 1; i < len(spans); i++ {
		if spans[i].Start != spans[i-1].End || spans[i].End < spans[i].Start {
			t.Errorf("span %d %+v does not start where span %d %+v ended", i, spans[i], i-1, spans[i-1])
		}
	}
	if d := spans[2].End - spans[2].Start; d < 2*time.Millisecond {
		t.Errorf("span two lasted %v, want at least the 2 ms slept in it", d)
	}
	var b strings.Builder
	if _, err := tl.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(spans) {
		t.Fatalf("WriteTo printed %d lines for %d spans:\n%s", len(lines), len(spans), b.String())
	}
	for i, l := range lines {
		got, ok := ParseTimelineLine("console noise " + l)
		if !ok || got.Name != spans[i].Name || (got.End-got.Start-(spans[i].End-spans[i].Start)).Abs() > time.Millisecond/5 {
			t.Errorf("ParseTimelineLine(%q) = %+v, %v, want %+v", l, got, ok, spans[i])
		}
	}
	var nilTL *Timeline
	nilTL.Step("nothing")
	nilTL.guestEntered()
	if s := nilTL.Spans(); s != nil {
		t.Errorf("a nil Timeline's Spans() = %v, want nil", s)
	}
}

func TestParseTimelineLineRejects(t *testing.T) {
	for _, l := range []string{
		"no prefix at all",
		TimelinePrefix + "ms=1 start-ms=2 step=swapped",
		TimelinePrefix + "start-ms=x ms=1 step=not a number",
		TimelinePrefix + "start-ms=1 ms=1 name=no step",
	} {
		if s, ok := ParseTimelineLine(l); ok {
			t.Errorf("ParseTimelineLine(%q) = %+v, true, want false", l, s)
		}
	}
}
