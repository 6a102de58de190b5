package e2e

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system"
)

// verbose reads cyclictest -v output (one thread) the long way: every
// wake-up's latency, sorted, and cyclictest's own closing line's minimum
// and maximum.
func verbose(t *testing.T, file string) (lat []float64, min, max float64) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var thread, loop, us int
		if n, _ := fmt.Sscanf(l, "%d: %d: %d", &thread, &loop, &us); n == 3 {
			lat = append(lat, float64(us))
		}
		if i := strings.Index(l, "Min:"); strings.HasPrefix(l, "T: 0") && i >= 0 {
			w := strings.Fields(l[i:])
			min, _ = strconv.ParseFloat(w[1], 64)
			max, _ = strconv.ParseFloat(w[len(w)-1], 64)
		}
	}
	sort.Float64s(lat)
	return lat, min, max
}

// TestCyclictestSummary runs the real-time guest's summary with the same
// busybox as the guest's (built for this machine) over what Debian's
// arm64 cyclictest printed with -v, and checks its numbers against the
// samples read and sorted here, the minimum and maximum also against
// cyclictest's own: 1000 wake-ups, and 7 (where the 99th percentile is
// the maximum).
func TestCyclictestSummary(t *testing.T) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	busybox := filepath.Join(cache, "x86", "busybox")
	testenv.RequireFile(t, busybox, "scripts/testdata.sh x86")
	bin := t.TempDir()
	for _, applet := range []string{"awk", "sort"} {
		if err := os.Symlink(busybox, filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	for _, file := range []string{"testdata/cyclictest-v1000.txt", "testdata/cyclictest-v7.txt"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			cmd := exec.Command(busybox, "sh", "-c", cyclictestSummary+"summarize "+file)
			cmd.Env = []string{"PATH=" + bin}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("summarize %s: %v", file, err)
			}
			got, err := ParseCyclictest("x\n" + CyclictestMarker + "cyclictest " + string(out))
			if err != nil {
				t.Fatalf("ParseCyclictest(%q) = %v", out, err)
			}
			lat, min, max := verbose(t, file)
			// The nearest-rank percentile: the sample at rank ⌈p·n⌉.
			rank := func(p float64) float64 { return lat[int(math.Ceil(p*float64(len(lat))))-1] }
			sum := 0.0
			for _, v := range lat {
				sum += v
			}
			want := CyclictestResult{Samples: len(lat), Min: lat[0], Avg: math.Floor(sum / float64(len(lat))), P50: rank(0.50), P99: rank(0.99), Max: lat[len(lat)-1]}
			if got != want {
				t.Errorf("summary = %+v, want %+v", got, want)
			}
			if got.Min != min || got.Max != max {
				t.Errorf("summary min, max = %v, %v; cyclictest's own = %v, %v", got.Min, got.Max, min, max)
			}
		})
	}
}

// TestParseCyclictest corrupts a good summary line one field at a time.
func TestParseCyclictest(t *testing.T) {
	const good = "samples=1000 min-us=12 avg-us=22 p50-us=19 p99-us=80 max-us=153"
	tests := []struct {
		name, line string
		want       CyclictestResult
		wantErr    string
	}{
		{"good", good, CyclictestResult{1000, 12, 22, 19, 80, 153}, ""},
		{"no samples", "samples=0", CyclictestResult{}, "no min-us"},
		{"zero samples", strings.Replace(good, "samples=1000", "samples=0", 1), CyclictestResult{}, "no samples"},
		{"no p99", strings.Replace(good, " p99-us=80", "", 1), CyclictestResult{}, "no p99-us"},
		{"negative latency", strings.Replace(good, "min-us=12", "min-us=-1", 1), CyclictestResult{}, "not a latency"},
		{"text latency", strings.Replace(good, "max-us=153", "max-us=lots", 1), CyclictestResult{}, "not a latency"},
		{"p99 above max", strings.Replace(good, "p99-us=80", "p99-us=200", 1), CyclictestResult{}, "p99 ≤ max"},
		{"median below min", strings.Replace(good, "p50-us=19", "p50-us=5", 1), CyclictestResult{}, "min ≤ p50"},
		{"average above max", strings.Replace(good, "avg-us=22", "avg-us=154", 1), CyclictestResult{}, "avg ≤ max"},
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
