package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/images/initramfs"
	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// mixedCriticality runs the demo system inside the emulated x86 host
// twice in one boot: the control guest alone, then beside an
// infotainment guest loading its CPUs, its disk and the vsock channel.
// It compares the control loop's wake-up jitter (median over 1 s windows
// of each window's p50 and p99, and the worst wake-up) and reports the
// channel's round trip and throughput between the guests.
//
// Under the emulated host the guests' vCPUs are threads of a TCG QEMU:
// absolute numbers say little about a board, the ratio a little more.
func mixedCriticality(root, out string) ([]row, error) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return nil, err
	}
	k, err := e2e.X86Kernel(cache)
	if err != nil {
		return nil, err
	}
	files := map[string]string{"/s/vmlinuz": k.Image}
	for _, cmd := range []string{"./cmd/tandem", "./internal/cmd/sink"} {
		bin := filepath.Join(out, filepath.Base(cmd)+"-amd64")
		build := exec.Command("go", "build", "-trimpath", "-o", bin, cmd)
		build.Dir = root
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH=amd64")
		if b, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building %s: %v\n%s", cmd, err, b)
		}
		files["/"+filepath.Base(cmd)] = bin
	}
	for _, g := range []string{"control", "infotainment"} {
		f := filepath.Join(out, g+".img")
		if err := e2e.BuildDemoGuest(f, e2e.DemoGuestPkg(g), "amd64", k, root); err != nil {
			return nil, fmt.Errorf("building the %s guest: %w", g, err)
		}
		files["/s/"+g+".img"] = f
	}
	disk := filepath.Join(out, "media.img")
	if _, err := e2e.WriteDisk(disk, 16<<20); err != nil {
		return nil, err
	}
	files["/s/media.img"] = disk
	for name, text := range map[string]string{
		// Alone, the control guest publishes to a host service (sink)
		// instead of the infotainment guest: the same work as beside it.
		"alone.yaml":  fmt.Sprintf(benchControl, "tandem.peer=2:5000", `, allow: ["host:5000"], host: [{port: 5000, socket: sink.sock}]`),
		"stress.yaml": fmt.Sprintf(benchControl, "tandem.peer=4:5000", `, allow: ["4:5000"]`) + fmt.Sprintf(benchInfotainment, "tandem.stress=cpu,disk,channel tandem.flood=3:5999"),
		// The round trips run apart from the jitter runs: the control
		// guest measuring them loads its own vCPU.
		"rtt.yaml": fmt.Sprintf(benchControl, "tandem.peer=4:5000 tandem.rtt=4:5002", `, allow: ["4:5000", "4:5002"]`) + fmt.Sprintf(benchInfotainment, ""),
	} {
		f := filepath.Join(out, name)
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			return nil, err
		}
		files["/s/"+name] = f
	}
	fmt.Fprintln(os.Stderr, "bench: mixed criticality: control guest alone, then beside a stressed infotainment guest, then the channel round trips (about 3 minutes)")
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Files: files, Script: benchScript, Timeout: 8 * time.Minute,
		Console: progress(), PinCPUs: true,
		// Emulated CPU 0 is the housekeeping core: the supervisor, the
		// infotainment guest and the VMMs' other threads. Under
		// SCHED_IDLE its thread gives way at once to QEMU's main loop,
		// which fires the control CPU's timers too (see
		// qemuhost.Options.Yield): on a board those are hardware, and
		// no other core's load delays them.
		Yield: []int{0},
		// The script reports every 10 s; a minute of silence is a
		// frozen host, which qemuhost tries again as it does a panicked
		// one.
		Silence: time.Minute,
		// The stressed phase is where the emulated host's kernel
		// panics or freezes most (see qemuhost.Run); a bench has the
		// time to try more often than a test: in some weeks' runs
		// about every second boot panicked (README).
		Attempts: 8,
		// Not the isolation images boot with (the manifest's
		// IsolationCmdline): with nohz_full and isolcpus the emulated
		// host stopped or panicked in four of five tries under this load
		// (software-emulated SVM running nested guests), against one in
		// three without, so the host boots plain and only the
		// supervisor's partitioning keeps the cores apart.
	})
	// The whole console stays beside the other bench files for a look
	// at the per-second reports.
	if res != nil {
		os.WriteFile(filepath.Join(out, "mixed-console.log"), []byte(res.Output), 0o644)
	}
	if err != nil {
		return nil, err
	}
	alone, stress := jitter(res.Output, "BENCH alone ", false), jitter(res.Output, "BENCH stress ", true)
	if alone.windows == 0 || stress.windows == 0 {
		return nil, fmt.Errorf("no control-loop reports (alone %d, stressed %d windows):\n%s", alone.windows, stress.windows, res.Tail(30))
	}
	rows := []row{
		{name: "control loop p50 wake-up, stressed vs alone", tandem: stress.p50, peer: alone.p50, unit: "µs", target: 1.5, peerName: "alone"},
		{name: "control loop p99 wake-up, stressed vs alone", tandem: stress.p99, peer: alone.p99, unit: "µs", target: 1.5, peerName: "alone"},
		{name: "control loop worst wake-up, stressed vs alone", tandem: stress.max, peer: alone.max, unit: "µs", target: 1.5, peerName: "alone"},
		{name: "control loop misses/s, stressed vs alone", tandem: stress.missRate, peer: max(alone.missRate, 0.01), unit: "/s", target: 1.5, peerName: "alone"},
	}
	// The control guest publishes in both runs (see alone.yaml): the
	// counts say it did.
	for _, p := range []struct {
		name string
		n    float64
	}{{"alone (to a host service)", alone.sent}, {"stressed", stress.sent}} {
		if p.n == 0 {
			fmt.Fprintf(os.Stderr, "bench: the control guest published nothing %s: the two runs do not compare the same work\n", p.name)
		}
		rows = append(rows, row{name: "vehicle state messages the control guest published, " + p.name, tandem: p.n, unit: "msgs", report: true})
	}
	if f := lastWords(res.Output, "BENCH flood "); f["attempts"] != "" {
		att, _ := strconv.ParseFloat(f["attempts"], 64)
		reached, _ := strconv.ParseFloat(f["reached"], 64)
		rows = append(rows,
			row{name: "channel flood: infotainment's tries at a port it may not reach", tandem: att, unit: "tries", report: true},
			row{name: "channel flood: tries that reached the control guest", tandem: reached, unit: "tries", report: true})
	} else {
		fmt.Fprintf(os.Stderr, "bench: no channel flood report\n")
	}
	if f := lastWords(res.Output, "BENCH info "); f["faults"] != "" {
		n, _ := strconv.ParseFloat(f["received"], 64)
		faults, _ := strconv.ParseFloat(f["faults"], 64)
		rows = append(rows,
			row{name: "vehicle state messages received under stress", tandem: n, unit: "msgs", report: true},
			row{name: "end-to-end faults (crc, repeated, reordered, lost)", tandem: faults, unit: "faults", report: true})
	}
	if r := lastWords(res.Output, "BENCH restarts "); r["ends"] != "" {
		// The infotainment guest, ended by a fault, is restarted as in a
		// car; the stressed windows then include its boot.
		n, _ := strconv.ParseFloat(r["ends"], 64)
		rows = append(rows, row{name: "infotainment guest ends under stress (each restarted)", tandem: n, unit: "ends", report: true})
	}
	rtt := lastWords(res.Output, "TANDEM-CONTROL rtt-p50-us=")
	if v, ok := rtt["rtt-p50-us"]; ok {
		p50, _ := strconv.ParseFloat(v, 64)
		p99, _ := strconv.ParseFloat(rtt["rtt-p99-us"], 64)
		tp, _ := strconv.ParseFloat(rtt["throughput-mibs"], 64)
		rows = append(rows,
			row{name: "vsock round trip control↔infotainment p50 (64 B)", tandem: p50, unit: "µs", report: true},
			row{name: "vsock round trip control↔infotainment p99 (64 B)", tandem: p99, unit: "µs", report: true},
			row{name: "vsock throughput control→infotainment→control", tandem: tp, unit: "MiB/s", report: true})
	} else {
		fail := lastWords(res.Output, "TANDEM-CONTROL rtt fail")
		fmt.Fprintf(os.Stderr, "bench: no vsock round-trip report (%v)\n", fail)
	}
	return rows, nil
}

const benchControl = `guests:
  - name: control
    role: control
    kernel: vmlinuz
    initrd: control.img
    cmdline: console=ttyS0 quiet panic=-1 cryptomgr.notests %s
    memory: 192M
    host-cpus: [1]
    rt-priority: 50
    lock-memory: true
    vsock: {cid: 3%s}
`

const benchInfotainment = `  - name: infotainment
    role: infotainment
    kernel: vmlinuz
    initrd: infotainment.img
    cmdline: console=ttyS0 quiet panic=-1 nokaslr %s
    cpus: 2
    memory: 256M
    disks: [{path: media.img}]
    vsock: {cid: 4}
    after: [control]
    restart: {policy: always, backoff: 200ms}
`

const benchScript = `cd /s
# phase NAME SECONDS: run NAME.yaml for SECONDS, then stop it; a
# supervisor that does not stop within 20 s is reported and killed.
phase() {
	cp /proc/interrupts /tmp/irq-before
	/tandem system $1.yaml > $1.log 2>&1 &
	P=$!
	( while kill -0 $P 2>/dev/null; do sleep 10; echo "BENCH tick $1 $(cut -d' ' -f1 /proc/uptime) $(grep -c TANDEM $1.log) $(tail -n1 $1.log | cut -c1-100)"; done ) &
	sleep $2; kill $P
	i=0
	while kill -0 $P 2>/dev/null && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done
	if kill -0 $P 2>/dev/null; then
		echo "BENCH hang: the $1 supervisor did not stop within 20 s"
		tail -20 $1.log
		kill -9 $P
	fi
	wait $P
	# The interrupts the host took on each core during the phase.
	awk 'NR==FNR { if (FNR > 1) for (i = 2; i <= 3; i++) b[$1, i] = $i; next }
		FNR > 1 && $2 ~ /^[0-9]+$/ { d0 = $2 - b[$1, 2]; d1 = $3 - b[$1, 3]; if (d0 + d1 > 0) printf "%s%d/%d ", $1, d0, d1 }
		END { print "" }' /tmp/irq-before /proc/interrupts | sed "s/^/BENCH irqs $1 (core 0\/core 1) /"
	# A guest's kernel oops or panic, if any, with what led to it.
	grep -B3 -A30 -E 'Kernel panic|BUG:|Oops|WARNING:' $1.log | head -80 | sed "s/^/BENCH oops $1 /"
}
/sink sink.sock > sink.log 2>&1 &
phase alone 30
grep 'control | TANDEM-CONTROL' alone.log | sed 's/^/BENCH alone /'
phase stress 60
grep -E '^(control|infotainment) \| TANDEM-' stress.log | sed 's/^/BENCH stress /'
# The last whole reports: a guest stopped mid-line leaves a cut one.
grep -E 'TANDEM-INFO received=[0-9]+ faults=[0-9]+ ' stress.log | tail -1 | sed 's/^/BENCH info /'
grep -E 'TANDEM-INFO flood attempts=[0-9]+ refused=[0-9]+ reached=[0-9]+ ' stress.log | tail -1 | sed 's/^/BENCH flood /'
echo "BENCH restarts ends=$(grep -c 'tandem: infotainment: .*restarting in' stress.log)"
phase rtt 60
grep -E 'TANDEM-CONTROL rtt' rtt.log | sed 's/^/BENCH rtt /'
grep -hE '^tandem: |tandem: guest ended|TANDEM-INFO (connection|listening|fail)' stress.log rtt.log | grep -v 'refused: not in' | sed 's/^/BENCH supervisor /'
# Where a guest that triple-faulted was, by the host's KVM.
kvm-shutdowns | sed 's/^/BENCH /'
exit 0
`

type jitterStats struct {
	windows       int
	p50, p99, max float64
	missRate      float64
	// sent is what the control guest had published by its last whole
	// report.
	sent float64
}

// jitter summarises the control loop's reports after its first five
// windows (boot and connection set-up). With afterInfo, only windows
// after the infotainment guest's first report count: before it, the
// other guest is still booting, not yet loading anything.
func jitter(out, prefix string, afterInfo bool) jitterStats {
	var p50s, p99s []float64
	var s jitterStats
	var firstMiss, lastMiss float64
	infoUp := !afterInfo
	for _, l := range strings.Split(out, "\n") {
		i := strings.Index(l, prefix)
		if i >= 0 && strings.Contains(l, "infotainment | TANDEM-INFO received=") {
			infoUp = true
		}
		// A report cut short (the guest stopped mid-line) lacks its
		// last field and is not a window.
		if i < 0 || !infoUp || !strings.Contains(l, "control | TANDEM-CONTROL misses=") || !strings.Contains(l, " connected=") {
			continue
		}
		w := words(l[i:])
		s.sent, _ = strconv.ParseFloat(w["sent"], 64)
		s.windows++
		if s.windows <= 5 {
			firstMiss, _ = strconv.ParseFloat(w["misses"], 64)
			continue
		}
		a, _ := strconv.ParseFloat(w["p50-us"], 64)
		b, _ := strconv.ParseFloat(w["p99-us"], 64)
		c, _ := strconv.ParseFloat(w["max-us"], 64)
		lastMiss, _ = strconv.ParseFloat(w["misses"], 64)
		p50s, p99s = append(p50s, a), append(p99s, b)
		s.max = max(s.max, c)
	}
	if len(p50s) == 0 {
		s.windows = 0
		return s
	}
	s.p50, s.p99 = medianOf(p50s), medianOf(p99s)
	s.missRate = (lastMiss - firstMiss) / float64(len(p50s))
	return s
}

func medianOf(v []float64) float64 {
	sort.Float64s(v)
	return v[len(v)/2]
}

func words(l string) map[string]string {
	m := map[string]string{}
	for _, w := range strings.Fields(l) {
		if k, v, ok := strings.Cut(w, "="); ok {
			m[k] = v
		}
	}
	return m
}

func lastWords(out, prefix string) map[string]string {
	i := strings.LastIndex(out, prefix)
	if i < 0 {
		return map[string]string{}
	}
	line, _, _ := strings.Cut(out[i:], "\n")
	return words(line)
}

// demoModules are the demo guests' drivers, their watchdog's included.
var demoModules = []string{"virtio_mmio", "virtio_blk", "virtio_console", "vmw_vsock_virtio_transport",
	"wdat_wdt", "sp805_wdt"} // the watchdog: x86 kernels have the first, ARM ones both

// guestInitramfs builds guests/NAME for goarch as /init, with the kernel
// modules mods (and what they depend on) listed in /etc/tandem-modules
// for guests/internal/guestinit to load.
func guestInitramfs(file, name, goarch string, k e2e.Kernel, root string, mods []string) error {
	ents, order, err := initramfs.Modules(k.Modules, mods, true)
	if err != nil {
		return err
	}
	var list strings.Builder
	for _, p := range order {
		fmt.Fprintf(&list, "/lib/modules/%s/%s\n", filepath.Base(k.Modules), p)
	}
	ents = append(initramfs.Console(), ents...)
	ents = append(ents, initramfs.Bytes("/etc/tandem-modules", []byte(list.String()), 0o644),
		initramfs.GoProgram("/init", "github.com/tandem-hv/tandem/guests/"+name, goarch))
	return initramfs.Write(file, ents, initramfs.Options{Gzip: true, GoDir: root})
}
