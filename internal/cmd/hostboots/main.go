// Command hostboots measures how steady the emulated hosts are: it boots
// each emulated host (x86_64 with nested SVM, the arm64 virt board with
// virtualization=on) many times under each QEMU given, and in every boot
// runs Debian's stock kernel as a guest under Tandem to its power-off,
// which is where a nested KVM under software emulation fails. Boots of
// the QEMUs are interleaved, so a busy machine slows all alike. It prints
// one line per boot and a table: boots, panics, hangs, timeouts, guest
// failures and the median times.
//
//	go run ./internal/cmd/hostboots -n 30 -arch x86_64,arm64 -qemu 7.2=,10.0=build/cache/qemu10/usr/bin
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/stats"
)

func main() {
	n := flag.Int("n", 30, "boots of each host under each QEMU")
	arches := flag.String("arch", "x86_64,arm64", "emulated hosts, comma-separated")
	qemus := flag.String("qemu", "system=", "QEMUs to compare, comma-separated LABEL=DIR (empty DIR: the one on PATH)")
	flag.Parse()
	if err := run(*n, strings.Split(*arches, ","), *qemus); err != nil {
		fmt.Fprintf(os.Stderr, "hostboots: %v\n", err)
		os.Exit(1)
	}
}

type qemu struct{ label, dir string }

// boot is one boot's outcome.
type boot struct {
	outcome         string // qemuhost's Outcome, or "guest failed"
	hostBoot, guest float64
}

// cacheArch is the test-data cache's directory of each host, and the
// GOARCH of its tandem.
var cacheArch = map[string][2]string{"x86_64": {"x86", "amd64"}, "arm64": {"arm64", "arm64"}}

// guestConsole is the stock guest's console device on each host.
var guestConsole = map[string]string{"x86_64": "ttyS0", "arm64": "ttyAMA0"}

func run(n int, arches []string, qemuList string) error {
	var qs []qemu
	for _, f := range strings.Split(qemuList, ",") {
		label, dir, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("-qemu %q: want LABEL=DIR", f)
		}
		if dir != "" {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			dir = abs
		}
		qs = append(qs, qemu{label, dir})
	}
	root, err := qemuhost.RepoRoot()
	if err != nil {
		return err
	}
	out, err := os.MkdirTemp("", "hostboots-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	files := map[string]map[string]string{}
	for _, a := range arches {
		ca, ok := cacheArch[a]
		if !ok {
			return fmt.Errorf("-arch %q: want x86_64 or arm64", a)
		}
		g, err := e2e.PrepareGuest(root, out, ca[0], ca[1])
		if err != nil {
			return err
		}
		files[a] = g.Files()
	}
	results := map[string][]boot{} // arch + " " + label
	for i := 1; i <= n; i++ {
		for _, a := range arches {
			for _, q := range qs {
				b := bootOnce(a, q, files[a])
				k := a + " " + q.label
				results[k] = append(results[k], b)
				fmt.Fprintf(os.Stderr, "hostboots: %s host, QEMU %s, boot %d/%d: %s (host %.1fs, guest %.1fs)\n", a, q.label, i, n, b.outcome, b.hostBoot, b.guest)
			}
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "host\tQEMU\tboots\tok\tpanics\thangs\ttimeouts\tguest failed\terrors\thost boot (median)\tguest to power-off (median)\t\n")
	for _, a := range arches {
		for _, q := range qs {
			bs := results[a+" "+q.label]
			c := map[string]int{}
			var hb, gb []float64
			for _, b := range bs {
				c[b.outcome]++
				if b.hostBoot > 0 {
					hb = append(hb, b.hostBoot)
				}
				if b.outcome == "ok" {
					gb = append(gb, b.guest)
				}
			}
			fmt.Fprintf(tw, "%s\t%s (%s)\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f s\t%.1f s\t\n", a, q.label, version(a, q),
				len(bs), c["ok"], c["panic"], c["hang"], c["timeout"], c["guest failed"], c["error"], stats.Median(hb), stats.Median(gb))
		}
	}
	return tw.Flush()
}

// script boots the guest once. A heartbeat keeps the host's console
// alive while the quiet guest runs, so that a silent console means a
// frozen host.
const script = `(while sleep 10; do echo heartbeat; done) &
t0=$(cut -d' ' -f1 /proc/uptime)
timeout 240 /tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline "console=%s quiet panic=-1" --cpus 2 --memory 256M --disk /guest/disk.img,ro >/tmp/guest 2>&1
s=$?
t1=$(cut -d' ' -f1 /proc/uptime)
grep -q 'TANDEM-TEST done' /tmp/guest || { s=99; tail -15 /tmp/guest; }
echo "HOSTBOOT guest status=$s seconds=$(awk "BEGIN{print $t1-$t0}")"
exit $s
`

var guestLine = regexp.MustCompile(`HOSTBOOT guest status=(\d+) seconds=([0-9.]+)`)

func bootOnce(arch string, q qemu, files map[string]string) boot {
	os.Setenv(qemuhost.QEMUDirEnv, q.dir)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:     arch,
		Files:    files,
		Script:   fmt.Sprintf(script, guestConsole[arch]),
		Memory:   "2G",
		Timeout:  6 * time.Minute,
		Silence:  time.Minute,
		Attempts: 1,
	})
	b := boot{outcome: res.Outcome()}
	if res != nil {
		b.hostBoot = res.Boot.Seconds()
		if m := guestLine.FindStringSubmatch(res.Output); m != nil {
			b.guest, _ = strconv.ParseFloat(m[2], 64)
		}
	}
	if err != nil {
		head, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(os.Stderr, "hostboots: %s\n", head)
		if b.outcome == "panic" || b.outcome == "hang" {
			fmt.Fprintln(os.Stderr, res.Tail(12))
		}
	}
	if b.outcome == "ok" && res.ExitStatus != 0 {
		b.outcome = "guest failed"
		fmt.Fprintf(os.Stderr, "hostboots: the guest failed (status %d):\n%s\n", res.ExitStatus, res.Tail(15))
	}
	return b
}

func version(arch string, q qemu) string {
	os.Setenv(qemuhost.QEMUDirEnv, q.dir)
	return qemuhost.QEMUVersion(arch)
}
