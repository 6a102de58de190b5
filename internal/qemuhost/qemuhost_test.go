package qemuhost

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// buildStatic builds a package of this module as a static binary for the
// emulated host.
func buildStatic(t *testing.T, pkg, goarch string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// testWriter sends console lines to the test log when -v is given.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// TestNestedKVM boots the emulated x86 host and runs a tiny real-mode
// guest with nested KVM inside it. The script's exit status travels back
// through the host init's marker; a second command exits 3 to show that a
// failing script is reported as such.
func TestNestedKVM(t *testing.T) {
	Require(t)
	probe := buildStatic(t, "./testdata/kvmprobe", "amd64")
	start := time.Now()
	res, err := Run(context.Background(), Options{
		Files: map[string]string{"/kvmprobe": probe},
		Script: "/kvmprobe || exit $?\necho probe-done\necho lockup-panic=$(cat /proc/sys/kernel/softlockup_panic)/$(cat /proc/sys/kernel/panic_on_rcu_stall)\n" +
			"echo kernel-text=$(grep -w _text /proc/kallsyms | cut -d' ' -f1)\n" +
			"exit 3\n",
		Memory:  "1G",
		Console: testWriter{t},
		Timeout: 5 * time.Minute,
	})
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	t.Logf("emulated host: init after %v, whole run %v (wall %v), KVM from %s", res.Boot, res.Total, time.Since(start), res.KVM)
	if !strings.Contains(res.Output, "KVMPROBE ok") {
		t.Errorf("console lacks the probe's KVMPROBE ok; last lines:\n%s", res.Tail(20))
	}
	if !strings.Contains(res.Output, "probe-done") {
		t.Errorf("console lacks probe-done: the script did not go on after the probe")
	}
	if !strings.Contains(res.Output, "lockup-panic=1/1") {
		t.Errorf("console lacks lockup-panic=1/1: the host does not panic on a soft lockup or an RCU stall, so a locked-up host would hold the run until its timeout")
	}
	// kvm-shutdowns names a guest's fault address from the host's
	// symbols: only right when the host's kernel is at its link address.
	if !strings.Contains(res.Output, "kernel-text=ffffffff81000000") {
		t.Errorf("console lacks kernel-text=ffffffff81000000: the host kernel is not at its link address (nokaslr), so kvm-shutdowns would name the wrong symbols")
	}
	if res.ExitStatus != 3 {
		t.Errorf("Run().ExitStatus = %d, want 3", res.ExitStatus)
	}
	if res.KVM != "kvm_amd" && res.KVM != "kvm_intel" {
		t.Errorf("Run().KVM = %q, want kvm_amd or kvm_intel", res.KVM)
	}
}

// TestRetried shows that a host that fails the way the emulated host
// does is booted again, hostAttempts times in all, and that the error
// then says what happened, long before the run's own timeout: a kernel
// panic (crashed on purpose with sysrq c), a host whose init does not
// report within Options.BootDeadline, a console silent for longer than
// Options.Silence (taken as a frozen host), and a host whose machine
// resets itself (rebooted on purpose with sysrq b).
func TestRetried(t *testing.T) {
	Require(t)
	tests := []struct {
		name, script string
		silence      time.Duration
		bootDeadline time.Duration
		// wantErr are in the error: what happened and, for a silent
		// host, probeFrozen's report of an idle but answering host.
		wantErr []string
	}{
		{"a panicked host", "echo try-starts\necho c >/proc/sysrq-trigger\nsleep 60\n", 0, 0, []string{panicMark + ": sysrq triggered crash"}},
		{"a host that does not boot in time", "echo try-starts\nsleep 600\n", 0, time.Second, []string{
			"did not boot: its init gave no sign within 1s", "probe of the silent host:", "QEMU's threads over 2s: "}},
		{"a silent host", "echo try-starts\nsleep 600\n", 4 * time.Second, 0, []string{
			"froze: its console was silent for more than 4s", "try-starts",
			"QEMU's threads over 2s: ", "CPU 0/TCG ",
			"host kernel, sysrq l:", "NMI backtrace for cpu 0",
			"host kernel, sysrq t, user-space threads:", "task:sleep ", "do_nanosleep",
			"QEMU monitor, info registers -a:", "CPU#0", "RIP=",
		}},
		{"a host that resets itself", "echo try-starts\necho b >/proc/sysrq-trigger\nsleep 60\n", 0, 0, []string{
			"host's machine reset itself before the script reported its exit status",
			"no triple fault in QEMU's log: the host's kernel rebooted", "try-starts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var con strings.Builder
			start := time.Now()
			res, err := Run(context.Background(), Options{
				Script:       tt.script,
				Memory:       "512M",
				CPUs:         1,
				Console:      &con,
				Silence:      tt.silence,
				BootDeadline: tt.bootDeadline,
				Timeout:      5 * time.Minute,
				Label:        testenv.CrashedOnPurpose,
			})
			if err == nil {
				t.Fatalf("Run() = nil error, want %q (exit status %d)", tt.wantErr[0], res.ExitStatus)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Run() error = %v, want it to contain %q", err, want)
				}
			}
			if res.Attempts != hostAttempts {
				t.Errorf("Run().Attempts = %d, want %d", res.Attempts, hostAttempts)
			}
			// A host past its boot deadline may still boot while it is
			// probed: its script's runs are not counted.
			if n := strings.Count(con.String(), "try-starts"); n != hostAttempts && tt.bootDeadline == 0 {
				t.Errorf("the script ran %d times, want %d", n, hostAttempts)
			}
			if d := time.Since(start); d > 3*time.Minute {
				t.Errorf("Run() took %v, want each try ended early", d)
			}
		})
	}
}

// TestTimeout shows that a host that does not finish in time ends the run
// with an error quoting the console, and that QEMU is gone afterwards.
func TestTimeout(t *testing.T) {
	Require(t)
	res, err := Run(context.Background(), Options{
		Script:  "echo waiting-forever; sleep 600\n",
		Memory:  "512M",
		CPUs:    1,
		Timeout: 12 * time.Second,
		Label:   testenv.CrashedOnPurpose,
	})
	if err == nil {
		t.Fatalf("Run() = nil error, want a timeout (exit status %d)", res.ExitStatus)
	}
	// The error quotes the console as far as the host got: on a busy
	// machine 12 s may end it before the script's line, so what must be
	// quoted is the console's last line, whichever it is.
	want := []string{"did not finish within 12s"}
	if lines := strings.Fields(strings.ReplaceAll(strings.TrimSpace(res.Output), "\r", "")); len(lines) > 0 {
		want = append(want, lines[len(lines)-1])
	} else {
		t.Errorf("the host printed nothing in 12 s")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Run() error = %v, want it to contain %q", err, w)
		}
	}
	t.Logf("the host reached the script's line: %v", strings.Contains(res.Output, "waiting-forever"))
}

func TestConsoleMarkers(t *testing.T) {
	tests := []struct {
		name       string
		chunks     []string
		wantStatus int
		wantOK     bool
		wantKVM    string
		wantFail   string
	}{
		{"exit split across writes", []string{"noise\r\nTANDEM-HOST kvm=kvm_amd\r\nTANDEM-HOST ex", "it=7\r\n"}, 7, true, "kvm_amd", ""},
		{"marker after kernel text", []string{"[ 1.0] foo TANDEM-HOST exit=0\n"}, 0, true, "", ""},
		{"no newline yet", []string{"TANDEM-HOST exit=1"}, 0, false, "", ""},
		{"failure", []string{"TANDEM-HOST fail no /dev/kvm\nTANDEM-HOST exit=255\n"}, 255, true, "", "no /dev/kvm"},
		{"garbage status", []string{"TANDEM-HOST exit=x\n"}, 0, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConsole(nil, time.Now())
			for _, s := range tt.chunks {
				c.Write([]byte(s))
			}
			status, ok := c.status()
			if status != tt.wantStatus || ok != tt.wantOK {
				t.Errorf("status() = %d, %v, want %d, %v", status, ok, tt.wantStatus, tt.wantOK)
			}
			if c.kvm != tt.wantKVM || c.failure != tt.wantFail {
				t.Errorf("kvm, failure = %q, %q, want %q, %q", c.kvm, c.failure, tt.wantKVM, tt.wantFail)
			}
			if got, want := c.text(), strings.Join(tt.chunks, ""); got != want {
				t.Errorf("text() = %q, want %q", got, want)
			}
		})
	}
}

func TestTail(t *testing.T) {
	r := &Result{Output: "a\r\nb\nc\nd"}
	if got, want := r.Tail(2), "c\nd"; got != want {
		t.Errorf("Tail(2) = %q, want %q", got, want)
	}
	c := newConsole(nil, time.Now())
	c.Write([]byte("one\ntwo\nthr"))
	if got, want := c.tail(2), "\ttwo\n\tthr"; got != want {
		t.Errorf("tail(2) = %q, want %q", got, want)
	}
}

func TestUnknownArch(t *testing.T) {
	if _, err := Run(context.Background(), Options{Arch: "riscv64"}); err == nil || !strings.Contains(err.Error(), "unknown host architecture") {
		t.Errorf("Run(riscv64) = %v, want an unknown-architecture error", err)
	}
}

// TestArm64Host boots the emulated arm64 host (the QEMU virt board with
// EL2) and checks that its built-in KVM gave it /dev/kvm. Its test data
// is optional (scripts/testdata.sh arm64), so it skips without it even in
// CI.
func TestArm64Host(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: boots an emulated host (-short)")
	}
	if err := Check("arm64"); err != nil {
		t.Skipf("skipping: %v", err)
	}
	res, err := Run(context.Background(), Options{
		Arch:    "arm64",
		Script:  "dmesg | grep -i 'kvm.*initialized' ; test -c /dev/kvm\n",
		Memory:  "1G",
		Console: testWriter{t},
		Timeout: 3 * time.Minute,
	})
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	t.Logf("emulated arm64 host: init after %v, whole run %v", res.Boot, res.Total)
	if res.ExitStatus != 0 || res.KVM != "builtin" {
		t.Errorf("Run() = exit %d, KVM %q, want 0, builtin; last lines:\n%s", res.ExitStatus, res.KVM, res.Tail(20))
	}
}

// TestLines checks how console chunks become lines: split anywhere, with
// "\r\n" or "\n" ends, and a last line without an end given on Flush.
func TestLines(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"whole lines", []string{"a\nb\n"}, []string{"a", "b"}},
		{"split across writes", []string{"TANDEM-HOST ex", "it=0\r\nne", "xt\n"}, []string{"TANDEM-HOST exit=0", "next"}},
		{"empty lines kept", []string{"\n\nx\n"}, []string{"", "", "x"}},
		{"a last line without an end", []string{"a\nb"}, []string{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			l := NewLines(func(s string) { got = append(got, s) })
			for _, c := range tt.chunks {
				l.Write([]byte(c))
			}
			l.Flush()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestArgsIcount: Options.Icount gives every host architecture QEMU's
// instruction-counting clock on one emulation thread, and leaves the
// multi-threaded emulation alone otherwise.
func TestArgsIcount(t *testing.T) {
	for _, name := range []string{"x86_64", "arm64", Arm64GICv2} {
		for _, icount := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s icount=%v", name, icount), func(t *testing.T) {
				a, err := lookupArch(name)
				if err != nil {
					t.Fatal(err)
				}
				args := strings.Join(a.args(Options{Icount: icount, CPUs: 2, Memory: "1G"}, "k", "i"), " ")
				wantIcount := strings.Contains(args, "-icount shift=0,sleep=off") && strings.Contains(args, "tcg,thread=single")
				wantMulti := strings.Contains(args, "tcg,thread=multi") && !strings.Contains(args, "-icount")
				if icount && !wantIcount || !icount && !wantMulti {
					t.Errorf("args(Icount: %v) = %s", icount, args)
				}
			})
		}
	}
}

// TestRetriedWithTPM: a host with a software TPM that panics is booted
// again with a new one (QEMU's exit ends swtpm): each boot attaches the
// TPM NewTPM started for it, and each is stopped after its boot.
func TestRetriedWithTPM(t *testing.T) {
	Require(t)
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	dir := t.TempDir()
	var started, stopped []string
	newTPM := func(attempt int) (string, func(), error) {
		tpm, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(dir, "state"), Ctrl: filepath.Join(dir, fmt.Sprintf("ctrl-%d.sock", attempt))})
		if err != nil {
			return "", nil, err
		}
		started = append(started, tpm.Ctrl())
		return tpm.Ctrl(), func() { stopped = append(stopped, tpm.Ctrl()); tpm.Stop() }, nil
	}
	res, err := Run(context.Background(), Options{
		Script: "echo try-starts\necho c >/proc/sysrq-trigger\nsleep 60\n", Memory: "512M", CPUs: 1,
		Timeout: 5 * time.Minute, Label: testenv.CrashedOnPurpose, NewTPM: newTPM,
	})
	// Each boot reached its panic: QEMU attached the TPM it was given
	// (a TPM that is gone fails QEMU's start instead).
	if err == nil || !strings.Contains(err.Error(), panicMark+": sysrq triggered crash") {
		t.Fatalf("Run() = %v, want the host's panic after its last boot", err)
	}
	if res.Attempts != hostAttempts || len(started) != hostAttempts || len(stopped) != hostAttempts {
		t.Errorf("boots %d, TPMs started %q, stopped %q; want %d of each", res.Attempts, started, stopped, hostAttempts)
	}
}
