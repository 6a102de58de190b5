package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// buildDemoInitramfs writes an initramfs with guests/NAME as /init for
// the x86 kernel k (BuildDemoGuest).
func buildDemoInitramfs(t *testing.T, file, name string, k Kernel) {
	t.Helper()
	if err := BuildDemoGuest(file, DemoGuestPkg(name), "amd64", k, "."); err != nil {
		t.Fatal(err)
	}
}

// demoManifest is the two-guest system: the control guest on host core 1
// at SCHED_FIFO 50, allowed to reach the infotainment guest's port 5000
// only; the infotainment guest restarted always, 200 ms after it ends.
const demoManifest = `guests:
  - name: control
    role: control
    kernel: vmlinuz
    initrd: control.img
    cmdline: console=ttyS0 quiet panic=-1 tandem.peer=4:5000 tandem.probe=4:5001
    memory: 192M
    host-cpus: [1]
    rt-priority: 50
    lock-memory: true
    vsock:
      cid: 3
      allow: ["infotainment:5000"]
    restart: {policy: always}
  - name: infotainment
    role: infotainment
    kernel: vmlinuz
    initrd: info.img
    cmdline: console=ttyS0 quiet panic=-1 nokaslr %s
    memory: 256M
    vsock:
      cid: 4
    restart: {policy: always, backoff: 200ms}
    after: [control]
`

// systemTest is TestSystem's tandem emulate test file: it runs the
// system until the channel has carried at least 100 messages, shows the
// status and the control VMM's threads, kills the infotainment VMM as a
// crash would, waits for its restart and for the channel to resume on a
// new connection, restarts the control guest, then kills its VMM too,
// each time waiting for the channel to resume, stops the infotainment
// guest, and shows the status again. After the control VMM's crash the
// channel's resumption is read from the new control guest's own counts
// (sent is per boot, and its report says whether it is connected), not
// from the infotainment guest's count of connections: that count starts
// again when the infotainment guest restarts, and the emulated x86
// host's software SVM now and then resets that guest as a connection
// comes in (docs/emulated-hosts.md), whereupon the supervisor restarts
// it by its policy. Each step is a console command
// tandem init runs (tandem.commands=1) or a line to wait for.
const systemTest = `timeout: 18m
expect-not:
  - "Kernel panic"
  - "board: tandem init: > error:"
steps:
  - wait: "infotainment: TANDEM-INFO received=[1-9]"
    within: 8m
    name: the channel carries messages
  - wait: "infotainment: TANDEM-INFO received=[1-9][0-9]{2,}"
    within: 2m
    name: at least 100 messages
  - run: tandem ps
  - run: tandem threads control
  - run: tandem kill infotainment
  - wait: "board: tandem: infotainment: started"
    within: 30s
    name: the killed VMM is restarted
  - wait: "infotainment: TANDEM-INFO connection from=3"
    within: 3m
    name: the control guest connects again
  - wait: "infotainment: TANDEM-INFO received=[1-9]"
    within: 2m
  - wait: "infotainment: TANDEM-INFO received=[1-9]"
    within: 30s
    name: a second report of messages
  - run: tandem restart control
  - wait: "infotainment: TANDEM-INFO connection from=3"
    within: 4m
    name: the restarted control guest connects
  - wait: "infotainment: TANDEM-INFO received=[1-9].* connections=[2-9]"
    within: 1m
    name: messages from the restarted control guest
  - run: tandem kill control
  - wait: "board: tandem: control: started"
    within: 30s
    name: the killed control VMM is restarted
  - wait: "infotainment: TANDEM-INFO connection from=3"
    within: 4m
    name: the control guest connects after its crash
  - wait: "control: TANDEM-CONTROL .* sent=[1-9][0-9]* dropped=[0-9]+ connected=true"
    within: 1m
    name: messages from the control guest after its crash
  - wait: "infotainment: TANDEM-INFO received=[1-9]"
    within: 30s
    name: the infotainment guest still reports them
  - run: tandem stop infotainment
  - wait: "board: tandem: control: vsock → 4:5000 refused: infotainment: not running"
    within: 1m
    name: the stopped guest is no longer there
  - run: tandem ps
`

// systemCmdline is the x86-pc host's extra command line: console
// commands on, and a deadline should the steps hang.
const systemCmdline = "tandem.commands=1 tandem.runfor=17m"

// systemSilence is how long a system test's console may be silent: its
// guests report every second, so a minute of silence is a frozen host.
const systemSilence = time.Minute

// systemSetup is what the system tests need first: an emulated x86 host,
// tandem built for it, and Debian's stock kernel for the guests.
func systemSetup(t *testing.T) (tandem string, k Kernel) {
	t.Helper()
	qemuhost.Require(t)
	tandem = buildTandem(t)
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if k, err = X86Kernel(cache); err != nil {
		t.Fatal(err)
	}
	return tandem, k
}

// TestSystem runs the two demo guests under tandem system on the x86-pc
// board: its image, built by tandem image build, booted by tandem emulate
// on QEMU's q35 with Debian's OVMF as a PC boots it, driven by a test file
// (systemTest) through the board's console commands. It checks the
// freedom-from-interference claims that are meaningful there: the channel
// carries the control guest's messages without a sequence fault, the
// control guest's vCPU thread runs alone on its dedicated core under
// SCHED_FIFO, a killed infotainment VMM is restarted while the control
// guest keeps running, the channel resumes, the allow-list refuses a
// port; and that stop and restart work on the running system.
//
// Deadlines under software emulation are soft (the board's vCPUs are
// host threads of a TCG QEMU), so the control loop's misses and jitter
// are reported, not asserted; what is asserted is that the loop keeps
// reporting through the other guest's death.
func TestSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: boots an emulated x86 PC for several minutes")
	}
	board := emulate.X86PC
	testenv.RequireCommand(t, board.QEMU, board.QEMUPackage)
	testenv.RequireFile(t, board.Firmware, "install Debian's "+board.FirmwarePackage+": make deps")
	tandem := buildTandem(t)
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	k, err := X86Kernel(cache)
	if err != nil {
		t.Fatal(err)
	}
	sys := filepath.Join(workDir, "system-x86-pc")
	os.MkdirAll(sys, 0o755)
	buildDemoInitramfs(t, filepath.Join(sys, "control.img"), "control", k)
	buildDemoInitramfs(t, filepath.Join(sys, "info.img"), "infotainment", k)
	os.Symlink(k.Image, filepath.Join(sys, "vmlinuz"))
	os.WriteFile(filepath.Join(sys, "system.yaml"), []byte(fmt.Sprintf(demoManifest, "")), 0o644)
	img := filepath.Join(workDir, "tandem-x86-pc.img")
	build := exec.Command(tandem, "image", "build", "--board", board.Name, "--cache", cache,
		"--manifest", filepath.Join(sys, "system.yaml"), "-o", img, "--cmdline", systemCmdline)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tandem image build: %v\n%s", err, out)
	}
	tf, err := emulate.ParseTestFile("system-test.yaml", []byte(systemTest))
	if err != nil {
		t.Fatal(err)
	}
	qemuVersion := "unknown"
	if b, err := exec.Command(board.QEMU, "--version").Output(); err == nil {
		if m := regexp.MustCompile(`version ([0-9][0-9.]*)`).FindSubmatch(b); m != nil {
			qemuVersion = string(m[1])
		}
	}
	var console bytes.Buffer
	var res *emulate.Result
	for boot := 1; ; boot++ {
		console.Reset()
		start := time.Now()
		res, err = emulate.Run(context.Background(), emulate.Options{Image: img, Board: board, Guests: []string{"control", "infotainment"},
			Expect: tf.ExpectNot, Steps: tf.Steps, Timeout: tf.Timeout, Out: io.MultiWriter(&console, consoleLog{}),
			Artifacts: filepath.Join(workDir, fmt.Sprintf("system-artifacts-%d", boot))})
		if err != nil {
			t.Fatalf("emulate.Run() = %v", err)
		}
		// The board's own kernel panicking or resetting under software
		// emulation is the rig's failure, not Tandem's (tandem init
		// cannot reset the board but by powering it off, which is not
		// this): it is counted, said and booted again (twice at most),
		// as the emulated hosts are. A guest's panic fails the test.
		outcome, why := boardFailure(res)
		ev := testenv.Event{Kind: "host", Test: t.Name(), Arch: "x86_64 (x86-pc board)", QEMU: qemuVersion, Outcome: "ok", Seconds: time.Since(start).Seconds()}
		if why != "" {
			ev.Outcome, ev.Detail, ev.Retried = outcome, why, boot < 3
		}
		testenv.Record(ev)
		if why == "" || boot == 3 {
			break
		}
		t.Logf("boot %d: %s: booting it again", boot, why)
	}
	// The serial console ends its lines with CR LF.
	out := strings.ReplaceAll(console.String(), "\r", "")
	for _, c := range res.Cases {
		t.Logf("%-5v %6.1fs  %s", c.Passed, c.Time.Seconds(), c.Name)
	}
	if !res.Passed() {
		for _, c := range res.Failed() {
			t.Errorf("%s: %s\n%s", c.Name, c.Failure, strings.Join(c.Excerpt, "\n"))
		}
		t.Fatalf("the run ended: %s; its console's last lines:\n%s", res.End, strings.Join(lastLinesOf(out, 60), "\n"))
	}
	caseTime := func(name string) time.Duration {
		for _, c := range res.Cases {
			if strings.HasSuffix(c.Name, ": "+name) {
				return c.Time
			}
		}
		t.Fatalf("no case %q", name)
		return 0
	}
	before, after, ok := strings.Cut(out, "tandem init: $ tandem kill infotainment")
	if !ok {
		t.Fatalf("the board never killed the infotainment VMM")
	}
	afterKill, _, _ := strings.Cut(after, "tandem init: $ tandem restart control")
	// The channel, before the kill.
	infoBefore := lastFields(before, "infotainment | TANDEM-INFO received=")
	if n, _ := strconv.Atoi(infoBefore["received"]); n < 100 {
		t.Errorf("infotainment received %q messages before the kill, want at least 100 (1 s at 100 Hz)", infoBefore["received"])
	}
	if infoBefore["faults"] != "0" {
		t.Errorf("infotainment faults before the kill = %v, want 0", infoBefore)
	}
	// Placement, from tandem threads control: the control guest's vCPU
	// thread (the one under SCHED_FIFO) alone on its dedicated core 1;
	// every other thread of its VMM on the housekeeping core 0.
	threads := commandAnswer(before, "tandem threads control")
	var vcpus, others []string
	for _, l := range threads[min(1, len(threads)):] { // after the header
		f := strings.Fields(l)
		if len(f) < 5 {
			t.Errorf("tandem threads control: line %q, want TID NAME POLICY PRIO CPUS", l)
			continue
		}
		th := fmt.Sprintf("%s policy=%s prio=%s cores=%s", f[1], f[len(f)-3], f[len(f)-2], f[len(f)-1])
		if f[len(f)-3] == "fifo" {
			vcpus = append(vcpus, th)
		} else {
			others = append(others, th)
		}
	}
	if len(vcpus) != 1 || vcpus[0] != "vcpu0 policy=fifo prio=50 cores=1" {
		t.Errorf("control VMM's SCHED_FIFO threads = %q, want its one vCPU thread, at priority 50 on core 1 (tandem threads control: %q)", vcpus, threads)
	}
	if len(others) == 0 {
		t.Errorf("control VMM's other threads were not listed: %q", threads)
	}
	for _, th := range others {
		if _, rest, _ := strings.Cut(th, " "); rest != "policy=other prio=0 cores=0" || strings.HasPrefix(th, "vcpu") {
			t.Errorf("control VMM thread %q, want every thread but the vCPU's at normal policy on housekeeping core 0", th)
		}
	}
	// The restart: by its policy (a 200 ms backoff). How long it took is
	// logged, not judged: make bench is where speed is measured.
	restart := caseTime("the killed VMM is restarted") - caseTime("run tandem kill infotainment")
	t.Logf("infotainment restarted %.2fs after the kill (as the board's console shows it)", restart.Seconds())
	infoAfter := lastFields(afterKill, "infotainment | TANDEM-INFO received=")
	if n, _ := strconv.Atoi(infoAfter["received"]); n == 0 || infoAfter["faults"] != "0" {
		t.Errorf("infotainment after its restart = %v, want messages again and faults=0", infoAfter)
	}
	// The infotainment guest has been seen to end again after its
	// restart, its vCPU in a triple fault, as a connection came in (see
	// "Known problem" in docs/emulated-hosts.md): the supervisor
	// restarts it and the channel resumes on the next connection, which
	// the steps wait for. It is said here, not hidden.
	for _, l := range strings.Split(afterKill, "\n") {
		if strings.Contains(l, "infotainment | tandem: guest ended: reset") {
			t.Logf("the restarted infotainment guest ended again: %s", strings.TrimSpace(l))
		}
	}
	// The control guest through it all: one VMM, reporting every second.
	if n := strings.Count(afterKill, "control | TANDEM-CONTROL misses="); n < 3 {
		t.Errorf("control guest reported %d times after the kill, want it to keep running", n)
	}
	if n := strings.Count(before+afterKill, "tandem: control: started"); n != 1 {
		t.Errorf("control VMM started %d times before its restart, want once (the other guest's death must not touch it)", n)
	}
	if n := strings.Count(out, "tandem: control: started"); n != 3 {
		t.Errorf("control VMM started %d times in all, want 3 (tandem restart control, tandem kill control)", n)
	}
	t.Logf("control loop before the kill: %v", lastFields(before, "control | TANDEM-CONTROL misses="))
	t.Logf("control loop after the restart: %v", lastFields(afterKill, "control | TANDEM-CONTROL misses="))
	t.Logf("infotainment before: %v; after: %v", infoBefore, infoAfter)
	// Each VMM's last words start a line of their own, even when the
	// guest was stopped in the middle of one.
	ended := 0
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, "tandem: guest ended") {
			continue
		}
		ended++
		if _, rest, _ := strings.Cut(l, " | "); !strings.HasPrefix(rest, "tandem: guest ended") {
			t.Errorf("a VMM's last words ran into a console line: %q", l)
		}
	}
	if ended == 0 {
		t.Errorf("no VMM said how its guest ended")
	}
	// The last status: the infotainment guest stopped, the control guest
	// running, restarted once.
	last := out[strings.LastIndex(out, "tandem init: $ tandem stop infotainment"):]
	ps := commandAnswer(last, "tandem ps")
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`^control\s+control\s+running\s+\d+\s+\S+\s+2\s`),
		regexp.MustCompile(`^infotainment\s+infotainment\s+stopped\s`),
	} {
		found := false
		for _, l := range ps {
			found = found || re.MatchString(l)
		}
		if !found {
			t.Errorf("the last tandem ps has no row matching %s: %q", re, ps)
		}
	}
	// The allow-list.
	if !strings.Contains(out, "TANDEM-CONTROL probe=4:5001 refused") {
		t.Errorf("control guest's probe of 4:5001 was not refused")
	}
	if !strings.Contains(out, "control: vsock → 4:5001 refused: not in control's vsock.allow") {
		t.Errorf("supervisor did not log the refusal of 4:5001")
	}
}

// boardFailure says whether the board itself failed, as the report's
// outcome ("panic", or "error" for a board that reset without a panic
// line: QEMU runs it with -no-reboot, so it ended) and why; "" when it did
// not.
func boardFailure(res *emulate.Result) (outcome, why string) {
	if p := boardPanic(res); p != "" {
		return "panic", "the board's kernel panicked (" + p + ")"
	}
	if res.End == emulate.EndExited {
		return "error", "the board reset or crashed: " + string(res.End) + ", with no panic line"
	}
	return "", ""
}

// boardPanic returns the board's own kernel's panic line that failed
// res, "" when no such line did: a guest's panic is prefixed by its name.
func boardPanic(res *emulate.Result) string {
	for _, c := range res.Failed() {
		if strings.HasPrefix(c.Name, "expect-not ") && strings.Contains(c.Line, "Kernel panic") && !strings.Contains(c.Line, " | ") {
			return strings.TrimSpace(c.Line)
		}
	}
	return ""
}

// commandAnswer returns the answer lines of the first console command
// line in out: what tandem init printed after "tandem init: $ LINE".
func commandAnswer(out, line string) []string {
	_, rest, ok := strings.Cut(out, "tandem init: $ "+line+"\n")
	if !ok {
		return nil
	}
	var answer []string
	for _, l := range strings.Split(rest, "\n") {
		a, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "tandem init: > ")
		if !ok {
			break
		}
		answer = append(answer, a)
	}
	return answer
}

// lastLinesOf returns the last n lines of s.
func lastLinesOf(s string, n int) []string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return l[max(0, len(l)-n):]
}

// lastFields parses key=value words of the last line containing prefix.
func lastFields(out, prefix string) map[string]string {
	// A guest stopped while it prints leaves its last report cut
	// ("received=99 faul"): the last report with as many fields as the
	// longest one is the last whole one.
	var reports []map[string]string
	most := 0
	for rest := out; ; {
		i := strings.Index(rest, prefix)
		if i < 0 {
			break
		}
		line, after, _ := strings.Cut(rest[i:], "\n")
		rest = after
		m := map[string]string{}
		for _, w := range strings.Fields(line) {
			if k, v, ok := strings.Cut(w, "="); ok {
				m[k] = v
			}
		}
		reports = append(reports, m)
		most = max(most, len(m))
	}
	for i := len(reports) - 1; i >= 0; i-- {
		if len(reports[i]) == most {
			return reports[i]
		}
	}
	return map[string]string{}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	return strings.Join(l[:min(n, len(l))], "\n")
}

// TestLastFields: the last whole report counts, not one the guest's stop
// cut short, nor another guest's.
func TestLastFields(t *testing.T) {
	const p = "info | R received="
	tests := []struct {
		name, out string
		want      map[string]string
	}{
		{"last whole", p + "1 faults=0\n" + p + "2 faults=0\n", map[string]string{"received": "2", "faults": "0"}},
		{"last cut", p + "1 faults=0\n" + p + "2 faults=0\n" + p + "3 faul\n", map[string]string{"received": "2", "faults": "0"}},
		{"cut without newline", p + "1 faults=1\n" + p + "3 fa", map[string]string{"received": "1", "faults": "1"}},
		{"other lines between", p + "1 faults=0\nctl | x=1 y=2 z=3\n", map[string]string{"received": "1", "faults": "0"}},
		{"none", "ctl | x=1\n", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lastFields(tt.out, p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("lastFields() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestBoardFailure checks which ends of a TestSystem boot count as the
// board's own failure, booted again: its kernel's panic and a reset that
// ended QEMU; not a guest's panic, a failed step or a clean power-off.
func TestBoardFailure(t *testing.T) {
	expectNot := func(line string) *emulate.Case {
		return &emulate.Case{Name: "expect-not Kernel panic", Line: line}
	}
	tests := []struct {
		name        string
		res         *emulate.Result
		wantOutcome string
	}{
		{"powered off, all passed", &emulate.Result{End: emulate.EndPowerOff, PoweredOff: true, Cases: []*emulate.Case{{Name: "step 1", Passed: true}}}, ""},
		{"a step failed", &emulate.Result{End: emulate.EndFailed, Cases: []*emulate.Case{{Name: "step 7", Failure: "no line"}}}, ""},
		{"the board's kernel panicked", &emulate.Result{End: emulate.EndExited, Cases: []*emulate.Case{expectNot("[   21.6] Kernel panic - not syncing: Fatal exception")}}, "panic"},
		{"a guest's kernel panicked", &emulate.Result{End: emulate.EndFailed, Cases: []*emulate.Case{expectNot("infotainment | [ 1.0] Kernel panic - not syncing")}}, ""},
		{"QEMU ended, no panic line", &emulate.Result{End: emulate.EndExited, Cases: []*emulate.Case{{Name: "step 7", Failure: "the run ended"}}}, "error"},
		{"timeout", &emulate.Result{End: emulate.EndTimeout}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outcome, why := boardFailure(tt.res)
			if outcome != tt.wantOutcome || (why == "") != (tt.wantOutcome == "") {
				t.Errorf("boardFailure() = %q, %q; want outcome %q", outcome, why, tt.wantOutcome)
			}
		})
	}
}
