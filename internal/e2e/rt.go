package e2e

import (
	"bytes"
	"fmt"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"

	"github.com/tandem-hv/tandem/images/initramfs"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// The real-time control guest: Debian's PREEMPT_RT arm64 kernel with a
// busybox userland that runs cyclictest (Debian's rt-tests), the field's
// standard measure of a real-time system's wake-up latency, and reports
// its histogram's percentiles on the console. Its load is a guest with
// Debian's stress-ng, loading its CPUs, memory and a disk.

// RTKernel returns Debian's PREEMPT_RT arm64 kernel from the cache
// (scripts/testdata.sh arm64-rt).
func RTKernel(cache string) (Kernel, error) { return CachedKernel(cache, "arm64-rt") }

// Tool is a Debian arm64 program that scripts/testdata.sh unpacked with
// its packages' libraries under the cache: Dir/root/Bin.
type Tool struct{ Dir, Bin string }

// The tools of the real-time guests.
var (
	Cyclictest = Tool{"rt-tests-arm64", "/usr/bin/cyclictest"}
	StressNG   = Tool{"stress-ng-arm64", "/usr/bin/stress-ng"}
)

// files returns the initramfs entries that run the tool: the program,
// its ELF interpreter and the shared libraries it loads.
func (tl Tool) files(cache string) ([]initramfs.Entry, error) {
	files, err := qemuhost.UnpackedProgram(filepath.Join(cache, tl.Dir, "root"), tl.Bin)
	if err != nil {
		return nil, fmt.Errorf("%w (scripts/testdata.sh %s unpacks it)", err, tl.Dir)
	}
	var ents []initramfs.Entry
	for dst, src := range files {
		ents = append(ents, initramfs.File(dst, src, 0o755))
	}
	return ents, nil
}

// ScriptGuest is a busybox guest that loads Modules (and what they
// depend on), then runs Script with Tools on its PATH and powers off.
type ScriptGuest struct {
	Kernel  Kernel
	Modules []string
	Tools   []Tool
	Script  string
}

// scriptInit is a ScriptGuest's /init. The modules are listed at build
// time in dependency order, as for the busybox test guest.
var scriptInit = template.Must(template.New("init").Parse(`#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /mnt
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# param NAME DEFAULT prints the kernel command line's NAME=VALUE.
param() {
	for w in $(cat /proc/cmdline); do
		case $w in "$1"=*) echo "${w#*=}"; return ;; esac
	done
	echo "$2"
}
{{range .Modules}}insmod {{$.Dir}}/{{.Path}} || echo "insmod {{.Name}} failed"
{{end}}
{{.Script}}
sync
poweroff -f
`))

// BuildScriptGuest writes g's initramfs to file (gzip-compressed). cache
// is the test-data cache the tools were unpacked in.
func BuildScriptGuest(file, cache string, g ScriptGuest) error {
	mods, order, err := initramfs.Modules(g.Kernel.Modules, g.Modules, true)
	if err != nil {
		return err
	}
	type mod struct{ Path, Name string }
	data := struct {
		Dir     string
		Modules []mod
		Script  string
	}{Dir: "/lib/modules/" + filepath.Base(g.Kernel.Modules), Script: g.Script}
	for _, p := range order {
		data.Modules = append(data.Modules, mod{Path: p, Name: initramfs.ModuleName(path.Base(p))})
	}
	var b bytes.Buffer
	if err := scriptInit.Execute(&b, data); err != nil {
		return fmt.Errorf("script guest init: %w", err)
	}
	ents := append(initramfs.Console(), mods...)
	ents = append(ents,
		initramfs.File("/bin/busybox", g.Kernel.Busybox, 0o755),
		initramfs.Bytes("/init", b.Bytes(), 0o755))
	for _, tl := range g.Tools {
		te, err := tl.files(cache)
		if err != nil {
			return err
		}
		ents = append(ents, te...)
	}
	if err := initramfs.Write(file, ents, initramfs.Options{Gzip: true}); err != nil {
		return fmt.Errorf("building the guest initramfs %s: %w", filepath.Base(file), err)
	}
	return nil
}

// CyclictestHistogram is cyclictest's histogram size in µs (-h): a
// wake-up later than that counts as an overflow, whose exact latency
// only the maximum keeps.
const CyclictestHistogram = 100000

// CyclictestMarker starts the real-time guest's console lines.
const CyclictestMarker = "TANDEM-RT "

// cyclictestSummary reads cyclictest's histogram output (-q -h, one
// thread) and prints its sample count and percentiles on one line:
// the guest's console is an emulated UART, slow to print the whole
// histogram through. A percentile past the histogram's end prints as
// "overflow". Its numbers have leading zeros, which busybox's awk reads
// as octal: num strips them.
const cyclictestSummary = `
function num(s) { sub(/^0+/, "", s); return s + 0 }
function pct(p,   want, c, i) {
	want = int(p * all / 100)
	if (want < p * all / 100) want++
	if (want < 1) want = 1
	c = 0
	for (i = 1; i <= k; i++) { c += cnt[i]; if (c >= want) return lat[i] }
	return "overflow"
}
/^[0-9]+ [0-9]+$/ { n = num($2); if (n > 0) { k++; lat[k] = num($1); cnt[k] = n; total += n } next }
/^# Min Latencies:/ { min = num($4) }
/^# Avg Latencies:/ { avg = num($4) }
/^# Max Latencies:/ { max = num($4) }
/^# Histogram Overflows:/ { over = num($4) }
END {
	all = total + over
	if (all == 0) { print "samples=0"; exit }
	printf "samples=%d overflows=%d min-us=%d avg-us=%d p50-us=%s p99-us=%s max-us=%d\n", all, over, min, avg, pct(50), pct(99), max
}
`

// CyclictestScript is the real-time guest's script. It prints the kernel
// it runs ("TANDEM-RT kernel=RELEASE preempt-rt=yes|no", then uname -v),
// waits tandem.rt-delay= seconds (default 0: a stressed run lets its
// load start first), runs cyclictest for tandem.rt-loops= wake-ups
// (default 1000) at a 1 ms interval, one SCHED_FIFO 80 thread with its
// memory locked, and prints the summary line (ParseCyclictest), then
// "TANDEM-RT done status=S".
var CyclictestScript = fmt.Sprintf(`rt=no
uname -v | grep -q PREEMPT_RT && rt=yes
echo "TANDEM-RT kernel=$(uname -r) preempt-rt=$rt"
echo "TANDEM-RT uname-v $(uname -v)"
sleep $(param tandem.rt-delay 0)
loops=$(param tandem.rt-loops 1000)
echo "TANDEM-RT cyclictest start loops=$loops"
cyclictest -q -m -t 1 -p 80 -i 1000 -l $loops -h %d > /tmp/ct 2>&1
status=$?
[ $status = 0 ] || tail -n 5 /tmp/ct | sed 's/^/TANDEM-RT error /'
awk '%s' /tmp/ct | sed 's/^/TANDEM-RT cyclictest /'
echo "TANDEM-RT done status=$status"`, CyclictestHistogram, cyclictestSummary)

// RTModules are what the real-time guest loads: its console is the
// PL011, so only a disk's drivers, for a guest that is given one.
var RTModules = []string{"virtio_mmio", "virtio_blk"}

// BuildCyclictestGuest writes the real-time guest's initramfs for k
// (RTKernel) to file.
func BuildCyclictestGuest(file, cache string, k Kernel) error {
	return BuildScriptGuest(file, cache, ScriptGuest{Kernel: k, Modules: RTModules, Tools: []Tool{Cyclictest}, Script: CyclictestScript})
}

// StressScript is the load guest's script: an ext2 file system on its
// first disk, then stress-ng with a CPU worker per vCPU, a memory worker
// and a disk writer on that file system until the guest is stopped. It
// prints "TANDEM-STRESS running" once stress-ng has started.
const StressScript = `for i in $(seq 50); do [ -b /dev/vda ] && break; usleep 100000; done
mke2fs -q /dev/vda && mount -t ext2 /dev/vda /mnt || echo "TANDEM-STRESS fail no disk"
stress-ng --cpu 0 --vm 1 --vm-bytes 48M --hdd 1 --hdd-bytes 8M --temp-path /mnt --timeout 0 > /tmp/stress.log 2>&1 &
sleep 1
echo "TANDEM-STRESS running"
wait`

// StressModules are what the load guest loads: a disk and the file
// system on it.
var StressModules = []string{"virtio_mmio", "virtio_blk", "ext4"}

// BuildStressGuest writes the load guest's initramfs for k to file.
func BuildStressGuest(file, cache string, k Kernel) error {
	return BuildScriptGuest(file, cache, ScriptGuest{Kernel: k, Modules: StressModules, Tools: []Tool{StressNG}, Script: StressScript})
}

// CyclictestResult is the real-time guest's cyclictest summary.
type CyclictestResult struct {
	Samples, Overflows int
	// Latencies in µs; P99 is -1 when it is past the histogram's end
	// (only Max, from cyclictest's own count, is then exact).
	Min, Avg, P50, P99, Max float64
}

// ParseCyclictest finds the real-time guest's cyclictest summary in a
// console and checks it is whole and consistent.
func ParseCyclictest(console string) (CyclictestResult, error) {
	const prefix = CyclictestMarker + "cyclictest samples="
	i := strings.LastIndex(console, prefix)
	if i < 0 {
		return CyclictestResult{}, fmt.Errorf("no %q line on the console", prefix)
	}
	line, _, _ := strings.Cut(console[i+len(CyclictestMarker+"cyclictest "):], "\n")
	f := map[string]string{}
	for _, w := range strings.Fields(line) {
		if k, v, ok := strings.Cut(w, "="); ok {
			f[k] = v
		}
	}
	var r CyclictestResult
	for _, p := range []struct {
		key string
		dst *float64
	}{{"min-us", &r.Min}, {"avg-us", &r.Avg}, {"p50-us", &r.P50}, {"p99-us", &r.P99}, {"max-us", &r.Max}} {
		v, ok := f[p.key]
		if !ok {
			return r, fmt.Errorf("cyclictest summary %q: no %s", line, p.key)
		}
		if v == "overflow" && p.key == "p99-us" {
			*p.dst = -1
			continue
		}
		if v == "overflow" {
			return r, fmt.Errorf("cyclictest summary %q: %s is past the histogram's end (%d µs)", line, p.key, CyclictestHistogram)
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n < 0 {
			return r, fmt.Errorf("cyclictest summary %q: %s=%q is not a latency", line, p.key, v)
		}
		*p.dst = n
	}
	var err error
	if r.Samples, err = strconv.Atoi(f["samples"]); err != nil || r.Samples <= 0 {
		return r, fmt.Errorf("cyclictest summary %q: no samples", line)
	}
	if r.Overflows, err = strconv.Atoi(f["overflows"]); err != nil || r.Overflows < 0 || r.Overflows > r.Samples {
		return r, fmt.Errorf("cyclictest summary %q: overflows=%q is not a count up to the samples", line, f["overflows"])
	}
	if !(r.Min <= r.P50 && (r.P99 < 0 || r.P50 <= r.P99 && r.P99 <= r.Max) && r.Avg <= r.Max) {
		return r, fmt.Errorf("cyclictest summary %q: want min ≤ p50 ≤ p99 ≤ max and avg ≤ max", line)
	}
	return r, nil
}
