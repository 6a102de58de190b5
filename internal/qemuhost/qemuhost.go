// Package qemuhost boots an emulated KVM host under QEMU's software
// emulation and runs a shell script in it. End-to-end tests use it to run
// Tandem where stock Linux guests work: this machine kind's own /dev/kvm
// is a nested paravirtual KVM on which stock kernels hang in early boot.
//
// The host is Debian's kernel from build/cache (scripts/testdata.sh) with
// an initramfs of busybox, the kvm modules and the caller's files. Its init
// (hostInit) mounts the usual file systems, loads kvm and kvm-amd with
// nested=1 (kvm-intel where the CPU has VMX instead), checks /dev/kvm,
// runs the script and reports on the serial console:
//
//	TANDEM-HOST booted uptime=<seconds>
//	TANDEM-HOST kvm=<module>            or: TANDEM-HOST fail <why>
//	TANDEM-HOST exit=<script's exit status>
//
// then powers off, which ends QEMU.
//
// It also boots a board's own image on QEMU's emulation of that board
// (Options.Board, boards.go): the image's kernel, device tree and host
// initramfs, with the image as the board's SD card, watched the same way:
// boot deadline, silence, panics, retries and the run's report.
package qemuhost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// Markers the host init prints.
const (
	markerPrefix = "TANDEM-HOST "
	markerBooted = markerPrefix + "booted"
	markerExit   = markerPrefix + "exit="
	markerFail   = markerPrefix + "fail "
)

// Defaults for Options.
const (
	DefaultMemory  = "3G"
	DefaultCPUs    = 2
	DefaultTimeout = 15 * time.Minute
	// DefaultSilence is Options.Silence's default: longer than any quiet
	// stretch of the tests' and the bench's scripts.
	DefaultSilence = 3 * time.Minute
	// BootDeadline is Options.BootDeadline's default: several times the
	// slowest boot seen on a loaded machine (see the README's table of
	// emulated-host boots).
	BootDeadline = 3 * time.Minute
)

// tailLines is how many console lines an error quotes.
const tailLines = 30

// Options describe one run of an emulated host.
type Options struct {
	// Arch is the host's architecture: "x86_64" (default) or "arm64".
	Arch string
	// Files maps paths inside the host to host files to put there.
	Files map[string]string
	// Script is the shell script (busybox sh) the host init runs once
	// KVM is loaded; its exit status is Result.ExitStatus.
	Script string
	// Memory is the host's RAM in QEMU's syntax ("3G"); CPUs its vCPUs.
	Memory string
	CPUs   int
	// Console receives the serial console as it arrives (optional).
	Console io.Writer
	// Timeout bounds the whole run, boot included (default
	// DefaultTimeout); the context can end it sooner.
	Timeout time.Duration
	// Cmdline is appended to the host kernel's command line.
	Cmdline string
	// CacheDir is the test-data cache (default: CacheDir()).
	CacheDir string
	// PinCPUs gives each emulated CPU a machine CPU of its own (see
	// pinVCPUs), for runs that measure timing across emulated cores.
	PinCPUs bool
	// Yield lists emulated CPUs whose threads run under SCHED_IDLE once
	// pinned (see pinVCPUs): QEMU's main loop, which fires every
	// emulated CPU's timers, then preempts them at once instead of
	// waiting its turn behind them. Only with PinCPUs.
	Yield []int
	// Silence is how long the console may stay silent once the host has
	// booted: longer means the host froze (its own timers stopped with
	// it, so no lockup report can come), and the run is ended and tried
	// again as after a panic. The default, DefaultSilence, suits any
	// script; one whose guests report every few seconds sets less, and a
	// negative Silence never ends a run for it.
	Silence time.Duration
	// BootDeadline bounds the time from starting QEMU to the host init's
	// first marker (default BootDeadline): a host not booted by then
	// hangs, and is tried again as after a panic.
	BootDeadline time.Duration
	// Attempts bounds how often the host is booted when its kernel
	// panics or it freezes (default hostAttempts).
	Attempts int
	// Label says what the run is for in the run's report, where it is
	// not an ordinary run (a host crashed on purpose).
	Label string
	// Board boots a board's own image on QEMU's emulation of that board
	// instead of the harness's host: Arch names the board (ZCU102), and
	// Files, Script and CacheDir do not apply. See BoardImage.
	Board *BoardImage
	// TPM, if set, is the control socket of a software TPM (swtpm socket
	// --ctrl, no --server) that QEMU attaches to the host as its TPM
	// 2.0: the TIS interface, which the x86 host's tpm_tis drives as
	// /dev/tpmrm0.
	TPM string
	// NewTPM, if set, starts such a software TPM for each boot of the
	// host and returns its control socket and how to stop it: QEMU's
	// exit ends swtpm, so a host booted again after a panic needs a new
	// one (its state directory keeps what the TPM holds, as a board's
	// TPM keeps it across a reset). TPM is then not used.
	NewTPM func(attempt int) (ctrl string, stop func(), err error)
	// Icount runs the host with a virtual clock that counts
	// instructions (QEMU's -icount shift=0,sleep=off: one nanosecond
	// each, and idle time skipped) on one emulation thread, so that
	// times measured inside the host are what the host's CPUs executed
	// and no longer depend on how busy this machine is. Benchmarks
	// compare programs this way; it says nothing of the host's real
	// speed.
	Icount bool
	// Modules are kernel modules of the host's kernel (names, as
	// modprobe takes them) loaded with what they depend on before the
	// script runs: vhost_vsock, for a peer VMM's vhost-vsock device.
	Modules []string
	// Host departs from the x86 host's default QEMU flags and kernel
	// (see Host); HostEnv fills the fields it leaves empty.
	Host Host
}

// Result is what a run produced.
type Result struct {
	// Output is the whole serial console.
	Output string
	// ExitStatus is the script's exit status.
	ExitStatus int
	// Boot is the time from starting QEMU to the host init's first
	// marker; Total the time until QEMU exited.
	Boot, Total time.Duration
	// KVM names the module that gave the host /dev/kvm.
	KVM string
	// Attempts is how many times the host was booted: more than one when
	// its kernel panicked or it froze (see Run).
	Attempts int
	// DTBFixes says what a board's run changed in its image's device
	// tree for QEMU's model of the board (see BoardImage).
	DTBFixes []string
	// frozen says the console fell silent for longer than
	// Options.Silence, or the host did not boot within BootDeadline, and
	// the run was ended for it.
	frozen bool
	// timedOut says Options.Timeout or the context ended the run.
	timedOut bool
	// reset says the host's machine reset itself (a triple fault, or a
	// reboot) before the script reported: -no-reboot turns a reset into
	// QEMU's clean exit.
	reset bool
}

// Run boots the emulated host, runs opt.Script in it and returns once QEMU
// has exited. An error means the script's status is unknown: QEMU failed,
// the host did not get KVM, or the run timed out (the error quotes the
// last console lines).
func Run(ctx context.Context, opt Options) (*Result, error) {
	opt.defaults()
	var res *Result
	var err error
	try := 1
	for ; ; try++ {
		o := opt
		var stopTPM func()
		if opt.NewTPM != nil {
			ctrl, stop, terr := opt.NewTPM(try)
			if terr != nil {
				return res, fmt.Errorf("starting the host's software TPM: %w", terr)
			}
			o.TPM, stopTPM = ctrl, stop
		}
		res, err = runOnce(ctx, o)
		if stopTPM != nil {
			stopTPM()
		}
		// The emulated host's own kernel died: its nested KVM under
		// QEMU's software SVM occasionally overflows a kernel stack in
		// KVM_RUN, locks up (see hostCmdline) or freezes. That is the
		// test rig failing, not the code under test, so the run is
		// tried again, saying so where it is seen and in the run's
		// report (testenv.Record).
		retry := err != nil && hostCrashed(res) && ctx.Err() == nil && try < opt.Attempts
		record(opt, res, err, retry)
		if !retry {
			break
		}
		// runOnce's error already says which, with the panic report or
		// the console's last lines; its first line heads the console's.
		fmt.Fprintf(os.Stderr, "qemuhost: attempt %d of %d after: %v\n", try+1, opt.Attempts, err)
		if opt.Console != nil {
			head, _, _ := strings.Cut(err.Error(), "\n")
			fmt.Fprintf(opt.Console, "\nqemuhost: attempt %d of %d after: %s\n", try+1, opt.Attempts, head)
		}
	}
	if res != nil {
		res.Attempts = try
	}
	return res, err
}

// Outcome names how one boot of a host ended: "ok" (the script reported
// its exit status), "panic" (the host kernel panicked first), "hang"
// (its console fell silent, or it never booted, see Options.Silence and
// BootDeadline), "reset" (the host's machine reset itself, without a
// panic), "timeout" (Options.Timeout ran out) or "error" (QEMU failed,
// or the host had no KVM).
func (r *Result) Outcome() string {
	switch {
	case r == nil:
		return "error"
	case r.ExitStatus != -1:
		return "ok"
	case r.frozen:
		return "hang"
	case strings.Contains(r.Output, panicMark):
		return "panic"
	case r.reset:
		return "reset"
	case r.timedOut:
		return "timeout"
	}
	return "error"
}

// record adds one boot of a host to the run's report. A run that never
// started QEMU (an unknown architecture, no QEMU, no test data) booted
// nothing and is not one.
func record(opt Options, res *Result, err error, retried bool) {
	if res == nil {
		return
	}
	ev := testenv.Event{Kind: "host", Arch: opt.Arch, QEMU: QEMUVersion(opt.Arch), Outcome: res.Outcome(), Retried: retried, Detail: opt.Label}
	if err != nil {
		head, _, _ := strings.Cut(err.Error(), "\n")
		ev.Detail = strings.TrimSpace(opt.Label + " " + head)
	}
	ev.BootSeconds, ev.Seconds = res.Boot.Seconds(), res.Total.Seconds()
	testenv.Record(ev)
}

// panicLines is the host kernel's panic report out of a console: the
// oops or BUG line that led to it, where it happened (RIP, pc) and the
// first reliable frames of its call trace, then the panic line. Without
// an oops it is the lines before the panic.
func panicLines(out string) string {
	lines := strings.Split(out, "\n")
	end := len(lines) - 1
	for i, l := range lines {
		if strings.Contains(l, panicMark) {
			end = i
			break
		}
	}
	start := -1
	// A runaway recursion's trace runs to hundreds of lines.
	for i := end - 1; i >= max(0, end-5000); i-- {
		if l := lines[i]; strings.Contains(l, "BUG:") || oopsHeader.MatchString(l) {
			start = i
			break
		}
	}
	var report []string
	if start < 0 {
		report = lines[max(0, end-reportLines):end]
	} else {
		report = append(report, lines[start])
		inTrace, where := false, false
		seen := map[string]bool{} // a runaway recursion repeats its frames
		for _, l := range lines[start+1 : end] {
			switch {
			case len(report) >= reportLines:
			case !where && (strings.Contains(l, "RIP: 0010:") || strings.Contains(l, " pc : ")):
				where = true
				report = append(report, l)
			case strings.Contains(l, "Call Trace:") || strings.Contains(l, "Call trace:"):
				inTrace = true
				report = append(report, l)
			case inTrace && !strings.Contains(l, " ? ") && !strings.Contains(l, "RIP:") && strings.Contains(l, "+0x") && !seen[frame(l)]:
				seen[frame(l)] = true
				report = append(report, l)
			}
		}
	}
	return "\t" + strings.Join(append(report, lines[end]), "\n\t")
}

// oopsHeader matches the line an x86 or arm64 kernel starts an oops
// with: "general protection fault: 0000 [#1] PREEMPT SMP", "stack guard
// page: 0000 [#1] …", "Internal error: Oops: 96000004 [#1] SMP".
var oopsHeader = regexp.MustCompile(`: [0-9a-f]+ \[#[0-9]+\]`)

// frame is a call trace line without its timestamp.
func frame(l string) string {
	if i := strings.Index(l, "] "); i >= 0 {
		l = l[i+2:]
	}
	return strings.TrimSpace(l)
}

// reportLines bounds the lines panicLines gives before the panic line.
const reportLines = 12

// panicMark starts the line a Linux kernel prints when it panics.
const panicMark = "Kernel panic - not syncing"

// hostCmdline is the emulated x86 host kernel's own command line.
//
// panic=-1 reboots on a panic, and -no-reboot turns that into QEMU's
// exit, so a dead host ends the run at once. A host that locks up is
// made to panic too: its nested KVM under QEMU's software SVM now and
// then leaves both CPUs spinning in KVM_RUN (soft lockups, a starved RCU
// kthread) and never recovers, which would otherwise hold a run until its
// timeout. softlockup_panic turns a CPU stuck for 20 s into a panic, and
// panic_on_rcu_stall does the same for an RCU stall (21 s), so Run can
// try again after a minute instead of failing after many. loglevel=5
// (warnings, one more than quiet's) puts the stack of a lockup or BUG on
// the console for panicLines.
//
// No transparent huge pages: the emulated host's khugepaged has been
// seen to lock up a CPU while collapsing a nested guest's memory under
// software emulation.
//
// nokaslr: the kernel sits at its link address, so /bin/kvm-shutdowns can
// name where a guest of the same kernel (booted nokaslr too) faulted.
const hostCmdline = "panic=-1 softlockup_panic=1 sysctl.kernel.panic_on_rcu_stall=1 loglevel=5 transparent_hugepage=never nokaslr"

// hostAttempts bounds how often a run whose host kernel panicked or froze
// is tried.
const hostAttempts = 3

// hostCrashed reports whether the emulated host's kernel panicked, the
// host froze, or its machine reset itself, before its script reported an
// exit status. A guest's panic, triple fault or reset cannot look like
// this: its VMM ends and the host script still reports. A user-space
// program in the host cannot reset it either (its init reports the
// script's status, then powers off); only the host's kernel, its nested
// KVM under QEMU's software SVM, or QEMU itself can.
func hostCrashed(res *Result) bool {
	o := res.Outcome()
	return o == "panic" || o == "hang" || o == "reset"
}

func runOnce(ctx context.Context, opt Options) (*Result, error) {
	a, err := lookupArch(opt.Arch)
	if err != nil {
		return nil, err
	}
	if opt.Board == nil {
		h := opt.Host
		if a.name == "x86_64" {
			if h, err = h.withEnv(); err != nil {
				return nil, err
			}
		}
		if a, err = h.apply(a); err != nil {
			return nil, err
		}
	}
	if (opt.Board != nil) != a.isBoard() {
		return nil, fmt.Errorf("emulated %s: Options.Board is for the boards (%s) and only for them", opt.Arch, strings.Join(boardNames(), ", "))
	}
	qemu, err := a.qemuPath()
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "qemuhost-")
	if err != nil {
		return nil, fmt.Errorf("creating work directory: %w", err)
	}
	defer os.RemoveAll(work)
	var args, fixes []string
	if opt.Board != nil {
		if args, fixes, err = a.boardArgs(opt, work); err != nil {
			return nil, err
		}
	} else {
		art, err := a.artifacts(opt.CacheDir)
		if err != nil {
			return nil, err
		}
		initrd := filepath.Join(work, "host-initrd.cpio")
		if err := buildInitramfs(initrd, a, art, opt); err != nil {
			return nil, fmt.Errorf("building the host initramfs: %w", err)
		}
		args = a.args(opt, art.kernel, initrd)
		// QEMU logs each CPU reset and, on x86, a triple fault
		// (resetWhy).
		args = append(args, "-d", "cpu_reset", "-D", filepath.Join(work, resetLog))
	}

	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	// QEMU's stdin is written only by probeFrozen. WaitDelay bounds the
	// wait for the pipes after QEMU is killed.
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", qemu, err)
	}
	con := newConsole(opt.Console, start)
	con.board = opt.Board
	if opt.PinCPUs {
		go func() {
			pctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if n, err := pinVCPUs(pctx, cmd.Process.Pid, opt.CPUs, opt.Yield); err != nil {
				fmt.Fprintf(os.Stderr, "qemuhost: pinned %d of %d emulated CPUs: %v\n", n, opt.CPUs, err)
			}
		}()
	}
	// The watcher ends a host that does not boot in time or falls
	// silent. Its results are read once it has returned.
	var frozen bool
	var frozenWhy, frozenTail, probe string
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			why := ""
			switch booted, silent := con.silentFor(); {
			case !booted && time.Since(start) > opt.BootDeadline:
				why = fmt.Sprintf("did not boot: its init gave no sign within %v", opt.BootDeadline)
			case booted && opt.Silence > 0 && silent > opt.Silence:
				why = fmt.Sprintf("froze: its console was silent for more than %v (the host stopped, or everything in it did)", opt.Silence)
			default:
				continue
			}
			frozen, frozenWhy, frozenTail = true, why, con.tail(tailLines)
			probe = probeFrozen(ctx, stdin, cmd.Process.Pid, con)
			cancel() // kills QEMU
			return
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(con, stdout)
	}()
	wg.Wait()
	waitErr := cmd.Wait()
	timedOut := ctx.Err() != nil
	cancel() // ends the watcher's probe, should QEMU have ended during it
	<-watched
	res := &Result{Output: con.text(), Total: time.Since(start), Boot: con.booted, ExitStatus: -1, DTBFixes: fixes, frozen: frozen, timedOut: timedOut && !frozen}
	status, haveStatus := con.status()
	res.KVM = con.kvm
	switch {
	case res.frozen:
		return res, fmt.Errorf("emulated %s host %s; last console lines:\n%s\n%s",
			opt.Arch, frozenWhy, frozenTail, probe)
	case res.timedOut:
		return res, fmt.Errorf("emulated %s host did not finish within %v (%v); last console lines:\n%s",
			opt.Arch, opt.Timeout, ctx.Err(), con.tail(tailLines))
	case con.failure != "":
		return res, fmt.Errorf("emulated %s host: %s; last console lines:\n%s", opt.Arch, con.failure, con.tail(tailLines))
	case !haveStatus && strings.Contains(res.Output, panicMark):
		return res, fmt.Errorf("emulated %s host's kernel panicked before the script reported its exit status:\n%s",
			opt.Arch, panicLines(res.Output))
	case !haveStatus && waitErr == nil && opt.Board == nil:
		res.reset = true
		return res, fmt.Errorf("emulated %s host's machine reset itself before the script reported its exit status (%s); last console lines:\n%s",
			opt.Arch, resetWhy(filepath.Join(work, resetLog)), con.tail(tailLines))
	case !haveStatus:
		what := "reporting the script's exit status"
		if opt.Board != nil {
			what = fmt.Sprintf("printing %q, its clean end", opt.Board.Done)
		}
		return res, fmt.Errorf("emulated %s host ended without %s (qemu: %v %s); last console lines:\n%s",
			opt.Arch, what, waitErr, strings.TrimSpace(stderr.String()), con.tail(tailLines))
	case waitErr != nil:
		return res, fmt.Errorf("qemu: %w: %s", waitErr, strings.TrimSpace(stderr.String()))
	}
	res.ExitStatus = status
	return res, nil
}

// resetLog is the file in a run's work directory where QEMU logs resets.
const resetLog = "qemu-reset.log"

// resetWhy says, from QEMU's reset log, why a host that was not told to
// reset did: x86 QEMU logs a triple fault before the reset it causes.
// Without one, the host's kernel asked for the reset itself (a reboot).
// The log's register dumps are of no use here: -no-reboot ends QEMU
// instead of resetting the CPUs, so the last dump is the power-on one.
func resetWhy(log string) string {
	b, err := os.ReadFile(log)
	switch {
	case err != nil:
		return "QEMU's reset log: " + err.Error()
	case bytes.Contains(b, []byte("Triple fault")):
		return "a CPU triple-faulted"
	}
	return "no triple fault in QEMU's log: the host's kernel rebooted"
}

func (opt *Options) defaults() {
	if opt.Attempts <= 0 {
		opt.Attempts = hostAttempts
	}
	if opt.Arch == "" {
		opt.Arch = "x86_64"
	}
	if opt.Memory == "" {
		opt.Memory = DefaultMemory
		if a, err := lookupArch(opt.Arch); err == nil && a.memory != "" {
			opt.Memory = a.memory
		}
	}
	if opt.CPUs == 0 {
		opt.CPUs = DefaultCPUs
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Silence == 0 {
		opt.Silence = DefaultSilence
	}
	if opt.BootDeadline == 0 {
		opt.BootDeadline = BootDeadline
	}
}

// console collects the serial output, forwards it, and watches for the
// host init's markers. A partial last line is kept until its newline.
type console struct {
	out   io.Writer
	start time.Time

	// board, for a board's image, names the lines that stand for the
	// host init's markers (nil: the harness's host).
	board *BoardImage

	mu      sync.Mutex // protects the fields below
	last    time.Time  // of the last write
	buf     bytes.Buffer
	partial []byte
	lines   []string
	booted  time.Duration
	exit    string
	kvm     string
	failure string
}

func newConsole(out io.Writer, start time.Time) *console {
	return &console{out: out, start: start}
}

func (c *console) Write(p []byte) (int, error) {
	if c.out != nil {
		c.out.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = time.Now()
	c.buf.Write(p)
	c.partial = append(c.partial, p...)
	for {
		i := bytes.IndexByte(c.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(c.partial[:i]), "\r")
		c.partial = c.partial[i+1:]
		c.line(line)
	}
	return len(p), nil
}

func (c *console) line(l string) {
	c.lines = append(c.lines, l)
	if len(c.lines) > 4*tailLines {
		c.lines = append(c.lines[:0], c.lines[len(c.lines)-tailLines:]...)
	}
	if c.board != nil {
		switch {
		case c.booted == 0 && strings.Contains(l, c.board.Booted):
			c.booted = time.Since(c.start)
		case strings.Contains(l, c.board.Done):
			c.exit = "0"
		}
		return
	}
	i := strings.Index(l, markerPrefix)
	if i < 0 {
		return
	}
	m := l[i:]
	switch {
	case strings.HasPrefix(m, markerBooted) && c.booted == 0:
		c.booted = time.Since(c.start)
	case strings.HasPrefix(m, markerPrefix+"kvm="):
		c.kvm = strings.TrimPrefix(m, markerPrefix+"kvm=")
	case strings.HasPrefix(m, markerFail) && c.failure == "":
		c.failure = strings.TrimPrefix(m, markerFail)
	case strings.HasPrefix(m, markerExit):
		c.exit = strings.TrimPrefix(m, markerExit)
	}
}

// silentFor says whether the host has booted and how long its console
// has been silent since it did.
func (c *console) silentFor() (booted bool, silent time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.booted == 0 {
		return false, 0
	}
	return true, time.Since(c.last)
}

// size is how many bytes the console has collected; since(size) is what
// came after.
func (c *console) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Len()
}

func (c *console) since(mark int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf.Bytes()[mark:])
}

func (c *console) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *console) status() (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.exit == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(c.exit))
	return n, err == nil
}

func (c *console) tail(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	ls := c.lines
	if len(c.partial) > 0 {
		ls = append(ls[:len(ls):len(ls)], string(c.partial))
	}
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return "\t" + strings.Join(ls, "\n\t")
}

// arch is how one host architecture is booted.
type arch struct {
	name        string
	cacheSub    string // directory under the cache
	qemu        string
	qemuPackage string
	machine     []string // QEMU's machine, CPU and accelerator flags
	console     string   // the serial console's device name
	cmdline     string   // the host kernel's own command line
	// kvmModules are loaded in order; vendors are tried in turn until one
	// gives /dev/kvm. Both are empty where KVM is built in.
	kvmModules []string
	vendors    []vendorModule
	// memory is the RAM a run gets unless it asks (DefaultMemory if "").
	memory string
	// board, for a board (see boards.go), is how tandem emulate boots
	// its image; the fields above other than the names and QEMU's do not
	// apply.
	board *emulate.Board
	// tpmDevice is QEMU's TPM TIS device on the machine: the ISA one at
	// 0xfed40000 on a PC, the sysbus one on virt.
	tpmDevice string
}

type vendorModule struct {
	name   string
	params string
	// cpuFlag is the /proc/cpuinfo flag that says the CPU can use it.
	cpuFlag string
}

var arches = map[string]arch{
	"x86_64": {
		name: "x86_64", cacheSub: "x86", qemu: "qemu-system-x86_64", qemuPackage: "qemu-system-x86",
		// q35 and -cpu max: TCG emulates AMD's SVM (not Intel's VMX),
		// which kvm-amd nested=1 turns into a working /dev/kvm.
		machine: []string{"-M", "q35", "-cpu", "max", "-accel", "tcg,thread=multi"},
		console: "ttyS0", cmdline: hostCmdline, tpmDevice: "tpm-tis",
		// tun gives the VMM its TAP backends for virtio-net.
		kvmModules: []string{"tun", "irqbypass", "kvm"},
		vendors: []vendorModule{
			{"kvm_amd", "nested=1", "svm"},
			{"kvm_intel", "nested=1", "vmx"},
		},
	},
	"arm64": {
		name: "arm64", cacheSub: "arm64", qemu: "qemu-system-aarch64", qemuPackage: "qemu-system-arm",
		// virtualization=on gives the guest EL2, where Debian's arm64
		// kernel (KVM built in) starts KVM in VHE mode. pauth-impdef=on:
		// Debian's kernels sign return addresses (pointer
		// authentication), and QEMU computes the architected algorithm
		// (QARMA) slowly; its implementation-defined one is cheap.
		machine: []string{"-M", "virt,virtualization=on,gic-version=3", "-cpu", "max,pauth-impdef=on", "-accel", "tcg,thread=multi"},
		// The arm64 host keeps the quiet line it has always booted
		// with: it has shown none of the x86 host's panics or lock-ups.
		console: "ttyAMA0", cmdline: "panic=-1 quiet transparent_hugepage=never",
		// Debian's arm64 kernels do not build tpm_tis, which drives it.
		tpmDevice: "tpm-tis-device",
	},
}

// NativeArch is the emulated host of this machine's own architecture,
// whose nested KVM stands in for a /dev/kvm this machine lacks.
func NativeArch() string {
	if runtime.GOARCH == "arm64" {
		return "arm64"
	}
	return "x86_64"
}

func lookupArch(name string) (arch, error) {
	a, ok := arches[name]
	if !ok {
		var names []string
		for n := range arches {
			names = append(names, n)
		}
		sort.Strings(names)
		return arch{}, fmt.Errorf("unknown host architecture %q (want one of %s)", name, strings.Join(names, ", "))
	}
	return a, nil
}

func (a arch) args(opt Options, kernel, initrd string) []string {
	args := append([]string{}, a.machine...)
	if opt.Icount {
		// Counting instructions needs one emulation thread for all
		// CPUs (QEMU refuses icount with thread=multi).
		for i, v := range args {
			if v == "tcg,thread=multi" {
				args[i] = "tcg,thread=single"
			}
		}
		args = append(args, "-icount", "shift=0,sleep=off")
	}
	args = append(args,
		"-smp", strconv.Itoa(opt.CPUs), "-m", opt.Memory,
		"-nodefaults", "-no-user-config", "-display", "none",
		// Named threads ("CPU 0/TCG"): PinCPUs finds the vCPUs by name.
		"-name", "tandem-host,debug-threads=on",
		// mon:stdio: the serial port, with QEMU's monitor behind
		// Ctrl-A c and a break behind Ctrl-A b (probeFrozen).
		"-serial", "mon:stdio", "-no-reboot",
		"-kernel", kernel, "-initrd", initrd,
	)
	args = append(args, firmwareDirs()...)
	if opt.TPM != "" {
		// QEMU's TPM emulator backend: swtpm's control channel, over
		// which QEMU hands swtpm the command channel (docs/specs/tpm.rst).
		args = append(args, "-chardev", "socket,id=chrtpm,path="+opt.TPM,
			"-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", a.tpmDevice+",tpmdev=tpm0")
	}
	args = append(args,
		"-append", strings.TrimSpace("console="+a.console+" "+a.cmdline+" rdinit=/init "+opt.Cmdline),
	)
	return args
}

// QEMUDirEnv names a directory whose qemu-system-* binaries are used
// instead of those on PATH: an unpacked QEMU of another version, to
// compare the emulated hosts' steadiness under both.
const QEMUDirEnv = "TANDEM_QEMU_DIR"

// qemuPath finds the arch's QEMU.
func (a arch) qemuPath() (string, error) {
	if d := os.Getenv(QEMUDirEnv); d != "" {
		p := filepath.Join(d, a.qemu)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", QEMUDirEnv, d, err)
		}
		return p, nil
	}
	p, err := exec.LookPath(a.qemu)
	if err != nil {
		return "", fmt.Errorf("%s not found: install Debian's %s (make deps)", a.qemu, a.qemuPackage)
	}
	return p, nil
}

// FirmwareDirs are where Debian's QEMU looks for firmware, in order: its
// own data directory, then (QEMU 10's packages) SeaBIOS's and iPXE's.
var FirmwareDirs = []string{"/usr/share/qemu", "/usr/share/seabios", "/usr/lib/ipxe/qemu"}

// firmwareDirs are -L options for a QEMU from QEMUDirEnv: an unpacked QEMU
// looks for its firmware where its package would have put it, so its own
// data directory is named first, then FirmwareDirs.
func firmwareDirs() []string {
	d := os.Getenv(QEMUDirEnv)
	if d == "" {
		return nil
	}
	var args []string
	for _, dir := range append([]string{filepath.Join(d, "..", "share", "qemu")}, FirmwareDirs...) {
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			args = append(args, "-L", filepath.Clean(dir))
		}
	}
	return args
}

var qemuVersions sync.Map // QEMU's path → its version

// QEMUVersion is the version the arch's QEMU reports ("10.0.2"), or
// "unknown".
func QEMUVersion(archName string) string {
	a, err := lookupArch(archName)
	if err != nil {
		return "unknown"
	}
	p, err := a.qemuPath()
	if err != nil {
		return "unknown"
	}
	if v, ok := qemuVersions.Load(p); ok {
		return v.(string)
	}
	v := "unknown"
	if b, err := exec.Command(p, "--version").Output(); err == nil {
		if m := qemuVersionRE.FindSubmatch(b); m != nil {
			v = string(m[1])
		}
	}
	qemuVersions.Store(p, v)
	return v
}

var qemuVersionRE = regexp.MustCompile(`version ([0-9][0-9.]*)`)

// hostArtifacts are the files of the host's kernel from the cache.
type hostArtifacts struct {
	kernel  string
	modules string // /lib/modules/RELEASE, empty if the kernel needs none
	busybox string
}

func (a arch) artifacts(cache string) (hostArtifacts, error) {
	if cache == "" {
		var err error
		if cache, err = CacheDir(); err != nil {
			return hostArtifacts{}, err
		}
	}
	dir := filepath.Join(cache, a.cacheSub)
	// scripts/testdata.sh unpacks a separate host kernel only when the
	// guest kernel lacks the KVM modules.
	kdir := dir
	if _, err := os.Stat(filepath.Join(dir, "host", "vmlinuz")); err == nil {
		kdir = filepath.Join(dir, "host")
	}
	art := hostArtifacts{kernel: filepath.Join(kdir, "vmlinuz"), busybox: filepath.Join(dir, "busybox")}
	rel, err := os.ReadFile(filepath.Join(kdir, "release"))
	if err != nil {
		return art, fmt.Errorf("no %s host kernel in %s: run scripts/testdata.sh %s (%w)", a.name, kdir, a.cacheSub, err)
	}
	art.modules = filepath.Join(kdir, "modules", strings.TrimSpace(string(rel)))
	for _, f := range []string{art.kernel, art.busybox} {
		if _, err := os.Stat(f); err != nil {
			return art, fmt.Errorf("missing %s: run scripts/testdata.sh %s (%w)", f, a.cacheSub, err)
		}
	}
	return art, nil
}

// Check reports why an emulated host of arch cannot run here: QEMU or the
// test data is missing. nil means Run can be tried.
func Check(archName string) error {
	a, err := lookupArch(archName)
	if err != nil {
		return err
	}
	if _, err := a.qemuPath(); err != nil {
		return err
	}
	cache, err := CacheDir()
	if err != nil {
		return err
	}
	_, err = a.artifacts(cache)
	return err
}

// CacheDir returns the test-data cache: $TANDEM_CACHE, or build/cache at
// the root of the module this package is built from.
func CacheDir() (string, error) {
	if d := os.Getenv("TANDEM_CACHE"); d != "" {
		return d, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "build", "cache"), nil
}

// RepoRoot finds the module root (the directory holding go.mod) from the
// working directory up; tests run in their package's directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run from inside the Tandem tree or set TANDEM_CACHE")
		}
		dir = parent
	}
}

// Tail returns up to n final lines of the console, for test messages.
func (r *Result) Tail(n int) string {
	sc := bufio.NewScanner(strings.NewReader(r.Output))
	sc.Buffer(nil, 1<<20)
	var ls []string
	for sc.Scan() {
		ls = append(ls, strings.TrimRight(sc.Text(), "\r"))
		if len(ls) > n {
			ls = ls[1:]
		}
	}
	return strings.Join(ls, "\n")
}

// Lines is a console writer that hands each whole line to a function,
// without its line end: tandem emulate's (package emulate).
type Lines = emulate.Lines

// NewLines returns a writer that calls line for each line written.
func NewLines(line func(string)) *Lines { return emulate.NewLines(line) }
