package e2e

import (
	"os"
	"strings"
	"testing"
)

// TestParsePerfStat reads the consoles of the perf guest's two runs in
// TestTandemRunArm64 (Debian's perf with and without a PMU), then each
// corrupted one way.
func TestParsePerfStat(t *testing.T) {
	read := func(file string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	pmu := read("testdata/perf-stat-pmu.txt")
	noPMU := read("testdata/perf-stat-nopmu.txt")
	tests := []struct {
		name    string
		console string
		want    PerfStat // Report is not compared
		wantErr string
	}{
		{name: "counted", console: pmu, want: PerfStat{Counted: true, Cycles: pmuCycles}},
		{name: "not supported", console: noPMU, want: PerfStat{Reason: "<not supported>"}},
		{name: "count grouped with commas", console: strings.Replace(pmu, pmuCyclesText, groupThousands(pmuCyclesText), 1),
			want: PerfStat{Counted: true, Cycles: pmuCycles}},
		{name: "not counted", console: strings.Replace(noPMU, "<not supported>", "<not counted>", 1), want: PerfStat{Reason: "<not counted>"}},
		{name: "error instead of a report",
			console: "TANDEM-PERF | Error:\nTANDEM-PERF | No permission to enable cycles event.\nTANDEM-PERF done status=255\n",
			want:    PerfStat{Status: 255, Reason: "No permission to enable cycles event."}},
		{name: "no done line", console: strings.Replace(pmu, "TANDEM-PERF done status=0", "", 1), wantErr: "did not finish"},
		{name: "status not a number", console: strings.Replace(pmu, "done status=0", "done status=zero", 1), wantErr: "not an exit status"},
		{name: "count not a number", console: strings.Replace(pmu, pmuCyclesText, "12x4", 1), wantErr: `"12x4" is not a count`},
		{name: "nothing printed", console: "TANDEM-PERF kernel=6.1.0-57-arm64\nTANDEM-PERF done status=1\n", wantErr: "perf printed nothing"},
		{name: "no guest", console: "", wantErr: "did not finish"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePerfStat(tt.console)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePerfStat() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePerfStat() = %v", err)
			}
			if !strings.Contains(got.Report, "Performance counter stats") && tt.want.Status == 0 {
				t.Errorf("Report = %q, want perf's report", got.Report)
			}
			got.Report = ""
			if got != tt.want {
				t.Errorf("ParsePerfStat() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// groupThousands writes a count as a locale with ',' grouping would.
func groupThousands(s string) string {
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// The count in testdata/perf-stat-pmu.txt.
const (
	pmuCyclesText        = "7819317"
	pmuCycles     uint64 = 7819317
)
