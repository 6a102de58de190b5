package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// exitTarget is the exit round trip's target: Tandem's path within a tenth
// of the minimal C loop's.
const exitTarget = 1.1

// exits compares vmm's BenchmarkExitRoundTrip with kvmloop.c in each
// emulated host: both exit to the same nested KVM, so their ratio is
// what Tandem's own path adds.
func (b *bench) exits() error {
	for _, arch := range b.arches {
		if err := b.exitsIn(arch); err != nil {
			return fmt.Errorf("in the emulated %s host: %w", arch, err)
		}
	}
	return nil
}

func (b *bench) exitsIn(arch string) error {
	cbin := filepath.Join(b.out, "kvmloop-"+goarch(arch))
	cc := "cc"
	if arch == "arm64" {
		cc = "aarch64-linux-gnu-gcc" // make deps installs it
	}
	// Static: the emulated host has no C library.
	if out, err := exec.Command(cc, "-static", "-O2", "-o", cbin, filepath.Join(b.root, "internal/bench/c/kvmloop.c")).CombinedOutput(); err != nil {
		return fmt.Errorf("building kvmloop.c with %s: %v\n%s", cc, err, out)
	}
	gobin, err := b.goBuild("./vmm", goarch(arch), true)
	if err != nil {
		return err
	}
	kinds := []string{"pio", "mmio"}
	if arch == "arm64" {
		kinds = []string{"mmio"} // arm64 has no port I/O
	}
	var script strings.Builder
	for i := 1; i <= b.rounds; i++ {
		for _, kind := range kinds {
			fmt.Fprintf(&script, "echo \"EXITS tandem %s %d $(/bin/vmm.test -test.run '^$' -test.bench 'ExitRoundTrip/%s$' -test.benchtime %dx 2>&1 | grep -o '[0-9.]* ns/op')\"\n", kind, i, kind, b.perRound)
			fmt.Fprintf(&script, "echo \"EXITS c %s %d $(/bin/kvmloop %s %d 2>&1 | grep '^ns/exit')\"\n", kind, i, kind, b.perRound)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: exit round trips, Tandem and the C loop interleaved, %d rounds of %d exits, in an emulated %s host\n", b.rounds, b.perRound, arch)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    arch,
		Files:   map[string]string{"/bin/vmm.test": gobin, "/bin/kvmloop": cbin},
		Script:  script.String(),
		Memory:  "1G",
		Timeout: time.Duration(b.rounds) * 5 * time.Minute,
		Console: progress(),
		Icount:  b.icountFor(arch, "exits"),
	})
	if err != nil {
		return err
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
	for _, kind := range kinds {
		if len(t[kind]) != b.rounds || len(c[kind]) != b.rounds {
			return fmt.Errorf("%s exits: %d Tandem and %d C results of %d rounds:\n%s", kind, len(t[kind]), len(c[kind]), b.rounds, res.Tail(20))
		}
		b.compare("exits", arch, kind+" exit round trip", "ns", "C loop", t[kind], c[kind], 1e-3,
			row{name: fmt.Sprintf("%s exit round trip, %s", kind, arch), unit: "µs", target: exitTarget, peerName: "C loop"})
	}
	return nil
}

// exitsLine is a result line of the exits script: Go's "123.4 ns/op" or
// kvmloop's "ns/exit 56.7".
var exitsLine = regexp.MustCompile(`EXITS (tandem|c) (pio|mmio) (\d+) (?:ns/exit )?([0-9.]+)`)
