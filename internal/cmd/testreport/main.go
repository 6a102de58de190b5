// Command testreport sums up a test run's report (testenv.Record): where
// each test that needs /dev/kvm ran, how the emulated hosts fared —
// boots, panics, hangs, resets, timeouts and retries per architecture and QEMU —
// and the end-to-end tests' guest kernel matrix.
// `make test` prints it after the tests.
//
//	go run ./internal/cmd/testreport build/test-report.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-hv/tandem/internal/stats"
	"github.com/tandem-hv/tandem/internal/testenv"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: testreport REPORT.jsonl")
		os.Exit(2)
	}
	evs, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
		os.Exit(1)
	}
	write(os.Stdout, evs)
}

func read(name string) ([]testenv.Event, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []testenv.Event
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var ev testenv.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, n, err)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// hostKey groups host boots.
type hostKey struct{ arch, qemu string }

type hostSum struct {
	boots, retries int
	outcomes       map[string]int
	bootTimes      []float64
}

func write(w io.Writer, evs []testenv.Event) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	var kvm []testenv.Event
	hosts := map[hostKey]*hostSum{}
	deliberate := 0
	var cells, guestRetries []testenv.Event
	for _, ev := range evs {
		switch ev.Kind {
		case "guest-kernel":
			cells = append(cells, ev)
		case "guest-retry":
			guestRetries = append(guestRetries, ev)
		case "kvm":
			kvm = append(kvm, ev)
		case "host":
			if strings.Contains(ev.Detail, testenv.CrashedOnPurpose) {
				deliberate++
				continue
			}
			k := hostKey{ev.Arch, ev.QEMU}
			s := hosts[k]
			if s == nil {
				s = &hostSum{outcomes: map[string]int{}}
				hosts[k] = s
			}
			s.boots++
			s.outcomes[ev.Outcome]++
			if ev.Retried {
				s.retries++
			}
			if ev.BootSeconds > 0 {
				s.bootTimes = append(s.bootTimes, ev.BootSeconds)
			}
		}
	}
	fmt.Fprintf(tw, "tests that need /dev/kvm: %d\n", len(kvm))
	for _, ev := range kvm {
		fmt.Fprintf(tw, "  %s %s\t%s\t%s\t%v\n", ev.Package, ev.Test, ev.Where, ev.Outcome, dur(ev.Seconds))
	}
	var keys []hostKey
	total := 0
	for k, s := range hosts {
		keys = append(keys, k)
		total += s.boots
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].arch+keys[i].qemu < keys[j].arch+keys[j].qemu })
	fmt.Fprintf(tw, "emulated-host boots: %d", total)
	if deliberate > 0 {
		fmt.Fprintf(tw, " (and %d of hosts crashed on purpose by qemuhost's own tests)", deliberate)
	}
	fmt.Fprintln(tw)
	for _, k := range keys {
		s := hosts[k]
		boot := "boot time not recorded"
		if len(s.bootTimes) > 0 {
			boot = fmt.Sprintf("boot median %v, max %v", dur(stats.Median(s.bootTimes)), dur(maxOf(s.bootTimes)))
		}
		fmt.Fprintf(tw, "  %s host, QEMU %s:\t%d boots\t%d ok\t%d panics\t%d hangs\t%d resets\t%d timeouts\t%d errors\t%d retries\t%s\n",
			k.arch, k.qemu, s.boots, s.outcomes["ok"], s.outcomes["panic"], s.outcomes["hang"], s.outcomes["reset"], s.outcomes["timeout"], s.outcomes["error"],
			s.retries, boot)
	}
	fmt.Fprintf(tw, "guest runs retried after the emulated host's KVM failed them (a traced shutdown, a kernel fetch fault loop, or a vCPU in user mode at a kernel address): %d\n", len(guestRetries))
	for _, ev := range guestRetries {
		fmt.Fprintf(tw, "  %s %s\t%s\n", ev.Package, ev.Test, ev.Detail)
	}
	tw.Flush()
	writeMatrix(w, cells)
}

// writeMatrix prints the guest kernel matrix: a row per guest
// architecture, host and userland, a column per kernel version, each
// cell the subtest's outcome. A cell run more than once (make test runs
// some packages twice) shows its worst outcome.
func writeMatrix(w io.Writer, cells []testenv.Event) {
	if len(cells) == 0 {
		return
	}
	rank := map[string]int{"": 0, "skip": 1, "pass": 2, "fail": 3}
	got := map[[2]string]string{}
	rowSet, kernelSet := map[string]bool{}, map[string]bool{}
	for _, c := range cells {
		k := [2]string{c.Row, c.Kernel}
		if rank[c.Outcome] >= rank[got[k]] {
			got[k] = c.Outcome
		}
		rowSet[c.Row], kernelSet[c.Kernel] = true, true
	}
	rows, kernels := sortedKeys(rowSet), sortedKeys(kernelSet)
	sortVersions(kernels)
	fmt.Fprintln(w, "guest kernel matrix:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "  guest")
	for _, k := range kernels {
		fmt.Fprintf(tw, "\tLinux %s", k)
	}
	fmt.Fprintln(tw)
	for _, r := range rows {
		fmt.Fprintf(tw, "  %s", r)
		for _, k := range kernels {
			c := got[[2]string{r, k}]
			if c == "" {
				c = "-"
			}
			fmt.Fprintf(tw, "\t%s", c)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// sortedKeys lists a set's members in order.
func sortedKeys(set map[string]bool) []string {
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sortVersions orders kernel versions by their numbers: 6.9 before 6.12.
func sortVersions(vs []string) {
	sort.Slice(vs, func(i, j int) bool {
		a, b := strings.Split(vs[i], "."), strings.Split(vs[j], ".")
		for n := 0; n < len(a) && n < len(b); n++ {
			x, errX := strconv.Atoi(a[n])
			y, errY := strconv.Atoi(b[n])
			if errX != nil || errY != nil {
				if a[n] != b[n] {
					return a[n] < b[n]
				}
				continue
			}
			if x != y {
				return x < y
			}
		}
		return len(a) < len(b)
	})
}

func dur(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond)
}

func maxOf(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
