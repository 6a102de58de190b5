// Command bench runs Tandem side by side with its peers and prints the
// ratios (`make bench`):
//
//   - exit round trip: a guest port or MMIO write through Tandem's vCPU
//     path against a minimal C KVM loop doing the same, on this host's
//     /dev/kvm, or both inside one emulated host where it has none;
//     target ≤ 1.3×.
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
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/stats"
	"github.com/tandem-hv/tandem/internal/testenv"
)

func main() {
	rounds := flag.Int("rounds", 5, "interleaved rounds per comparison")
	boot := flag.Bool("boot", true, "also compare stock-kernel boots inside the emulated host")
	exits := flag.Int("exits", 200000, "guest exits per round")
	only := flag.String("only", "", "run only these parts, comma-separated: exits, boot, mixed, arm64 (default: all)")
	flag.StringVar(&exitsWhere, "exits-in", "auto", "where the exit round trips run: here (this machine's /dev/kvm), host (an emulated host), auto (here when /dev/kvm opens)")
	flag.Parse()
	if exitsWhere != "auto" && exitsWhere != "here" && exitsWhere != "host" {
		fmt.Fprintf(os.Stderr, "bench: -exits-in %q: want here, host or auto\n", exitsWhere)
		os.Exit(2)
	}
	parts, err := selectParts(*only, *boot)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -only: %v\n", err)
		os.Exit(2)
	}
	if err := run(*rounds, *exits, parts); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// exitsWhere is -exits-in.
var exitsWhere string

// benchParts are the parts of a run, in the order they run.
var benchParts = []string{"exits", "boot", "mixed", "arm64"}

// selectParts turns -only (and -boot=false, which drops the parts that
// need an emulated host) into the set of parts to run.
func selectParts(only string, boot bool) (map[string]bool, error) {
	parts := map[string]bool{}
	if only == "" {
		for _, p := range benchParts {
			parts[p] = boot || p == "exits"
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

func run(rounds, exits int, parts map[string]bool) error {
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
	var rows []row
	if parts["exits"] {
		more, err := exitRoundTrip(root, out, exitsWhere, rounds, exits)
		if err != nil {
			return fmt.Errorf("exit round trip: %w", err)
		}
		rows = append(rows, more...)
	}
	if parts["boot"] {
		more, err := bootCompare(root, out, rounds)
		if err != nil {
			return fmt.Errorf("boot comparison: %w", err)
		}
		rows = append(rows, more...)
	}
	if parts["mixed"] {
		mixed, err := mixedCriticality(root, out)
		if err != nil {
			return fmt.Errorf("mixed criticality: %w", err)
		}
		rows = append(rows, mixed...)
	}
	var notes []string
	if parts["arm64"] {
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

// exitRoundTrip compares vmm's BenchmarkExitRoundTrip with kvmloop.c, both
// on this machine's /dev/kvm, or, where it has none (or where="host"),
// both inside one emulated host (exitRoundTripInHost).
func exitRoundTrip(root, out, where string, rounds, exits int) ([]row, error) {
	inHost := where == "host" || (where == "auto" && testenv.KVMUsable() != nil)
	cbin := filepath.Join(out, "kvmloop")
	cc := []string{"-O2", "-o", cbin, filepath.Join(root, "internal/bench/c/kvmloop.c")}
	if inHost {
		cc = append([]string{"-static"}, cc...) // the emulated host has no C library
	}
	if b, err := exec.Command("cc", cc...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building kvmloop.c: %v\n%s", err, b)
	}
	gobin := filepath.Join(out, "vmm.test")
	build := exec.Command("go", "test", "-c", "-o", gobin, "./vmm")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building vmm benchmarks: %v\n%s", err, b)
	}
	if inHost {
		return exitRoundTripInHost(gobin, cbin, rounds, exits)
	}
	fmt.Fprintf(os.Stderr, "bench: exit round trips on this machine's /dev/kvm\n")
	var rows []row
	for _, kind := range []string{"pio", "mmio"} {
		var t, c []float64
		for i := 0; i < rounds; i++ {
			b, err := exec.Command(gobin, goBenchArgs(kind, exits)...).CombinedOutput()
			if err != nil {
				return nil, fmt.Errorf("%s: %v\n%s", gobin, err, b)
			}
			ns, err := goBenchResult(b)
			if err != nil {
				return nil, err
			}
			t = append(t, ns)
			if b, err = exec.Command(cbin, kind, strconv.Itoa(exits)).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("%s: %v\n%s", cbin, err, b)
			}
			if ns, err = cBenchResult(b); err != nil {
				return nil, err
			}
			c = append(c, ns)
			fmt.Fprintf(os.Stderr, "bench: %s exit round %d/%d: tandem %.0f ns, C %.0f ns\n", kind, i+1, rounds, t[i], c[i])
		}
		rows = append(rows, exitRow(kind, "", t, c))
	}
	return rows, nil
}

func exitRow(kind, where string, t, c []float64) row {
	return row{name: kind + " exit round trip" + where + " (median)", tandem: stats.Median(t) / 1000, peer: stats.Median(c) / 1000, unit: "µs", target: 1.3}
}

// exitRoundTripInHost runs the interleaved rounds of both loops in one
// boot of an emulated host of this machine's architecture, whose nested
// KVM stands in for the /dev/kvm this machine lacks. Both sides exit to
// the same nested KVM, so their ratio is meaningful; the absolute
// numbers are the emulated host's.
func exitRoundTripInHost(gobin, cbin string, rounds, exits int) ([]row, error) {
	arch := qemuhost.NativeArch()
	// An exit under nested KVM in software emulation costs some 30 times
	// one on hardware: a tenth of the exits keeps a round near a minute.
	exits = max(exits/10, 1000)
	var script strings.Builder
	for i := 1; i <= rounds; i++ {
		for _, kind := range []string{"pio", "mmio"} {
			fmt.Fprintf(&script, "echo \"EXITS tandem %s %d $(/bin/vmm.test %s 2>&1 | grep -o '[0-9.]* ns/op')\"\n", kind, i, strings.Join(goBenchArgs(kind, exits), " "))
			fmt.Fprintf(&script, "echo \"EXITS c %s %d $(/bin/kvmloop %s %d 2>&1 | grep '^ns/exit')\"\n", kind, i, kind, exits)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: exit round trips of both loops in one emulated %s host (no /dev/kvm here, or -exits-in host), %d exits a round\n", arch, exits)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    arch,
		Files:   map[string]string{"/bin/vmm.test": gobin, "/bin/kvmloop": cbin},
		Script:  script.String(),
		Memory:  "1G",
		Timeout: time.Duration(rounds) * 2 * time.Minute,
		Console: progress(),
	})
	if err != nil {
		return nil, err
	}
	t, c := map[string][]float64{}, map[string][]float64{}
	for _, m := range exitsLine.FindAllStringSubmatch(res.Output, -1) {
		v, _ := strconv.ParseFloat(m[4], 64)
		if m[1] == "tandem" {
			t[m[2]] = append(t[m[2]], v)
		} else {
			c[m[2]] = append(c[m[2]], v)
		}
	}
	var rows []row
	for _, kind := range []string{"pio", "mmio"} {
		if len(t[kind]) != rounds || len(c[kind]) != rounds {
			return nil, fmt.Errorf("%s exits in the emulated host: %d Tandem and %d C results of %d rounds:\n%s", kind, len(t[kind]), len(c[kind]), rounds, res.Tail(20))
		}
		rows = append(rows, exitRow(kind, ", in an emulated "+arch+" host", t[kind], c[kind]))
	}
	return rows, nil
}

// exitsLine is a result line of exitRoundTripInHost's script: Go's "123.4
// ns/op" or kvmloop's "ns/exit 56.7".
var exitsLine = regexp.MustCompile(`EXITS (tandem|c) (pio|mmio) (\d+) (?:ns/exit )?([0-9.]+)`)

var nsPerOp = regexp.MustCompile(`\s([0-9.]+) ns/op`)

func goBenchArgs(kind string, exits int) []string {
	return []string{"-test.run", "^$", "-test.bench", "ExitRoundTrip/" + kind + "$", "-test.benchtime", strconv.Itoa(exits) + "x"}
}

func goBenchResult(b []byte) (float64, error) {
	m := nsPerOp.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("no ns/op in benchmark output:\n%s", b)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

func cBenchResult(b []byte) (float64, error) {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "ns/exit "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no ns/exit in kvmloop output:\n%s", b)
}

func repoRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module root: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(b))), nil
}
