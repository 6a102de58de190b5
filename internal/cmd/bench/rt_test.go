package main

import (
	"os"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/e2e"
)

// TestRTPhase reads the rt part's numbers from an emulated board's
// console (a make bench run's BENCH lines) and refuses a stressed phase
// that did not compare what it says: the load not yet running when
// cyclictest started, the load guest failing or ending first, cyclictest
// failing.
func TestRTPhase(t *testing.T) {
	b, err := os.ReadFile("testdata/rt-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	good := string(b)
	line := func(phase, marker string) string {
		for _, l := range strings.Split(good, "\n") {
			if strings.HasPrefix(l, "BENCH "+phase+" ") && strings.Contains(l, marker) {
				return l
			}
		}
		t.Fatalf("testdata/rt-console.txt has no %s line with %q", phase, marker)
		return ""
	}
	running, start := line("stress", "TANDEM-STRESS running"), line("stress", "TANDEM-RT cyclictest start")
	done := line("stress", "TANDEM-RT done status=0")
	tests := []struct {
		name, console, phase, wantErr string
	}{
		{"alone", good, "alone", ""},
		{"stressed", good, "stress", ""},
		{"load started after cyclictest", strings.Replace(strings.Replace(good, running+"\n", "", 1), start+"\n", start+"\n"+running+"\n", 1), "stress", "was not running"},
		{"no load", strings.Replace(good, running+"\n", "", 1), "stress", "was not running"},
		{"load guest failed", strings.Replace(good, running, "BENCH stress infotainment | TANDEM-STRESS fail disk: mount failed", 1), "stress", "the load guest failed"},
		{"load guest ended first", strings.Replace(good, done, "BENCH stress tandem: infotainment: VMM exited: power-off\n"+done, 1), "stress", "ended before cyclictest"},
		{"cyclictest failed", strings.Replace(good, done, strings.Replace(done, "status=0", "status=1", 1), 1), "stress", "did not end with status 0"},
		{"no summary", strings.Replace(good, line("alone", "TANDEM-RT cyclictest samples="), "", 1), "alone", "no \"TANDEM-RT cyclictest samples=\" line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := rtPhase(tt.console, tt.phase)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("rtPhase(%s) = %+v, %v, want an error containing %q", tt.phase, r, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("rtPhase(%s) = %v", tt.phase, err)
			}
			want, _ := e2e.ParseCyclictest(line(tt.phase, "TANDEM-RT cyclictest samples="))
			if r != want || r.Samples == 0 {
				t.Errorf("rtPhase(%s) = %+v, want %+v", tt.phase, r, want)
			}
		})
	}
}
