package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// rtTarget is the stressed ÷ alone bound of the real-time guest's
// wake-up latency: the control loop's (mixed).
const rtTarget = 1.5

// rtDelay is how long the stressed run's real-time guest waits before
// cyclictest, in its own seconds: the load guest boots, makes its file
// system and starts stress-ng meanwhile (rtPhase checks it did).
const rtDelay = 30

// rtControl is the real-time control guest as the demo's control guest
// runs (host core 1, SCHED_FIFO 50, memory locked): Debian's PREEMPT_RT
// kernel running cyclictest (e2e.CyclictestScript).
const rtControl = `guests:
  - name: control
    role: control
    kernel: rt-vmlinuz
    initrd: rt.img
    cmdline: console=ttyAMA0 quiet panic=-1 tandem.rt-loops=%d tandem.rt-delay=%d
    memory: 160M
    host-cpus: [1]
    rt-priority: 50
    lock-memory: true
`

// rtLoad is the load guest: Debian's stock arm64 kernel running
// stress-ng on its two vCPUs, its memory and its disk
// (e2e.StressScript), on the host's other core.
const rtLoad = `  - name: infotainment
    role: infotainment
    kernel: vmlinuz
    initrd: stress.img
    cmdline: console=ttyAMA0 quiet panic=-1
    cpus: 2
    memory: 256M
    disks: [{path: stress-disk.img}]
`

// rtScript runs the real-time guest alone, then beside the load guest,
// each until it reports done (or a bound passes), and prints the guests'
// report lines prefixed with the phase.
const rtScript = `cd /s
# phase NAME SECONDS: run NAME.yaml until the real-time guest is done or
# SECONDS pass, then stop it.
phase() {
	/tandem system $1.yaml > $1.log 2>&1 &
	P=$!
	i=0
	while [ $i -lt $2 ] && ! grep -q 'TANDEM-RT done' $1.log; do
		sleep 1; i=$((i+1))
		[ $((i %% 5)) = 0 ] && echo "BENCH tick $1 $i s uptime $(cut -d' ' -f1 /proc/uptime) $(grep -c TANDEM- $1.log) reports"
	done
	kill $P
	i=0
	while kill -0 $P 2>/dev/null && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done
	kill -0 $P 2>/dev/null && { echo "BENCH hang: the $1 supervisor did not stop within 20 s"; kill -9 $P; }
	wait $P
	grep -E 'TANDEM-(RT|STRESS)|^tandem: ' $1.log | sed "s/^/BENCH $1 /"
}
phase alone %d
phase stress %d
exit 0
`

// rt runs cyclictest in the real-time control guest on the emulated
// arm64 virt board, alone and beside the load guest under stress-ng, in
// one boot of the board, and compares the wake-up latencies' p99 and
// maximum, stressed ÷ alone.
func (b *bench) rt() error {
	const arch = "arm64"
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return err
	}
	rk, err := e2e.RTKernel(cache, arch)
	if err != nil {
		return err
	}
	k, err := e2e.CachedKernel(cache, "arm64")
	if err != nil {
		return err
	}
	files := map[string]string{"/s/rt-vmlinuz": rk.Image, "/s/vmlinuz": k.Image}
	for _, g := range []struct {
		name  string
		build func(file, cache string, k e2e.Kernel) error
		k     e2e.Kernel
	}{{"rt.img", func(file, cache string, k e2e.Kernel) error { return e2e.BuildCyclictestGuest(file, cache, arch, k) }, rk},
		{"stress.img", e2e.BuildStressGuest, k}} {
		f := filepath.Join(b.out, g.name)
		if err := g.build(f, cache, g.k); err != nil {
			return fmt.Errorf("building %s: %w", g.name, err)
		}
		files["/s/"+g.name] = f
	}
	disk := filepath.Join(b.out, "stress-disk.img")
	if _, err := e2e.WriteDisk(disk, 32<<20); err != nil {
		return err
	}
	files["/s/stress-disk.img"] = disk
	bin, err := b.goBuild("./cmd/tandem", "arm64", false)
	if err != nil {
		return err
	}
	files["/tandem"] = bin
	for name, text := range map[string]string{
		"alone.yaml":  fmt.Sprintf(rtControl, b.rtLoops, 0),
		"stress.yaml": fmt.Sprintf(rtControl, b.rtLoops, rtDelay) + rtLoad,
	} {
		f := filepath.Join(b.out, "rt-"+name)
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			return err
		}
		files["/s/"+name] = f
	}
	// A phase's bound, in the host's seconds: the guest's boot, the
	// delay and the wake-ups at 1 ms, each second of the guest's taking
	// a few under emulation.
	limit := 120 + rtDelay + 5*b.rtLoops/1000
	fmt.Fprintf(os.Stderr, "bench: real-time guest: cyclictest (%d wake-ups) in Debian's PREEMPT_RT kernel alone, then beside stress-ng, on the emulated arm64 board\n", b.rtLoops)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch: arch, Files: files, Script: fmt.Sprintf(rtScript, limit, limit), Memory: "2G",
		Timeout: 2*time.Duration(limit)*time.Second + 5*time.Minute, Console: progress(), Icount: b.icountFor(arch, "rt"),
		// Each emulated CPU on a machine CPU of its own, as in mixed:
		// the load guest's core does not run the control guest's.
		PinCPUs: true,
	})
	if res != nil {
		os.WriteFile(filepath.Join(b.out, "rt-console.log"), []byte(res.Output), 0o644)
	}
	if err != nil {
		return err
	}
	alone, err := rtPhase(res.Output, "alone")
	if err != nil {
		return err
	}
	stress, err := rtPhase(res.Output, "stress")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: cyclictest alone %+v, stressed %+v\n", alone, stress)
	for _, m := range []struct {
		metric, unit  string
		alone, stress float64
	}{
		{"cyclictest min", "µs", alone.Min, stress.Min},
		{"cyclictest avg", "µs", alone.Avg, stress.Avg},
		{"cyclictest p50", "µs", alone.P50, stress.P50},
		{"cyclictest p99", "µs", alone.P99, stress.P99},
		{"cyclictest max", "µs", alone.Max, stress.Max},
	} {
		b.samples = append(b.samples, sample{"rt", arch, m.metric, "alone", 1, m.alone, m.unit},
			sample{"rt", arch, m.metric, "stressed", 1, m.stress, m.unit})
	}
	b.rows = append(b.rows,
		row{name: "cyclictest p99 wake-up, PREEMPT_RT guest, stressed vs alone, arm64 virt board", tandem: stress.P99, peer: alone.P99,
			unit: "µs", target: rtTarget, peerName: "alone"},
		row{name: "cyclictest worst wake-up, PREEMPT_RT guest, stressed vs alone, arm64 virt board", tandem: stress.Max, peer: alone.Max,
			unit: "µs", target: rtTarget, peerName: "alone"})
	return nil
}

// rtPhase returns the cyclictest summary of one phase of rtScript's
// console. The stressed phase's counts only if the load was running
// before cyclictest started.
func rtPhase(console, phase string) (e2e.CyclictestResult, error) {
	prefix := "BENCH " + phase + " "
	var lines []string
	for _, l := range strings.Split(console, "\n") {
		if i := strings.Index(l, prefix); i >= 0 {
			lines = append(lines, l[i+len(prefix):])
		}
	}
	out := strings.Join(lines, "\n")
	if !strings.Contains(out, e2e.CyclictestMarker+"done status=0") {
		return e2e.CyclictestResult{}, fmt.Errorf("%s: the real-time guest's cyclictest did not end with status 0:\n%s", phase, out)
	}
	if phase == "stress" {
		load, start := strings.Index(out, "TANDEM-STRESS running"), strings.Index(out, e2e.CyclictestMarker+"cyclictest start")
		if strings.Contains(out, "TANDEM-STRESS fail") {
			return e2e.CyclictestResult{}, fmt.Errorf("stress: the load guest failed:\n%s", out)
		}
		if load < 0 || start < 0 || load > start {
			return e2e.CyclictestResult{}, fmt.Errorf("stress: the load guest's stress-ng was not running when cyclictest started (raise rtDelay):\n%s", out)
		}
		if end := strings.Index(out, "tandem: infotainment: VMM exited"); end >= 0 && end < strings.Index(out, e2e.CyclictestMarker+"done") {
			return e2e.CyclictestResult{}, fmt.Errorf("stress: the load guest ended before cyclictest did:\n%s", out)
		}
	}
	r, err := e2e.ParseCyclictest(out)
	if err != nil {
		return r, fmt.Errorf("%s: %w", phase, err)
	}
	return r, nil
}
