package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestJitter checks how the control loop's reports become the bench's
// numbers: the first five windows and, stressed, those before the
// infotainment guest's first report are left out, a report cut short by
// the guest's stop is not a window, and the published count is the last
// whole report's.
func TestJitter(t *testing.T) {
	report := func(phase string, n int) string {
		return fmt.Sprintf("BENCH %s control | TANDEM-CONTROL misses=%d p50-us=%d p99-us=%d max-us=%d cycles=%d sent=%d dropped=0 connected=true",
			phase, 10*n, 400+n, 1000+10*n, 5000+n, 1000*n, 100*n)
	}
	var alone, stress []string
	for n := 1; n <= 10; n++ {
		alone = append(alone, report("alone", n))
	}
	for n := 1; n <= 3; n++ {
		stress = append(stress, report("stress", n))
	}
	stress = append(stress, "BENCH stress infotainment | TANDEM-INFO received=1 faults=0")
	for n := 4; n <= 12; n++ {
		stress = append(stress, report("stress", n))
	}
	cut := "BENCH alone control | TANDEM-CONTROL misses=999 p50-us=1 p99"
	tests := []struct {
		name      string
		out       string
		prefix    string
		afterInfo bool
		want      jitterStats
	}{
		{"alone: windows 6-10 count", strings.Join(alone, "\n"), "BENCH alone ", false,
			jitterStats{windows: 10, p50: 408, p99: 1080, max: 5010, missRate: 10, sent: 1000}},
		{"alone: a cut last report is no window", strings.Join(append(alone, cut), "\n"), "BENCH alone ", false,
			jitterStats{windows: 10, p50: 408, p99: 1080, max: 5010, missRate: 10, sent: 1000}},
		{"stressed: from the infotainment guest's first report on", strings.Join(stress, "\n"), "BENCH stress ", true,
			jitterStats{windows: 9, p50: 411, p99: 1110, max: 5012, missRate: 10, sent: 1200}},
		{"no reports", "BENCH alone nothing", "BENCH alone ", false, jitterStats{}},
	}
	for _, tt := range tests {
		if got := jitter(tt.out, tt.prefix, tt.afterInfo); got != tt.want {
			t.Errorf("%s: jitter() = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
