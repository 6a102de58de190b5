package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// guestKernel is one column of the guest kernel matrix: a Linux version
// every guest check runs with, and where scripts/testdata.sh unpacks it.
// The emulated hosts keep their own kernel (Debian 12's 6.1) whichever
// the guest runs.
type guestKernel struct {
	version string // the subtest's name, and what the guest's uname -r starts with
	suffix  string // of its cache directory: x86, x86-6.12
}

// guestKernels are Debian 12's own kernel and bookworm-backports' 6.12.
var guestKernels = []guestKernel{
	{"6.1", ""},
	{"6.12", "-6.12"},
}

// dir is the kernel's cache directory for a cache architecture (x86,
// arm64, armhf).
func (k guestKernel) dir(arch string) string { return arch + k.suffix }

// matrixGuest is one kernel of a test's matrix row with the initramfs of
// each guest kind built for it.
type matrixGuest struct {
	guestKernel
	kernel Kernel
	initrd map[Guest]string
}

var (
	// matrixMu protects matrixBuilt.
	matrixMu    sync.Mutex
	matrixBuilt = map[string][]matrixGuest{}
)

// matrixGuests builds, once per run, the guests of every kernel of
// guestKernels that the cache holds for arch, with goarch's testinit or
// busybox as their userland. A kernel the cache lacks is left out; its
// subtest skips (fails in CI) saying how to fetch it (requireKernel).
func matrixGuests(t *testing.T, arch, goarch string, kinds []Guest) []matrixGuest {
	t.Helper()
	matrixMu.Lock()
	defer matrixMu.Unlock()
	if gs, ok := matrixBuilt[arch]; ok {
		return gs
	}
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	var gs []matrixGuest
	for _, gk := range guestKernels {
		k, err := cachedGuestKernel(cache, gk.dir(arch))
		if err != nil {
			t.Logf("guest kernel %s for %s: %v", gk.version, arch, err)
			continue
		}
		g := matrixGuest{guestKernel: gk, kernel: k, initrd: map[Guest]string{}}
		for _, kind := range kinds {
			f := filepath.Join(workDir, fmt.Sprintf("initrd-%s-%s", gk.dir(arch), kind))
			if err := BuildGuestInitramfs(f, kind, k, goarch, "."); err != nil {
				t.Fatalf("building the %s guest for %s: %v", kind, gk.dir(arch), err)
			}
			g.initrd[kind] = f
		}
		gs = append(gs, g)
	}
	matrixBuilt[arch] = gs
	return gs
}

// cachedGuestKernel is CachedKernel, or for armhf, which has no busybox
// of its own, Arm32Kernel's checks.
func cachedGuestKernel(cache, dir string) (Kernel, error) {
	if strings.HasPrefix(dir, "armhf") {
		return armhfKernel(cache, dir)
	}
	return CachedKernel(cache, dir)
}

// requireKernel skips (fails in CI) a subtest whose kernel the cache
// lacks, and returns the guest otherwise.
func requireKernel(t *testing.T, gs []matrixGuest, gk guestKernel, arch string) matrixGuest {
	t.Helper()
	for _, g := range gs {
		if g.version == gk.version {
			return g
		}
	}
	cache, _ := qemuhost.CacheDir()
	testenv.RequireFile(t, filepath.Join(cache, gk.dir(arch), "release"), "run scripts/testdata.sh "+gk.dir(arch)+", or make testdata")
	t.Fatalf("guest kernel %s for %s is in the cache but did not load (see the log above)", gk.version, arch)
	return matrixGuest{}
}

// guestRun is one tandem run of a host's script.
type guestRun struct {
	name string // its section of the console: "E2E begin NAME" to "E2E end NAME"
	cmd  string
}

// sequenceScript runs each guest in turn in one emulated host, each
// bounded by limit and followed by after(cmd) (more checks with the same
// command line; may be empty), between begin and end lines that
// section splits the console at. The script's own status is 0: each
// run's is its section's "E2E vmm-exit=" line.
//
// A run that fails after a guest shutdown (triple fault) the emulated
// host's KVM traced (kvm-shutdowns: the x86 host's nested SVM, see
// docs/emulated-hosts.md), or that reaches its limit with a vCPU
// faulting on its own kernel text's fetch (faultingFetch), or whose
// 32-bit ARM guest kernel died on a CPU in user mode at a kernel address
// (userModeKernelPC), is run once
// more, after an "E2E retry" line that names it and where the guest was;
// section keeps the last attempt, and noteRetries puts each retry in the
// test's log and the run's report.
func sequenceScript(limit time.Duration, runs []guestRun, after func(cmd string) string) string {
	var b strings.Builder
	b.WriteString(boundedFn)
	for _, r := range runs {
		b.WriteString(retriedRun(r, limit))
		if after != nil {
			b.WriteString(after(r.cmd))
		}
		fmt.Fprintf(&b, "echo \"E2E end %s\"\n", r.name)
	}
	b.WriteString("exit 0\n")
	return b.String()
}

// retriedRun is the shell for one guest run of an emulated host's
// script (after boundedFn): it opens the run's section, bounds the
// command by limit, prints its "E2E vmm-exit=" line and leaves its
// status in $status; a run the emulated host's KVM failed is run once
// more, after its "E2E retry" line (see sequenceScript). The caller
// closes the section.
func retriedRun(r guestRun, limit time.Duration) string {
	return fmt.Sprintf(`tries=0
while :; do
echo
echo "E2E begin %[1]s"
shutdowns=$(kvm-shutdowns 2>/dev/null | wc -l)
t0=$(cut -d' ' -f1 /proc/uptime)
bounded %[2]d %[3]s
status=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo
echo "E2E vmm-exit=$status guest-seconds=$(awk "BEGIN{print $t1-$t0}")"
tries=$((tries+1))
if [ $status -ne 0 ] && [ $tries -lt %[4]d ] && [ "$(kvm-shutdowns 2>/dev/null | wc -l)" -gt "$shutdowns" ]; then
	echo "E2E retry %[1]s: the VMM exited $status after a guest shutdown (triple fault) the host's KVM traced: $(kvm-shutdowns | tail -n 1)"
	continue
fi
if [ $status -eq 124 ] && [ $tries -lt %[4]d ] && fetch=$(awk '%[5]s' /tmp/bounded-stderr); then
	echo "E2E retry %[1]s: the guest stalled, a vCPU in its kernel faulting on its own instruction fetch inside the host's KVM: $fetch"
	continue
fi
if [ $status -ne 0 ] && [ $tries -lt %[4]d ] && frame=$(awk '%[6]s' /tmp/bounded-stdout); then
	echo "E2E retry %[1]s: the guest's kernel died on a CPU found in user mode at a kernel address, which no kernel sets up: $frame"
	continue
fi
break
done
`, r.name, int(limit/time.Second), r.cmd, guestTries, faultingFetch, userModeKernelPC)
}

// userModeKernelPC is an awk program that prints the first exception
// frame a 32-bit ARM guest kernel printed on its console ("Exception
// stack(0x... to 0x...)" and its 18 words, r0 to orig_r0) that saved
// user mode (cpsr's mode bits 0x10) with pc in the kernel's half
// (0xbf000000 up: modules, kernel, vectors), and fails when there is none.
//
// A user-mode CPU cannot run at a kernel address: it cannot fetch there,
// and Linux enters user mode only by restoring a user task's saved
// registers. Such a frame is a CPU's mode changed under its kernel. The
// emulated arm64 host showed it once, on 8 December 2026: Debian's armhf
// 6.1 guest on the GICv3 host, vCPU 0 in its idle task at a kernel pc
// with user mode and the last user task's sp and lr; the guest died
// ("Attempted to kill the idle task") while powering off
// (docs/emulated-hosts.md). Tandem does not set a vCPU's registers once
// it runs.
const userModeKernelPC = `{ sub(/\r$/, ""); sub(/^\[[^]]*\] */, "") }
/Exception stack\(0x[0-9a-f]+ to 0x[0-9a-f]+\)/ { n = 0; frame = $0; collecting = 1; next }
collecting && $1 ~ /^[0-9a-f][0-9a-f][0-9a-f][0-9a-f]:$/ {
	for (i = 2; i <= NF && n < 18; i++)
		if ($i ~ /^[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]$/) w[++n] = $i
	if (n < 18) next
	collecting = 0
	if (w[17] ~ /[13579bdf]0$/ && w[16] ~ /^(bf|[c-f])/) {
		print frame " pc=0x" w[16] " cpsr=0x" w[17] " sp=0x" w[14] " lr=0x" w[15]; found = 1; exit
	}
	next
}
{ collecting = 0 }
END { exit !found }`

// faultingFetch is an awk program that prints the first vCPU of a VMM's
// state dump (vmm.DumpState, which bounded asks for at the time limit)
// that keeps faulting on fetching its own kernel's instructions, and
// fails when there is none.
//
// On x86: runnable in its kernel (cpl=0) with rip equal to cr2, the
// address of its last page fault. Such a vCPU keeps faulting on fetching
// its own kernel text, which its page tables map: the nested paging of the
// emulated x86 host (software SVM) has gone wrong under it, with no exit
// to the VMM (docs/emulated-hosts.md). Kernel text is never demand-paged,
// so a guest that works never shows it.
//
// On 32-bit ARM: runnable in abort mode (cpsr's mode bits 0x17) with pc
// on the first instruction of the prefetch or data abort vector in the
// high vectors page (0xffff000c, 0xffff0010). Linux maps that page at boot
// and never unmaps it, and the instruction there is one branch to its
// handlers; a vCPU found on it at the time limit keeps taking the abort
// on fetching the vector itself (seen once in the emulated arm64 host,
// both vCPUs of a guest so, docs/emulated-hosts.md).
const faultingFetch = `/state=runnable/ {
	rip = ""; cr2 = ""; cpl = ""; pc = ""; cpsr = ""
	for (i = 1; i <= NF; i++) {
		if ($i ~ /^rip=/) rip = substr($i, 5)
		if ($i ~ /^cr2=/) cr2 = substr($i, 5)
		if ($i ~ /^cpl=/) cpl = substr($i, 5)
		if ($i ~ /^pc=/) pc = substr($i, 4)
		if ($i ~ /^cpsr=/) cpsr = substr($i, 6)
	}
	if (rip != "" && rip == cr2 && cpl == "0") { print; found = 1; exit }
	if ((pc == "0xffff000c" || pc == "0xffff0010") && cpsr ~ /^0x[0-9a-f]*[13579bdf]7$/) { print; found = 1; exit }
}
END { exit !found }`

// guestTries bounds sequenceScript's attempts at one guest run.
const guestTries = 2

// noteRetries logs each guest run sequenceScript ran again, and records
// it in the run's report.
func noteRetries(t *testing.T, res *qemuhost.Result) {
	t.Helper()
	for _, l := range strings.Split(res.Output, "\n") {
		if i := strings.Index(l, "E2E retry "); i >= 0 {
			l = strings.TrimSpace(l[i:])
			t.Logf("retried: %s", l)
			testenv.Record(testenv.Event{Kind: "guest-retry", Test: t.Name(), Outcome: "retried", Detail: l})
		}
	}
}

// section returns one guest run's part of a host's console as a Result
// of its own: the lines between its begin and end markers (of its last
// attempt, when sequenceScript ran it again), and the VMM's exit status
// from its vmm-exit line (-1 when the run never reported one).
func section(res *qemuhost.Result, name string) *qemuhost.Result {
	out := &qemuhost.Result{ExitStatus: -1, Boot: res.Boot, Total: res.Total}
	var lines []string
	in := false
	for _, l := range strings.Split(res.Output, "\n") {
		switch strings.TrimSpace(l) {
		case "E2E begin " + name:
			in, lines, out.ExitStatus = true, nil, -1
			continue
		case "E2E end " + name:
			in = false
		}
		if !in {
			continue
		}
		lines = append(lines, l)
		if i := strings.Index(l, "E2E vmm-exit="); i >= 0 {
			fmt.Sscanf(l[i:], "E2E vmm-exit=%d", &out.ExitStatus)
		}
	}
	out.Output = strings.Join(lines, "\n")
	return out
}

// checkKernel asserts the guest booted the matrix's kernel: its uname -r
// is the version's (6.1.x or 6.12.x), not the other column's.
func checkKernel(t *testing.T, res *qemuhost.Result, version string) {
	t.Helper()
	f := ParseFacts(res.Output).Find("kernel")
	if f == nil || !strings.HasPrefix(f["kernel"], version+".") {
		t.Errorf("guest kernel marker = %v, want Linux %s.x", f, version)
	}
}

// checkVsock asserts the guest's virtio-vsock device: the CID tandem run
// gave it, and a connection to the host answered with a reset (tandem
// run routes none), so a packet went each way through the device.
func checkVsock(t *testing.T, res *qemuhost.Result) {
	t.Helper()
	want := map[string]string{"vsock": "", "cid": fmt.Sprint(guestCID), "host-connect": "ECONNRESET"}
	f := ParseFacts(res.Output).Find("vsock")
	if len(f) != len(want) {
		t.Errorf("guest vsock marker = %v, want %v", f, want)
		return
	}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("guest vsock marker = %v, want %v", f, want)
			return
		}
	}
}

// guestCID is the vsock CID the matrix's guests get.
const guestCID = 3

// The kernel matrix's outcome, printed when the package's tests end.
var (
	// kernelMatrixMu protects kernelMatrix.
	kernelMatrixMu sync.Mutex
	// kernelMatrix maps a row (architecture and host, guest kind) and a
	// kernel version to pass, FAIL or skip.
	kernelMatrix = map[[2]string]string{}
)

// recordCell notes t's outcome, when it ends, as the matrix's cell for
// row and version, and in the run's report (make test prints it).
func recordCell(t *testing.T, row, version string) {
	start := time.Now()
	t.Cleanup(func() {
		outcome := "pass"
		switch {
		case t.Failed():
			outcome = "FAIL"
		case t.Skipped():
			outcome = "skip"
		}
		kernelMatrixMu.Lock()
		kernelMatrix[[2]string{row, version}] = outcome
		kernelMatrixMu.Unlock()
		testenv.Record(testenv.Event{Kind: "guest-kernel", Test: t.Name(), Row: row, Kernel: version,
			Outcome: strings.ToLower(outcome), Seconds: time.Since(start).Seconds()})
	})
}

// printKernelMatrix writes the guest kernel matrix, a row per
// architecture, host and guest, a column per kernel; nothing when no
// matrix test ran.
func printKernelMatrix(w io.Writer) {
	kernelMatrixMu.Lock()
	defer kernelMatrixMu.Unlock()
	if len(kernelMatrix) == 0 {
		return
	}
	rows := map[string]bool{}
	for k := range kernelMatrix {
		rows[k[0]] = true
	}
	var names []string
	for r := range rows {
		names = append(names, r)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "guest kernel matrix:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "  host\tguest")
	for _, gk := range guestKernels {
		fmt.Fprintf(tw, "\tLinux %s", gk.version)
	}
	fmt.Fprintln(tw)
	for _, r := range names {
		arch, guest, _ := strings.Cut(r, " ")
		fmt.Fprintf(tw, "  %s\t%s", arch, guest)
		for _, gk := range guestKernels {
			c := kernelMatrix[[2]string{r, gk.version}]
			if c == "" {
				c = "-"
			}
			fmt.Fprintf(tw, "\t%s", c)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func TestSection(t *testing.T) {
	res := &qemuhost.Result{Output: "host boot\r\n" +
		"E2E begin 6.1\r\nTANDEM-TEST kernel=6.1.0-57-arm64\r\nE2E vmm-exit=0 guest-seconds=20\r\nE2E end 6.1\r\n" +
		"E2E begin 6.12\r\nTANDEM-TEST kernel=6.12.95+deb12-arm64\r\nE2E vmm-exit=124 guest-seconds=200\r\nE2E end 6.12\r\n" +
		"E2E begin 6.6\r\nTANDEM-TEST kernel=6.6.0-first\r\nE2E vmm-exit=2 guest-seconds=1\r\nE2E retry 6.6: a shutdown\r\n" +
		"E2E begin 6.6\r\nTANDEM-TEST kernel=6.6.1\r\nE2E vmm-exit=0 guest-seconds=9\r\nE2E end 6.6\r\n" +
		"E2E begin 6.13\r\nTANDEM-TEST kernel=6.13.1\r\n"}
	tests := []struct {
		name, kernel string
		status       int
	}{
		{"6.1", "6.1.0-57-arm64", 0},
		{"6.12", "6.12.95+deb12-arm64", 124},
		{"6.6", "6.6.1", 0},    // run again: its last attempt counts
		{"6.13", "6.13.1", -1}, // the host ended before the run reported
		{"6.2", "", -1},        // never run
	}
	for _, tt := range tests {
		s := section(res, tt.name)
		f := ParseFacts(s.Output).Find("kernel")
		if got := f["kernel"]; got != tt.kernel || s.ExitStatus != tt.status || len(ParseFacts(s.Output)) > 1 {
			t.Errorf("section(%q) = kernel %q status %d (%d facts), want kernel %q status %d", tt.name, got, s.ExitStatus, len(ParseFacts(s.Output)), tt.kernel, tt.status)
		}
	}
}

// TestSequenceScriptRetry runs sequenceScript's shell with stand-ins for
// the VMM and kvm-shutdowns: a run that fails after a traced guest
// shutdown is run once more, one that fails without one is not, and one
// that faults every time fails after its second try. A run ended at its
// time limit is run once more when the VMM's state dump shows a vCPU
// faulting on its own kernel text's fetch (x86) or on its abort vector's
// (32-bit ARM), and not when it shows one that is merely busy.
func TestSequenceScriptRetry(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// kvm-shutdowns prints the shutdowns so far; guest NAME appends one
	// when it "triple-faults".
	write("kvm-shutdowns", `cat "$(dirname "$0")/shutdowns" 2>/dev/null`+"\n")
	write("guest", `d=$(dirname "$0"); n=$(cat "$d/count-$1" 2>/dev/null || echo 0); echo $((n+1)) >"$d/count-$1"
fault() { echo "KVM-SHUTDOWN vcpu=0 rip=0xffffffff81000000 sym=$1" >>"$d/shutdowns"; exit 3; }
# stall waits for bounded's SIGUSR1, answers it with a vmm.DumpState
# line for vCPU 1 at rip $1 with cr2 $2, and exits on SIGTERM.
stall() {
	trap "echo 'tandem: guest: vCPU 1: state=runnable exits=7536 rip=$1 rsp=0xffa0000000443d30 rflags=0x10246 cpl=0 cr0=0x80050033 cr2=$2 cr3=0x10194a000 stack=unmapped' >&2" USR1
	trap "exit 4" TERM
	while :; do sleep 0.1; done
}
# stallarm is stall for a 32-bit ARM vCPU 0 at pc $1 with cpsr $2.
stallarm() {
	trap "echo 'tandem: guest: vCPU 0: state=runnable exits=10043 pc=$1 cpsr=$2' >&2" USR1
	trap "exit 4" TERM
	while :; do sleep 0.1; done
}
case $1 in
flaky) [ "$n" = 0 ] && fault flaky ;;
always) fault always ;;
broken) exit 2 ;;
stalled) [ "$n" = 0 ] && stall 0xffffffffc0344dcc 0xffffffffc0344dcc ;;
busy) stall 0xffffffffc0344dcc 0x42ee70 ;;
aborting) [ "$n" = 0 ] && stallarm 0xffff0010 0x197 ;;
armbusy) stallarm 0xc0a1b2c4 0x600001d3 ;;
armuser) stallarm 0xffff0010 0x60000010 ;;
armmode) [ "$n" = 0 ] && { printf '%s\n' "$ARMMODE"; exit 2; } ;;
armoops) printf '%s\n' "$ARMOOPS"; exit 2 ;;
esac
echo "TANDEM-TEST kernel=$1-$n"
`)
	var runs []guestRun
	for _, name := range []string{"flaky", "always", "broken", "fine", "stalled", "busy", "aborting", "armbusy", "armuser", "armmode", "armoops"} {
		runs = append(runs, guestRun{name, filepath.Join(dir, "guest") + " " + name})
	}
	// The output goes to a file: bounded's watchers sleep on after the
	// script with its output open, which a pipe would wait for.
	log, err := os.Create(filepath.Join(dir, "console"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("sh", "-c", sequenceScript(time.Second, runs, nil))
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "ARMMODE="+userModeOops, "ARMOOPS="+svcModeOops)
	cmd.Stdout, cmd.Stderr = log, log
	err = cmd.Run()
	out, _ := os.ReadFile(log.Name())
	if err != nil {
		t.Fatalf("the script: %v\n%s", err, out)
	}
	res := &qemuhost.Result{Output: string(out)}
	tests := []struct {
		name, kernel string
		status       int
		retried      bool
	}{
		{"flaky", "flaky-1", 0, true},
		{"always", "", 3, true},
		{"broken", "", 2, false},
		{"fine", "fine-0", 0, false},
		{"stalled", "stalled-1", 0, true},
		{"busy", "", 124, false},
		{"aborting", "aborting-1", 0, true},
		{"armbusy", "", 124, false},
		{"armuser", "", 124, false},
		{"armmode", "armmode-1", 0, true},
		{"armoops", "", 2, false},
	}
	for _, tt := range tests {
		s := section(res, tt.name)
		got := ParseFacts(s.Output).Find("kernel")["kernel"]
		retried := strings.Contains(res.Output, "E2E retry "+tt.name+": ")
		if got != tt.kernel || s.ExitStatus != tt.status || retried != tt.retried {
			t.Errorf("%s: kernel %q, status %d, retried %v; want %q, %d, %v", tt.name, got, s.ExitStatus, retried, tt.kernel, tt.status, tt.retried)
		}
	}
	if n := strings.Count(res.Output, "E2E retry "); n != 5 {
		t.Errorf("%d retries, want 5 (flaky, always, stalled, aborting, armmode once each):\n%s", n, out)
	}
	if !strings.Contains(res.Output, "sym=flaky") || !strings.Contains(res.Output, "instruction fetch inside the host's KVM: tandem: guest: vCPU 1: state=runnable") ||
		!strings.Contains(res.Output, "at a kernel address, which no kernel sets up: Exception stack(0xc1601e90 to 0xc1601ed8) pc=0xc047ddfc cpsr=0x80000010") {
		t.Errorf("a retry line does not name where the guest was:\n%s", out)
	}
}

// userModeOops is the end of the console of Debian's armhf 6.1 guest
// that died on 8 December 2026 in the emulated arm64 host: vCPU 0's
// frame saved user mode at a kernel pc; the frame after it, vCPU 1's
// entry from its user task's reboot call, is an ordinary one.
const userModeOops = `[   23.418244] Exception stack(0xc1601e90 to 0xc1601ed8)
[   23.464507] 1e80:                                     c2288b00 c16106c0 c2288b00 00002168
[   23.538577] 1ea0: ced91280 c1539280 c0e5fb10 c16106c0 c16106c0 0d858000 00000000 c1601f1c
[   23.657957] 1ec0: c1601f20 02817f64 000a8d6c c047ddfc 80000010 ffffffff
[   23.840821] Code: e594321c e2833d7e e2833030 e58d308c (e5973190)
[   23.970289] ---[ end trace 0000000000000000 ]---
[   24.039933] Kernel panic - not syncing: Attempted to kill the idle task!
[   24.150426] Exception stack(0xd0a99fa8 to 0xd0a99ff0)
[   24.150442] 9fa0:                   00000000 00000000 fee1dead 28121969 4321fedc 0289a3bb
[   24.150457] 9fc0: 00000000 00000000 0000000c 00000058 0289a3bb 000000c0 02804148 00000007
[   24.150468] 9fe0: 00000000 02870e30 000c0b3c 0001c1b4`

// svcModeOops is an oops of a kernel's own making: its frames saved
// kernel (SVC) mode at a kernel pc, and user mode at a user pc.
const svcModeOops = `[    5.100000] Exception stack(0xc1601e90 to 0xc1601ed8)
[    5.100001] 1e80:                                     c2288b00 c16106c0 c2288b00 00002168
[    5.100002] 1ea0: ced91280 c1539280 c0e5fb10 c16106c0 c16106c0 0d858000 00000000 c1601f1c
[    5.100003] 1ec0: c1601f20 c1601ee0 c0a1b2c4 c047ddfc 60000013 ffffffff
[    5.100004] Exception stack(0xd0a99fb0 to 0xd0a99ff8)
[    5.100005] 9fa0:                                     00000000 00000000 fee1dead 28121969
[    5.100006] 9fc0: 4321fedc 0289a3bb 00000000 00000000 0000000c 00000058 0289a3bb 000000c0
[    5.100007] 9fe0: 02804148 02870e30 000c0b3c 0001c1b4 60000010 ffffffff`

// TestUserModeKernelPC runs userModeKernelPC, with this machine's awk
// and with busybox's (the emulated hosts' shell), over consoles: only a
// frame in user mode at a kernel address is found, also with the
// carriage returns of a serial console and a frame cut short.
func TestUserModeKernelPC(t *testing.T) {
	tests := []struct {
		name, console, want string
	}{
		{"the armhf guest that died", userModeOops, "Exception stack(0xc1601e90 to 0xc1601ed8) pc=0xc047ddfc cpsr=0x80000010 sp=0x02817f64 lr=0x000a8d6c"},
		{"with carriage returns", strings.ReplaceAll(userModeOops, "\n", "\r\n"), "Exception stack(0xc1601e90 to 0xc1601ed8) pc=0xc047ddfc cpsr=0x80000010 sp=0x02817f64 lr=0x000a8d6c"},
		{"a kernel's own oops: kernel mode, or user mode at a user pc", svcModeOops, ""},
		{"a frame cut short by another line", strings.Replace(userModeOops, "[   23.538577] 1ea0:", "[   23.5] random: crng init done\n[   23.538577] 1ea0:", 1), ""},
		{"no frame", "[    1.000000] Booting Linux on physical CPU 0x0\n", ""},
	}
	awks := [][]string{{"awk"}}
	if _, err := exec.LookPath("busybox"); err == nil {
		awks = append(awks, []string{"busybox", "awk"})
	}
	for _, a := range awks {
		for _, tt := range tests {
			t.Run(strings.Join(a, " ")+"/"+tt.name, func(t *testing.T) {
				cmd := exec.Command(a[0], append(a[1:], userModeKernelPC)...)
				cmd.Stdin = strings.NewReader(tt.console + "\n")
				out, err := cmd.Output()
				got := strings.TrimSpace(string(out))
				if found := err == nil; found != (tt.want != "") || got != tt.want {
					t.Errorf("found %v, printed %q; want %q", found, got, tt.want)
				}
			})
		}
	}
}

func TestPrintKernelMatrix(t *testing.T) {
	kernelMatrixMu.Lock()
	saved := kernelMatrix
	kernelMatrix = map[[2]string]string{{"arm64/GICv3 testinit", "6.1"}: "pass", {"arm64/GICv3 testinit", "6.12"}: "FAIL", {"armhf/GICv2 testinit", "6.1"}: "pass"}
	kernelMatrixMu.Unlock()
	defer func() { kernelMatrixMu.Lock(); kernelMatrix = saved; kernelMatrixMu.Unlock() }()
	var b strings.Builder
	printKernelMatrix(&b)
	want := []string{
		"guest kernel matrix:",
		"host guest Linux 6.1 Linux 6.12",
		"arm64/GICv3 testinit pass FAIL",
		"armhf/GICv2 testinit pass -",
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("printKernelMatrix() =\n%s\nwant the lines (spaces aside) %q", b.String(), want)
	}
}

// printMatrixAtExit is called by TestMain once the tests have run.
func printMatrixAtExit() { printKernelMatrix(os.Stdout) }
