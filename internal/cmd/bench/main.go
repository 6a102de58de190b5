// Command bench runs Tandem side by side with its peers and prints the
// ratios (`make bench`). Each comparison runs its sides interleaved, for
// several rounds, in one boot of an emulated host, and compares medians:
//
//   - exits: a guest's MMIO (and, on x86, port) write through Tandem's
//     vCPU path against a minimal C KVM loop doing the same, on the
//     emulated arm64 virt board and the emulated x86 host; target ≤ 1.1×.
//   - boot: Debian's stock kernel with the test initramfs and disk, from
//     the VMM's start to the guest's last marker, under Tandem and under
//     QEMU (-M virt -accel kvm on the arm64 board, run from Debian's arm64
//     packages; microvm on x86); target ≤ 0.5×. The same runs give each
//     VMM's peak resident memory (target ≤ 0.5× QEMU's), Tandem's memory
//     beyond guest RAM (≤ 5 MiB) and Tandem's boot timeline.
//   - io: guests/iobench's virtio-blk tests (sequential 1 MiB, random
//     4 KiB at queue depths 1 and 32) under Tandem and under the same
//     QEMU, on a disk in the host's memory, on the arm64 board; target
//     ≥ 1.0×.
//   - vsock: guests/iobench's 64-byte vsock round trips to an echo
//     service on the host (internal/cmd/vsockecho), 2000 after a warm-up,
//     under Tandem (tandem system routing the guest's connection to a
//     vsock.host UNIX socket) and under the same QEMU with
//     vhost-vsock-device, on the arm64 board; p50 target ≤ 2.0×.
//   - net: guests/iobench's TCP stream, 64 MiB guest→host after a
//     warm-up, to a sink (internal/cmd/sink tcp) at the host's address on
//     a TAP, under Tandem (tandem run --net) and under the same QEMU with
//     virtio-net-device on a tap netdev, vhost-net off, on the arm64
//     board; target ≥ 1.0×.
//   - share: the hypervisor's share of boot on the arm64 virt board:
//     power-on to the control guest's first report over power-on to the
//     host's userspace (AGL's eCockpit requirement); target ≤ 1.25×.
//   - mixed: the control loop's jitter beside a stressed infotainment
//     guest against alone (x86; target ≤ 1.5×).
//   - frame: the host CPU time per flushed 1280×720 virtio-gpu frame
//     (frame.go), in each emulated host; reported, without a peer.
//   - rt: cyclictest's wake-up latency (p99, maximum) in the real-time
//     control guest, Debian's PREEMPT_RT kernel, beside a guest under
//     stress-ng's CPU, memory and disk load against alone, in one boot of
//     the arm64 virt board (target ≤ 1.5×, as mixed; on the wall clock).
//
// The emulated hosts count instructions (qemuhost.Options.Icount): a
// "second" inside them is 10⁹ instructions executed by the host's CPUs,
// so the numbers do not move with this machine's load. Only the x86
// host's guest boots (boot, io) run on the wall clock: see icountFor. Every round's
// values go to build/bench/rounds.csv; the boot timelines and the rounds'
// spread are drawn in build/bench/*.png.
package main

import (
	"encoding/csv"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-hv/tandem/internal/stats"
)

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per comparison")
	flag.IntVar(&o.perRound, "exits", 20000, "guest exits per round of the exit comparison")
	flag.IntVar(&o.rtLoops, "rt-loops", 10000, "cyclictest's 1 ms wake-ups in each run of the rt part")
	flag.BoolVar(&o.icount, "icount", true, "run the emulated hosts on an instruction-counting clock (deterministic; false: wall time)")
	only := flag.String("only", "", "run only these parts, comma-separated: "+strings.Join(benchParts, ", ")+" (default: all)")
	arches := flag.String("arch", "arm64,x86_64", "emulated hosts to compare in, comma-separated")
	flag.Parse()
	var err error
	if o.parts, err = selectParts(*only); err != nil {
		fmt.Fprintf(os.Stderr, "bench: -only: %v\n", err)
		os.Exit(2)
	}
	for _, a := range strings.Split(*arches, ",") {
		if a != "arm64" && a != "x86_64" {
			fmt.Fprintf(os.Stderr, "bench: -arch %q: want arm64 or x86_64\n", a)
			os.Exit(2)
		}
		o.arches = append(o.arches, a)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// options are the command line's.
type options struct {
	rounds, perRound int
	rtLoops          int
	icount           bool
	parts            map[string]bool
	arches           []string
}

// benchParts are the parts of a run, in the order they run.
var benchParts = []string{"exits", "boot", "io", "vsock", "net", "share", "mixed", "frame", "rt"}

func selectParts(only string) (map[string]bool, error) {
	parts := map[string]bool{}
	if only == "" {
		for _, p := range benchParts {
			parts[p] = true
		}
		return parts, nil
	}
	for _, p := range strings.Split(only, ",") {
		if !slices.Contains(benchParts, p) {
			return nil, fmt.Errorf("unknown part %q (want some of %s)", p, strings.Join(benchParts, ", "))
		}
		parts[p] = true
	}
	return parts, nil
}

// bench is one run's state: where it writes, and what it has measured.
type bench struct {
	options
	root, out string
	rows      []row
	samples   []sample
	timelines map[string][]timelineBar // per emulated host
	strips    []strip
}

// sample is one round's value of one metric, a line of rounds.csv.
type sample struct {
	part, arch, metric, vmm string
	round                   int
	value                   float64
	unit                    string
}

func run(o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	b := &bench{options: o, root: root, out: filepath.Join(root, "build", "bench"), timelines: map[string][]timelineBar{}}
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	for _, p := range benchParts {
		if !o.parts[p] {
			continue
		}
		var err error
		switch p {
		case "exits":
			err = b.exits()
		case "boot":
			err = b.boot()
		case "io":
			err = b.io()
		case "vsock":
			err = b.vsock()
		case "net":
			err = b.net()
		case "share":
			err = b.share()
		case "mixed":
			var rows []row
			rows, err = mixedCriticality(root, b.out)
			b.rows = append(b.rows, rows...)
		case "frame":
			err = b.frame()
		case "rt":
			err = b.rt()
		}
		if err != nil {
			b.report()
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	b.report()
	clock := "the wall clock"
	if o.icount {
		clock = "an instruction-counting clock (x86 guest boots: the wall clock)"
	}
	fmt.Printf("bench: %s, %d rounds a comparison, emulated hosts on %s; took %v\n",
		time.Now().Format("2006-01-02"), o.rounds, clock, time.Since(start).Round(time.Second))
	return nil
}

// report prints the table and writes the CSV and the plots of what was
// measured so far.
func (b *bench) report() {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "comparison\tTandem\tpeer\tratio\ttarget\t\n")
	for _, r := range b.rows {
		r.print(tw)
	}
	tw.Flush()
	if err := b.writeCSV(filepath.Join(b.out, "rounds.csv")); err != nil {
		fmt.Fprintf(os.Stderr, "bench: rounds.csv: %v\n", err)
	}
	for arch, bars := range b.timelines {
		f := filepath.Join(b.out, "boot-timeline-"+arch+".png")
		if err := drawTimelines(f, "Boot to the guest's last marker, emulated "+arch+" host (median of the rounds per step)", bars); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", f, err)
		} else {
			fmt.Printf("bench: boot timeline: %s\n", f)
		}
	}
	if len(b.strips) > 0 {
		f := filepath.Join(b.out, "rounds.png")
		if err := drawStrips(f, "Every round of each comparison (dots), medians (bars)", b.strips); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", f, err)
		} else {
			fmt.Printf("bench: rounds: %s, %s\n", f, filepath.Join(b.out, "rounds.csv"))
		}
	}
}

func (b *bench) writeCSV(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"part", "host", "metric", "vmm", "round", "value", "unit"})
	for _, s := range b.samples {
		w.Write([]string{s.part, s.arch, s.metric, s.vmm, strconv.Itoa(s.round), strconv.FormatFloat(s.value, 'g', 8, 64), s.unit})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// compare records both sides' rounds of one metric and returns its row.
func (b *bench) compare(part, arch, metric, unit, peerName string, tandem, peer []float64, factor float64, r row) row {
	for i, v := range tandem {
		b.samples = append(b.samples, sample{part, arch, metric, "tandem", i + 1, v, unit})
	}
	for i, v := range peer {
		b.samples = append(b.samples, sample{part, arch, metric, peerName, i + 1, v, unit})
	}
	b.strips = append(b.strips, strip{Title: r.name, Unit: r.unit, Tandem: scaled(tandem, factor), Peer: scaled(peer, factor), PeerName: peerName})
	r.tandem, r.peer = median(tandem)*factor, median(peer)*factor
	b.rows = append(b.rows, r)
	return r
}

func median(v []float64) float64 { return stats.Median(v) }

// scaled returns vs, each times f.
func scaled(vs []float64, f float64) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = v * f
	}
	return out
}

type row struct {
	name         string
	tandem, peer float64
	unit         string
	target       float64
	// atLeast rows want the ratio at or above target (throughput).
	atLeast bool
	// absolute rows compare with a fixed budget (target, in unit).
	absolute bool
	// report rows have no target: the number is shown for information.
	report bool
	// peerName names the peer in the table.
	peerName string
}

func (r row) verdict(v float64) string {
	if r.atLeast && v >= r.target || !r.atLeast && v <= r.target {
		return "met"
	}
	return "MISSED"
}

func (r row) print(tw *tabwriter.Writer) {
	cmp := "≤"
	if r.atLeast {
		cmp = "≥"
	}
	switch {
	case r.report:
		fmt.Fprintf(tw, "%s\t%s %s\t\t\t(reported)\t\n", r.name, num(r.tandem), r.unit)
	case r.absolute:
		// A peer's number, when there is one, is shown beside the
		// budget, not compared with it.
		peer := "(budget)"
		if r.peer > 0 {
			peer = fmt.Sprintf("%s %s (%s; budget)", num(r.peer), r.unit, r.peerName)
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t\t%s %s %s %s\t\n", r.name, num(r.tandem), r.unit, peer, cmp, num(r.target), r.unit, r.verdict(r.tandem))
	default:
		ratio := r.tandem / r.peer
		fmt.Fprintf(tw, "%s\t%s %s\t%s %s (%s)\t%.2f×\t%s %.2f× %s\t\n", r.name, num(r.tandem), r.unit, num(r.peer), r.unit, r.peerName, ratio, cmp, r.target, r.verdict(ratio))
	}
}

// num prints three significant digits or more.
func num(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

func repoRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(b))), nil
}

// goBuild builds a static binary of pkg for goarch under out.
func (b *bench) goBuild(pkg, goarch string, test bool) (string, error) {
	bin := filepath.Join(b.out, filepath.Base(pkg)+"-"+goarch)
	args := []string{"build", "-trimpath", "-o", bin, pkg}
	if test {
		bin += ".test"
		args = []string{"test", "-c", "-o", bin, pkg}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = b.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s for %s: %v\n%s", pkg, goarch, err, out)
	}
	return bin, nil
}

// icountFor says whether a part runs its emulated host on QEMU's
// instruction-counting clock. The x86 host's nested guests froze in their
// boot under it (the host's CPUs all halted, the guest's timer never
// fired), so there a guest's boot is timed on the wall clock; the tiny
// guests of the exit comparison, and the frame part's programs, which
// run no guest, run fine. The rt part runs on the wall clock too: its
// stressed phase keeps every emulated CPU busy, and on the single
// emulation thread the instruction clock needs, the host's clock
// advanced less than 5 s in 2.5 minutes of a loaded 2-core machine.
func (b *bench) icountFor(arch, part string) bool {
	return b.icount && (arch == "arm64" && part != "rt" || part == "exits" || part == "frame")
}

// goarch is the Go architecture of an emulated host.
func goarch(arch string) string {
	if arch == "arm64" {
		return "arm64"
	}
	return "amd64"
}

// cacheArch is an emulated host's directory in the test-data cache.
func cacheArch(arch string) string {
	if arch == "arm64" {
		return "arm64"
	}
	return "x86"
}
