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

// rtLoops is how many 1 ms wake-ups the tests' cyclictest times: enough
// for a histogram, few enough for an emulated host. Its numbers are
// judged in make bench only.
const rtLoops = 1000

// rtRun is the real-time control guest's run (section "rt"): Debian's
// PREEMPT_RT kernel for goarch with cyclictest (BuildCyclictestGuest),
// on one vCPU, with cmdline and tandem.rt-loops. The error says which
// test data is missing.
func rtRun(goarch, cmdline string) (hostRuns, error) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return hostRuns{}, err
	}
	k, err := RTKernel(cache, goarch)
	if err != nil {
		return hostRuns{}, err
	}
	initrd := filepath.Join(workDir, "initrd-rt-"+goarch)
	if err := BuildCyclictestGuest(initrd, cache, goarch, k); err != nil {
		return hostRuns{}, err
	}
	cmd := fmt.Sprintf("/tandem run --kernel /guest/rt/vmlinuz --initrd /guest/rt/initrd --cmdline %q --cpus 1 --memory %s --console stdio",
		cmdline+fmt.Sprintf(" tandem.rt-loops=%d", rtLoops), guestMemory)
	return hostRuns{
		runs:  []guestRun{{"rt", cmd}},
		files: map[string]string{"/guest/rt/vmlinuz": k.Image, "/guest/rt/initrd": initrd},
	}, nil
}

// checkRTGuest checks the real-time guest's run (rtRun of goarch): its
// kernel says PREEMPT_RT in uname -v, and cyclictest timed every wake-up
// asked for and ended well, with a summary that parses.
func checkRTGuest(t *testing.T, res *qemuhost.Result, goarch string, buildErr error) {
	t.Helper()
	if buildErr != nil {
		cache, _ := qemuhost.CacheDir()
		if d, err := RTTestData(goarch); err == nil {
			testenv.RequireFile(t, filepath.Join(cache, d.Kernel, "release"), "run scripts/testdata.sh "+d.Kernel)
			testenv.RequireFile(t, filepath.Join(cache, d.Cyclictest.Dir, "root", d.Cyclictest.Bin), "run scripts/testdata.sh "+d.Cyclictest.Dir)
		}
		t.Fatalf("building the real-time guest: %v", buildErr)
	}
	r := section(res, "rt")
	t.Logf("%s", guestTiming(r))
	if r.ExitStatus != 0 {
		t.Errorf("tandem run of the real-time guest exited %d, want 0:\n%s", r.ExitStatus, r.Tail(20))
	}
	if !strings.Contains(r.Output, CyclictestMarker+"uname-v ") || !strings.Contains(r.Output, "preempt-rt=yes") {
		t.Errorf("the real-time guest's uname -v does not say PREEMPT_RT:\n%s", r.Tail(20))
	}
	if !strings.Contains(r.Output, CyclictestMarker+"done status=0") {
		t.Errorf("cyclictest did not end with status 0:\n%s", r.Tail(20))
	}
	ct, err := ParseCyclictest(r.Output)
	if err != nil {
		t.Fatalf("ParseCyclictest() = %v", err)
	}
	t.Logf("cyclictest in the %s PREEMPT_RT guest, %d wake-ups: %+v", goarch, rtLoops, ct)
	if ct.Samples != rtLoops {
		t.Errorf("cyclictest samples = %d, want %d", ct.Samples, rtLoops)
	}
}

// TestBuildCyclictestGuest builds the real-time guest of each
// architecture from the cached PREEMPT_RT kernel and cyclictest, and
// reads the initramfs back with cpio: /init, cyclictest, its loader and
// libraries at the paths the guest's loader looks in, the loader the
// package's own (amd64's /lib64 one is an absolute link in the unpacked
// root, which must not pick up this machine's), and the disk's modules.
func TestBuildCyclictestGuest(t *testing.T) {
	tests := []struct {
		goarch string
		loader string
		libs   []string
	}{
		{"arm64", "/lib/ld-linux-aarch64.so.1", []string{"/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libnuma.so.1"}},
		{"amd64", "/lib64/ld-linux-x86-64.so.2", []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libnuma.so.1"}},
	}
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireCommand(t, "cpio", "cpio")
	for _, tt := range tests {
		t.Run(tt.goarch, func(t *testing.T) {
			d, err := RTTestData(tt.goarch)
			if err != nil {
				t.Fatal(err)
			}
			testenv.RequireFile(t, filepath.Join(cache, d.Kernel, "release"), "scripts/testdata.sh "+d.Kernel)
			testenv.RequireFile(t, filepath.Join(cache, d.Cyclictest.Dir, "root", d.Cyclictest.Bin), "scripts/testdata.sh "+d.Cyclictest.Dir)
			k, err := RTKernel(cache, tt.goarch)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			img := filepath.Join(dir, "rt.img")
			if err := BuildCyclictestGuest(img, cache, tt.goarch, k); err != nil {
				t.Fatalf("BuildCyclictestGuest() = %v", err)
			}
			out := filepath.Join(dir, "root")
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-c", "gzip -dc "+img+" | cpio -idm --quiet --no-absolute-filenames")
			cmd.Dir = out
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("unpacking %s: %v: %s", img, err, b)
			}
			for _, f := range append([]string{"/init", "/bin/busybox", d.Cyclictest.Bin, tt.loader}, tt.libs...) {
				if fi, err := os.Lstat(filepath.Join(out, f)); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("initramfs %s: not a regular file (%v)", f, err)
				}
			}
			prog, err := qemuhost.UnpackedProgram(filepath.Join(cache, d.Cyclictest.Dir, "root"), d.Cyclictest.Bin)
			if err != nil {
				t.Fatal(err)
			}
			want := prog[tt.loader]
			wb, _ := os.ReadFile(want)
			gb, _ := os.ReadFile(filepath.Join(out, tt.loader))
			if len(wb) == 0 || string(wb) != string(gb) {
				t.Errorf("initramfs %s (%d bytes) is not the package's loader %s (%d bytes)", tt.loader, len(gb), want, len(wb))
			}
			mods, err := filepath.Glob(filepath.Join(out, "lib/modules/*/kernel/drivers/block/virtio_blk.ko*"))
			if err != nil || len(mods) != 1 {
				t.Errorf("initramfs virtio_blk module: %v (%v)", mods, err)
			}
		})
	}
}
