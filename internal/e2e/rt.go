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

// The real-time control guest: Debian's PREEMPT_RT kernel (arm64 or
// amd64) with a busybox userland that runs cyclictest (Debian's
// rt-tests), the field's standard measure of a real-time system's
// wake-up latency, and reports its histogram's percentiles on the
// console. Its load is a guest with Debian's stress-ng, loading its CPUs,
// memory and a disk.

// RTData is where scripts/testdata.sh unpacks the real-time guest of one
// architecture: its PREEMPT_RT kernel's cache directory and its
// cyclictest.
type RTData struct {
	Kernel     string
	Cyclictest Tool
}

// rtData is the real-time guest's test data by Go architecture.
var rtData = map[string]RTData{
	"arm64": {"arm64-rt", Tool{"rt-tests-arm64", "/usr/bin/cyclictest"}},
	"amd64": {"x86-rt", Tool{"rt-tests-amd64", "/usr/bin/cyclictest"}},
}

// RTTestData returns the real-time guest's test data for goarch (arm64
// or amd64).
func RTTestData(goarch string) (RTData, error) {
	d, ok := rtData[goarch]
	if !ok {
		return RTData{}, fmt.Errorf("no real-time guest for %q: want arm64 or amd64", goarch)
	}
	return d, nil
}

// RTKernel returns Debian's PREEMPT_RT kernel for goarch from the cache
// (scripts/testdata.sh arm64-rt, x86-rt).
func RTKernel(cache, goarch string) (Kernel, error) {
	d, err := RTTestData(goarch)
	if err != nil {
		return Kernel{}, err
	}
	return CachedKernel(cache, d.Kernel)
}

// Tool is a Debian program that scripts/testdata.sh unpacked with its
// packages' libraries under the cache: Dir/root/Bin.
type Tool struct{ Dir, Bin string }

// StressNG is the load guest's tool (arm64).
var StressNG = Tool{"stress-ng-arm64", "/usr/bin/stress-ng"}

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

// CyclictestMarker starts the real-time guest's console lines.
const CyclictestMarker = "TANDEM-RT "

// cyclictestSummary is a shell function, summarize FILE, that reads
// cyclictest's verbose output (-v: a "THREAD: LOOP: LATENCY" line per
// wake-up) and prints the count and the percentiles of its latencies on
// one line: the guest's console is an emulated UART, slow to print every
// sample through. A percentile is the nearest rank's sample, so every
// latency is exact however late (a histogram, -h, loses the ones past
// its end). busybox's awk reads a number with leading zeros as octal:
// cyclictest pads with spaces.
const cyclictestSummary = `summarize() {
	awk -F: 'NF == 3 && $3 ~ /^ *[0-9]+$/ { print $3 + 0 }' "$1" | sort -n | awk '
function rank(p,   r) { r = int(p * n / 100); if (r < p * n / 100) r++; if (r < 1) r = 1; return v[r] }
{ v[++n] = $1; sum += $1 }
END {
	if (n == 0) { print "samples=0"; exit }
	printf "samples=%d min-us=%d avg-us=%d p50-us=%d p99-us=%d max-us=%d\n", n, v[1], sum / n, rank(50), rank(99), v[n]
}'
}
`

// CyclictestScript is the real-time guest's script. It prints the kernel
// it runs ("TANDEM-RT kernel=RELEASE preempt-rt=yes|no", then uname -v),
// waits tandem.rt-delay= seconds (default 0: a stressed run lets its
// load start first), runs cyclictest for tandem.rt-loops= wake-ups
// (default 1000) at a 1 ms interval, one SCHED_FIFO 80 thread with its
// memory locked, and prints the summary line (ParseCyclictest), then
// "TANDEM-RT done status=S".
var CyclictestScript = cyclictestSummary + `rt=no
uname -v | grep -q PREEMPT_RT && rt=yes
echo "TANDEM-RT kernel=$(uname -r) preempt-rt=$rt"
echo "TANDEM-RT uname-v $(uname -v)"
sleep $(param tandem.rt-delay 0)
loops=$(param tandem.rt-loops 1000)
echo "TANDEM-RT cyclictest start loops=$loops"
cyclictest -q -v -m -t 1 -p 80 -i 1000 -l $loops > /tmp/ct 2>&1
status=$?
[ $status = 0 ] || tail -n 5 /tmp/ct | sed 's/^/TANDEM-RT error /'
summarize /tmp/ct | sed 's/^/TANDEM-RT cyclictest /'
echo "TANDEM-RT done status=$status"`

// RTModules are what the real-time guest loads: its console is the
// board's UART (the PL011, the 8250), built in, so only a disk's drivers,
// for a guest that is given one.
var RTModules = []string{"virtio_mmio", "virtio_blk"}

// BuildCyclictestGuest writes the real-time guest's initramfs for k
// (RTKernel of goarch) to file, with goarch's cyclictest.
func BuildCyclictestGuest(file, cache, goarch string, k Kernel) error {
	d, err := RTTestData(goarch)
	if err != nil {
		return err
	}
	return BuildScriptGuest(file, cache, ScriptGuest{Kernel: k, Modules: RTModules, Tools: []Tool{d.Cyclictest}, Script: CyclictestScript})
}

// StressScript is the load guest's script: an ext2 file system on its
// first disk, then stress-ng with a CPU worker per vCPU, a memory worker
// and a disk writer on that file system until the guest is stopped. It
// prints "TANDEM-STRESS running" once stress-ng has started.
const StressScript = `for i in $(seq 50); do [ -b /dev/vda ] && break; usleep 100000; done
if ! err=$(mke2fs -q -F /dev/vda 2>&1 && mount -t ext2 /dev/vda /mnt 2>&1); then
	echo "TANDEM-STRESS fail disk: $(echo $err | tail -c 200)"
else
	stress-ng --cpu 0 --vm 1 --vm-bytes 48M --hdd 1 --hdd-bytes 8M --temp-path /mnt --timeout 0 > /tmp/stress.log 2>&1 &
	sleep 1
	if kill -0 $!; then echo "TANDEM-STRESS running"; else echo "TANDEM-STRESS fail stress-ng: $(tail -c 200 /tmp/stress.log)"; fi
	wait
fi`

// StressModules are what the load guest loads: a disk and the file
// system on it, with the CRC32C ext4 asks the crypto API for (not a
// dependency in modules.dep).
var StressModules = []string{"virtio_mmio", "virtio_blk", "crc32c_generic", "ext4"}

// BuildStressGuest writes the load guest's initramfs for k to file.
func BuildStressGuest(file, cache string, k Kernel) error {
	return BuildScriptGuest(file, cache, ScriptGuest{Kernel: k, Modules: StressModules, Tools: []Tool{StressNG}, Script: StressScript})
}

// CyclictestResult is the real-time guest's cyclictest summary.
type CyclictestResult struct {
	Samples int
	// Latencies in µs.
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
	if !(r.Min <= r.P50 && r.P50 <= r.P99 && r.P99 <= r.Max && r.Min <= r.Avg && r.Avg <= r.Max) {
		return r, fmt.Errorf("cyclictest summary %q: want min ≤ p50 ≤ p99 ≤ max and min ≤ avg ≤ max", line)
	}
	return r, nil
}
