package e2e

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system"
)

// histogram reads cyclictest -q -h output (one thread) the long way:
// every sample's latency, in order, and the overflows.
func histogram(t *testing.T, file string) (lat []float64, over int, max float64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		w := strings.Fields(s.Text())
		switch {
		case len(w) == 2 && w[0] != "#":
			l, _ := strconv.Atoi(w[0])
			n, _ := strconv.Atoi(w[1])
			for range n {
				lat = append(lat, float64(l))
			}
		case strings.HasPrefix(s.Text(), "# Histogram Overflows:"):
			over, _ = strconv.Atoi(w[3])
		case strings.HasPrefix(s.Text(), "# Max Latencies:"):
			m, _ := strconv.Atoi(w[3])
			max = float64(m)
		}
	}
	return lat, over, max
}

// TestCyclictestSummary runs the real-time guest's summary (busybox awk,
// the same busybox as the guest's, built for this machine) over
// histograms Debian's arm64 cyclictest printed, and checks its
// percentiles against the histogram read sample by sample (its numbers
// have leading zeros, which busybox awk takes for octal unless told
// otherwise): 1000 wake-ups
// within the histogram, and 300 most of which overflowed a 20 µs one.
func TestCyclictestSummary(t *testing.T) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	busybox := filepath.Join(cache, "x86", "busybox")
	testenv.RequireFile(t, busybox, "scripts/testdata.sh x86")
	tests := []struct {
		name, file string
		wantErr    string // a ParseCyclictest error, for a median past the histogram
	}{
		{"within the histogram", "testdata/cyclictest-h400.txt", ""},
		{"mostly overflowed", "testdata/cyclictest-overflow.txt", "p50-us is past the histogram's end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(busybox, "awk", cyclictestSummary, tt.file).Output()
			if err != nil {
				t.Fatalf("busybox awk: %v", err)
			}
			got, err := ParseCyclictest("x\n" + CyclictestMarker + "cyclictest " + string(out))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCyclictest(%q) = %v, want an error containing %q", out, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCyclictest(%q) = %v", out, err)
			}
			lat, over, max := histogram(t, tt.file)
			// The nearest-rank percentile: the sample at rank ⌈p·n⌉.
			rank := func(p float64) float64 { return lat[int(math.Ceil(p*float64(len(lat)+over)))-1] }
			want := CyclictestResult{Samples: len(lat) + over, Overflows: over, Min: lat[0], Avg: got.Avg, P50: rank(0.50), P99: rank(0.99), Max: max}
			if got != want {
				t.Errorf("summary = %+v, want %+v", got, want)
			}
		})
	}
}

// TestParseCyclictest corrupts a good summary line one field at a time.
func TestParseCyclictest(t *testing.T) {
	const good = "samples=1000 overflows=0 min-us=12 avg-us=22 p50-us=19 p99-us=80 max-us=153"
	tests := []struct {
		name, line string
		want       CyclictestResult
		wantErr    string
	}{
		{"good", good, CyclictestResult{1000, 0, 12, 22, 19, 80, 153}, ""},
		{"p99 past the histogram", strings.Replace(good, "p99-us=80", "p99-us=overflow", 1), CyclictestResult{1000, 0, 12, 22, 19, -1, 153}, ""},
		{"median past the histogram", strings.Replace(good, "p50-us=19", "p50-us=overflow", 1), CyclictestResult{}, "p50-us is past"},
		{"no samples", "samples=0", CyclictestResult{}, "no min-us"},
		{"zero samples", strings.Replace(good, "samples=1000", "samples=0", 1), CyclictestResult{}, "no samples"},
		{"no p99", strings.Replace(good, " p99-us=80", "", 1), CyclictestResult{}, "no p99-us"},
		{"negative latency", strings.Replace(good, "min-us=12", "min-us=-1", 1), CyclictestResult{}, "not a latency"},
		{"text latency", strings.Replace(good, "max-us=153", "max-us=lots", 1), CyclictestResult{}, "not a latency"},
		{"more overflows than samples", strings.Replace(good, "overflows=0", "overflows=1001", 1), CyclictestResult{}, "overflows"},
		{"p99 above max", strings.Replace(good, "p99-us=80", "p99-us=200", 1), CyclictestResult{}, "p99 ≤ max"},
		{"median below min", strings.Replace(good, "p50-us=19", "p50-us=5", 1), CyclictestResult{}, "min ≤ p50"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCyclictest("boot noise\n" + CyclictestMarker + "cyclictest " + tt.line + "\n" + CyclictestMarker + "done status=0\n")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCyclictest() = %+v, %v, want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCyclictest() = %+v, %v, want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := ParseCyclictest("TANDEM-RT done status=1\n"); err == nil {
		t.Errorf("ParseCyclictest() of a console without a summary = nil error")
	}
}

// TestRTManifest checks the demo manifests with the real-time control
// guest: they parse, the control guest boots RTControlKernel and the
// infotainment guest keeps the stock kernel.
func TestRTManifest(t *testing.T) {
	for _, tt := range []struct{ name, manifest string }{{"demo", DemoManifest}, {"measured demo", MeasuredDemoManifest}} {
		t.Run(tt.name, func(t *testing.T) {
			// A measured guest's files must be there to be measured.
			dir := t.TempDir()
			for _, f := range []string{"vmlinuz", RTControlKernel, "control.img", "info.img"} {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := system.ParseManifest(filepath.Join(dir, "system.yaml"), []byte(rtManifest(tt.manifest)))
			if err != nil {
				t.Fatalf("ParseManifest() = %v", err)
			}
			want := map[string]string{"control": filepath.Join(dir, RTControlKernel), "infotainment": filepath.Join(dir, "vmlinuz")}
			for _, g := range m.Guests {
				if g.Kernel != want[g.Name] {
					t.Errorf("guest %s kernel = %q, want %q", g.Name, g.Kernel, want[g.Name])
				}
			}
		})
	}
}
