// Command bench runs Tandem side by side with its peers and prints the
// ratios (`make bench`):
//
//   - exit round trip: a guest port or MMIO write through Tandem's vCPU
//     path against a minimal C KVM loop doing the same, on this host's
//     /dev/kvm; target ≤ 1.3×.
//   - boot: Debian's stock cloud kernel to power-off under Tandem and under
//     QEMU's microvm, inside the same emulated x86 host; target ≤ 0.9×.
//   - memory: Tandem's resident memory beyond guest RAM; target ≤ 8 MiB.
//   - arm64: the guest's boot inside the emulated virt board beside the
//     board's own boot (reported, not gated).
//
// Each pair runs interleaved, several rounds, and the medians are compared,
// so a busy machine slows both sides alike.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	rounds := flag.Int("rounds", 5, "interleaved rounds per comparison")
	boot := flag.Bool("boot", true, "also compare stock-kernel boots inside the emulated host")
	exits := flag.Int("exits", 200000, "guest exits per round")
	bootOnly := flag.Bool("boot-only", false, "run only the stock-kernel boot comparison and the VMM's memory overhead")
	flag.Parse()
	var err error
	if *bootOnly {
		err = runBootOnly(*rounds)
	} else {
		err = run(*rounds, *exits, *boot)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

func run(rounds, exits int, boot bool) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(root, "build", "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	fmt.Fprintf(tw, "comparison\tTandem\tpeer\tratio\ttarget\t\n")
	rows, err := exitRoundTrip(root, out, rounds, exits)
	if err != nil {
		return fmt.Errorf("exit round trip: %w", err)
	}
	if boot {
		more, err := bootCompare(root, out, rounds)
		if err != nil {
			return fmt.Errorf("boot comparison: %w", err)
		}
		rows = append(rows, more...)
		mixed, err := mixedCriticality(root, out)
		if err != nil {
			return fmt.Errorf("mixed criticality: %w", err)
		}
		rows = append(rows, mixed...)
	}
	var notes []string
	if boot {
		n, err := arm64Boot(root, out)
		if err != nil {
			return fmt.Errorf("arm64 boot: %w", err)
		}
		notes = append(notes, n...)
	}
	for _, r := range rows {
		r.print(tw)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Println(n)
	}
	return nil
}

// runBootOnly is the boot comparison and the memory overhead alone.
func runBootOnly(rounds int) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(root, "build", "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	rows, err := bootCompare(root, out, rounds)
	if err != nil {
		return fmt.Errorf("boot comparison: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	defer tw.Flush()
	fmt.Fprintf(tw, "comparison\tTandem\tpeer\tratio\ttarget\t\n")
	for _, r := range rows {
		r.print(tw)
	}
	return nil
}

type row struct {
	name         string
	tandem, peer float64
	unit         string
	target       float64
	// absolute rows compare with a fixed budget (peer) instead of a peer.
	absolute bool
	// report rows have no target: the number is shown for information.
	report bool
}

func (r row) print(tw *tabwriter.Writer) {
	ratio := r.tandem / r.peer
	verdict := "met"
	if ratio > r.target {
		verdict = "MISSED"
	}
	if r.report {
		fmt.Fprintf(tw, "%s\t%.2f %s\t\t\t(reported)\t\n", r.name, r.tandem, r.unit)
		return
	}
	if r.absolute {
		fmt.Fprintf(tw, "%s\t%.2f %s\t(budget)\t\t≤ %.2f %s %s\t\n", r.name, r.tandem, r.unit, r.peer, r.unit, verdict)
		return
	}
	fmt.Fprintf(tw, "%s\t%.2f %s\t%.2f %s\t%.2f×\t≤ %.2f× %s\t\n", r.name, r.tandem, r.unit, r.peer, r.unit, ratio, r.target, verdict)
}

// exitRoundTrip compares hv's BenchmarkExitRoundTrip with kvmloop.c.
func exitRoundTrip(root, out string, rounds, exits int) ([]row, error) {
	cbin := filepath.Join(out, "kvmloop")
	if b, err := exec.Command("cc", "-O2", "-o", cbin, filepath.Join(root, "internal/bench/c/kvmloop.c")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building kvmloop.c: %v\n%s", err, b)
	}
	gobin := filepath.Join(out, "hv.test")
	build := exec.Command("go", "test", "-c", "-o", gobin, "./hv")
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building hv benchmarks: %v\n%s", err, b)
	}
	var rows []row
	for _, kind := range []string{"pio", "mmio"} {
		var t, c []float64
		for i := 0; i < rounds; i++ {
			ns, err := goBench(gobin, kind, exits)
			if err != nil {
				return nil, err
			}
			t = append(t, ns)
			ns, err = cBench(cbin, kind, exits)
			if err != nil {
				return nil, err
			}
			c = append(c, ns)
			fmt.Fprintf(os.Stderr, "bench: %s exit round %d/%d: tandem %.0f ns, C %.0f ns\n", kind, i+1, rounds, t[i], c[i])
		}
		rows = append(rows, row{name: kind + " exit round trip (median)", tandem: median(t) / 1000, peer: median(c) / 1000, unit: "µs", target: 1.3})
	}
	return rows, nil
}

var nsPerOp = regexp.MustCompile(`\s([0-9.]+) ns/op`)

func goBench(bin, kind string, exits int) (float64, error) {
	cmd := exec.Command(bin, "-test.run", "^$", "-test.bench", "ExitRoundTrip/"+kind+"$", "-test.benchtime", strconv.Itoa(exits)+"x")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", bin, err, b)
	}
	m := nsPerOp.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no ns/op in benchmark output:\n%s", b)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func cBench(bin, kind string, exits int) (float64, error) {
	b, err := exec.Command(bin, kind, strconv.Itoa(exits)).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%s: %v\n%s", bin, err, b)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "ns/exit "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no ns/exit in kvmloop output:\n%s", b)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func repoRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(b))), nil
}
