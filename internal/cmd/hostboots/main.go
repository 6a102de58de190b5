// Command hostboots measures how steady the emulated hosts are: it boots
// each emulated host (x86_64 with nested SVM, the arm64 virt board with
// virtualization=on) many times under each QEMU and each x86 host setting
// given, and in every boot runs Debian's stock kernel as a guest under
// Tandem to its power-off, which is where a nested KVM under software
// emulation fails. Boots are interleaved, so a busy machine slows all
// alike. It prints one line per boot and a table: boots, panics, hangs, resets,
// timeouts, guest failures and the median times.
//
//	go run ./internal/cmd/hostboots -n 30 -arch x86_64,arm64 -qemu 7.2=,10.0=build/cache/qemu10/usr/bin
//
// -session keeps each boot's host running stock guests (-parallel at
// once, each with 2 vCPUs) until that much time has passed, the way a long
// test holds its host; the table then counts failures per minute of
// nested guests. -host compares x86 host settings (qemuhost.ParseHost's,
// and smp=N for the host's CPUs), semicolon-separated LABEL=SETTINGS:
//
//	go run ./internal/cmd/hostboots -arch x86_64 -n 4 -session 4m -parallel 2 \
//		-host 'today=;single=tcg=single;k6.12=kernel=x86-6.12;rome=cpu=EPYC-Rome;smp1=smp=1'
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
	n := flag.Int("n", 30, "boots of each host under each QEMU and host setting")
	arches := flag.String("arch", "x86_64,arm64", "emulated hosts, comma-separated")
	qemus := flag.String("qemu", "system=", "QEMUs to compare, comma-separated LABEL=DIR (empty DIR: the one on PATH)")
	hosts := flag.String("host", "default=", "x86 host settings to compare, semicolon-separated LABEL=SETTINGS (qemuhost.ParseHost's, and smp=N)")
	session := flag.Duration("session", 0, "keep running guests in each boot for this long (0: one guest per boot)")
	parallel := flag.Int("parallel", 1, "guests running at once in a -session boot")
	guestArgs := flag.String("guest-cmdline", "", "appended to the stock guest's kernel command line (idle=poll keeps its vCPUs in guest mode)")
	flag.Parse()
	guestCmdline = *guestArgs
	if err := run(*n, strings.Split(*arches, ","), *qemus, *hosts, *session, *parallel); err != nil {
		fmt.Fprintf(os.Stderr, "hostboots: %v\n", err)
		os.Exit(1)
	}
}

type qemu struct{ label, dir string }

// setting is one x86 host setting compared.
type setting struct {
	label string
	host  qemuhost.Host
	cpus  int // 0: qemuhost's default
}

func (s setting) String() string {
	d := s.host.String()
	if s.cpus != 0 {
		d += fmt.Sprintf(",smp=%d", s.cpus)
		d = strings.TrimPrefix(d, "default,")
	}
	return d
}

func parseSettings(list string) ([]setting, error) {
	var ss []setting
	for _, f := range strings.Split(list, ";") {
		label, spec, ok := strings.Cut(f, "=")
		if !ok || label == "" {
			return nil, fmt.Errorf("-host %q: want LABEL=SETTINGS", f)
		}
		s := setting{label: label}
		var rest []string
		for _, kv := range strings.Split(spec, ",") {
			if v, ok := strings.CutPrefix(kv, "smp="); ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					return nil, fmt.Errorf("-host %q: smp=%s: want a number of CPUs", f, v)
				}
				s.cpus = n
				continue
			}
			rest = append(rest, kv)
		}
		h, err := qemuhost.ParseHost(strings.Join(rest, ","))
		if err != nil {
			return nil, fmt.Errorf("-host %q: %w", f, err)
		}
		s.host = h
		ss = append(ss, s)
	}
	return ss, nil
}

// boot is one boot's outcome.
type boot struct {
	outcome  string // qemuhost's Outcome, or "guest failed"
	hostBoot float64
	guests   []float64 // each guest's seconds to power-off, of those that finished
	failed   int       // guests that did not finish
	nested   float64   // seconds from the host's boot to its end: guests ran for most of it
}

// cacheArch is the test-data cache's directory of each host, and the
// GOARCH of its tandem.
var cacheArch = map[string][2]string{"x86_64": {"x86", "amd64"}, "arm64": {"arm64", "arm64"}}

// guestCmdline is appended to the stock guest's command line (-guest-cmdline).
var guestCmdline string

// guestConsole is the stock guest's console device on each host.
var guestConsole = map[string]string{"x86_64": "ttyS0", "arm64": "ttyAMA0"}

func run(n int, arches []string, qemuList, hostList string, session time.Duration, parallel int) error {
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
	ss, err := parseSettings(hostList)
	if err != nil {
		return err
	}
	if parallel < 1 {
		return fmt.Errorf("-parallel %d: want 1 or more", parallel)
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
	var runs []row
	for _, a := range arches {
		for _, q := range qs {
			for _, s := range ss {
				if a != "x86_64" && (s.host != qemuhost.Host{}) {
					continue // only the x86 host takes settings
				}
				runs = append(runs, row{a, q, s})
			}
		}
	}
	results := make([][]boot, len(runs))
	for i := 1; i <= n; i++ {
		for k, r := range runs {
			b := bootOnce(r.arch, r.q, r.s, files[r.arch], session, parallel)
			results[k] = append(results[k], b)
			fmt.Fprintf(os.Stderr, "hostboots: %s host, QEMU %s, %s, boot %d/%d: %s (host %.1fs, %d guests, %d failed, %.1f nested min)\n",
				r.arch, r.q.label, r.s.label, i, n, b.outcome, b.hostBoot, len(b.guests), b.failed, b.nested/60)
			if session > 0 {
				// A long comparison may be cut short: the table after
				// each session keeps what was measured so far.
				table(os.Stderr, runs, results, true)
			}
		}
	}
	return table(os.Stdout, runs, results, session > 0)
}

// row is one host, QEMU and setting compared.
type row struct {
	arch string
	q    qemu
	s    setting
}

// table prints each row's boots: results[k] are rows[k]'s.
func table(w *os.File, rows []row, results [][]boot, sessions bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	if sessions {
		fmt.Fprintf(tw, "host\tQEMU\tsetting\tsessions\tnested min\tpanics\thangs\tresets\ttimeouts\terrors\tfailures per nested min\tguests\tguests failed\thost boot (median)\tguest to power-off (median)\t\n")
	} else {
		fmt.Fprintf(tw, "host\tQEMU\tsetting\tboots\tok\tpanics\thangs\tresets\ttimeouts\tguest failed\terrors\thost boot (median)\tguest to power-off (median)\t\n")
	}
	for k, r := range rows {
		bs := results[k]
		c := map[string]int{}
		var hb, gb []float64
		var nested float64
		var guests, failed int
		for _, b := range bs {
			c[b.outcome]++
			if b.hostBoot > 0 {
				hb = append(hb, b.hostBoot)
			}
			gb = append(gb, b.guests...)
			nested += b.nested
			guests += len(b.guests) + b.failed
			failed += b.failed
		}
		if sessions {
			min := nested / 60
			rate := 0.0
			if min > 0 {
				rate = float64(c["panic"]+c["hang"]+c["reset"]+c["timeout"]) / min
			}
			fmt.Fprintf(tw, "%s\t%s (%s)\t%s (%s)\t%d\t%.1f\t%d\t%d\t%d\t%d\t%d\t%.2f\t%d\t%d\t%.1f s\t%.1f s\t\n", r.arch, r.q.label, version(r.arch, r.q), r.s.label, r.s,
				len(bs), min, c["panic"], c["hang"], c["reset"], c["timeout"], c["error"], rate, guests, failed, stats.Median(hb), stats.Median(gb))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s (%s)\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f s\t%.1f s\t\n", r.arch, r.q.label, version(r.arch, r.q), r.s.label, r.s,
			len(bs), c["ok"], c["panic"], c["hang"], c["reset"], c["timeout"], c["guest failed"], c["error"], stats.Median(hb), stats.Median(gb))
	}
	return tw.Flush()
}

// script boots the guest once. A heartbeat keeps the host's console
// alive while the quiet guest runs, so that a silent console means a
// frozen host.
const script = `(while sleep 10; do echo heartbeat; done) &
t0=$(cut -d' ' -f1 /proc/uptime)
timeout 240 /tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline "console=%s quiet panic=-1 %s" --cpus 2 --memory 256M --disk /guest/disk.img,ro >/tmp/guest 2>&1
s=$?
t1=$(cut -d' ' -f1 /proc/uptime)
grep -q 'TANDEM-TEST done' /tmp/guest || { s=99; tail -15 /tmp/guest; }
echo "HOSTBOOT guest status=$s seconds=$(awk "BEGIN{print $t1-$t0}")"
exit $s
`

// sessionScript keeps %[2]d guests running at once, each booted again as
// soon as it powers off, until %[3]d seconds of the host's uptime have
// passed; a guest that fails is reported and the session goes on. It
// exits 0 if every guest finished.
const sessionScript = `(while sleep 10; do echo heartbeat; done) &
hb=$!
end=$(( $(cut -d. -f1 /proc/uptime) + %[3]d ))
slot() {
	while [ "$(cut -d. -f1 /proc/uptime)" -lt $end ]; do
		t0=$(cut -d' ' -f1 /proc/uptime)
		timeout 240 /tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline "console=%[1]s quiet panic=-1 %[4]s" --cpus 2 --memory 256M --disk /guest/disk.img,ro >/tmp/guest$1 2>&1
		s=$?
		t1=$(cut -d' ' -f1 /proc/uptime)
		grep -q 'TANDEM-TEST done' /tmp/guest$1 || { s=99; tail -15 /tmp/guest$1; }
		echo "HOSTBOOT guest slot=$1 status=$s seconds=$(awk "BEGIN{print $t1-$t0}")"
		[ $s = 0 ] || echo fail >>/tmp/failed
	done
}
i=1 pids=
while [ $i -le %[2]d ]; do slot $i & pids="$pids $!"; i=$((i+1)); done
wait $pids
kill $hb
[ ! -s /tmp/failed ]
`

var guestLine = regexp.MustCompile(`HOSTBOOT guest (?:slot=\d+ )?status=(\d+) seconds=([0-9.]+)`)

func bootOnce(arch string, q qemu, s setting, files map[string]string, session time.Duration, parallel int) boot {
	os.Setenv(qemuhost.QEMUDirEnv, q.dir)
	sc := fmt.Sprintf(script, guestConsole[arch], guestCmdline)
	timeout := 6 * time.Minute
	if session > 0 {
		sc = fmt.Sprintf(sessionScript, guestConsole[arch], parallel, int(session.Seconds()), guestCmdline)
		// The last guests start just before the session ends and have
		// the guest's own 240 s bound.
		timeout = session + 6*time.Minute
	}
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:     arch,
		Files:    files,
		Script:   sc,
		Memory:   "2G",
		CPUs:     s.cpus,
		Host:     s.host,
		Timeout:  timeout,
		Silence:  time.Minute,
		Attempts: 1,
	})
	b := boot{outcome: res.Outcome()}
	if res != nil {
		b.hostBoot = res.Boot.Seconds()
		if res.Boot > 0 {
			b.nested = (res.Total - res.Boot).Seconds()
		}
		for _, m := range guestLine.FindAllStringSubmatch(res.Output, -1) {
			if m[1] != "0" {
				b.failed++
				continue
			}
			v, _ := strconv.ParseFloat(m[2], 64)
			b.guests = append(b.guests, v)
		}
	}
	if err != nil {
		head, _, _ := strings.Cut(err.Error(), "\n")
		fmt.Fprintf(os.Stderr, "hostboots: %s\n", head)
		if b.outcome == "panic" || b.outcome == "hang" || b.outcome == "reset" || b.outcome == "timeout" {
			fmt.Fprintln(os.Stderr, res.Tail(40))
		}
	}
	if b.outcome == "ok" && res.ExitStatus != 0 {
		b.outcome = "guest failed"
		fmt.Fprintf(os.Stderr, "hostboots: a guest failed (status %d):\n%s\n", res.ExitStatus, res.Tail(15))
	}
	return b
}

func version(arch string, q qemu) string {
	os.Setenv(qemuhost.QEMUDirEnv, q.dir)
	return qemuhost.QEMUVersion(arch)
}
