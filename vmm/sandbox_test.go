package vmm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	seccomparch "github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/kvmtest"
	"github.com/tandem-hv/tandem/internal/tinyguest"
	"github.com/tandem-hv/tandem/sandbox"
)

// sandboxChildEnv makes a run of TestSandboxedVMM the sandboxed VMM: it
// holds the directory with the guest's "kernel" and a file outside the
// VMM's allowed set.
const sandboxChildEnv = "TANDEM_VMM_SANDBOX_CHILD"

// TestSandboxedVMM runs a tiny guest in a sandboxed VMM (a child
// process: the sandbox is for good) and has the VMM try what its sandbox
// forbids while the guest runs: execve is refused with EPERM and the
// kernel logs it, a file outside its allowed set cannot be opened, a TCP
// socket cannot be made; meanwhile the guest keeps running (its exits
// grow between two of DumpState's answers, which read the vCPU's
// registers through the filter), and it still stops when told.
func TestSandboxedVMM(t *testing.T) {
	if dir := os.Getenv(sandboxChildEnv); dir != "" {
		sandboxedVMM(t, dir)
		return
	}
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	if !sandbox.Supported() {
		t.Skip("skipping: the kernel has no seccomp filters")
	}
	dir := t.TempDir()
	for _, f := range []string{"kernel", "secret"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The kernel prints audit records at most 10 in 5 s, for every
	// process together: a record lost to that limit (other tests
	// refusing calls at the same time) is looked for again, in another
	// run after the limit's interval.
	const tries = 3
	var out []byte
	for try := 1; ; try++ {
		var found bool
		out, found = runSandboxedVMM(t, dir)
		if found || t.Failed() {
			break
		}
		if try == tries {
			t.Errorf("the kernel log has no seccomp audit record of the sandboxed VMM's execve (type=1326, syscall=%d), in %d runs", unix.SYS_EXECVE, tries)
			break
		}
		t.Logf("no audit record of the execve in the kernel log (its audit messages are rate-limited): running again in 6 s")
		time.Sleep(6 * time.Second)
	}
	if t.Failed() {
		t.Logf("the sandboxed VMM's output:\n%s", out)
	}
}

// runSandboxedVMM runs the sandboxed VMM (sandboxedVMM) once, judges its
// probes and reports whether the kernel log has the audit record of its
// refused execve. Where the kernel log cannot be read it says so and
// reports the record found.
func runSandboxedVMM(t *testing.T, dir string) ([]byte, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSandboxedVMM$", "-test.v")
	cmd.Env = append(os.Environ(), sandboxChildEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	got := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "PROBE "); ok {
			if k, v, ok := strings.Cut(rest, "="); ok {
				got[k] = v
			}
		}
	}
	if err != nil {
		t.Fatalf("the sandboxed VMM failed: %v\n%s", err, out)
	}
	want := map[string]string{
		"Seccomp": "2", "NoNewPrivs": "1",
		"execve": "EPERM", "tcp-socket": "EPERM",
		"guest-ran-on": "yes", "run": "stopped",
	}
	if got["landlock"] != "0" {
		want["open-secret"], want["open-kernel"] = "EACCES", "ok"
	} else {
		t.Logf("this kernel has no Landlock: the file probes are not judged")
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("sandboxed VMM: %s = %q, want %q", k, got[k], w)
		}
	}
	// The refusal is in the kernel's log: an audit record of the
	// execve, with the child's pid.
	record := regexp.MustCompile(`type=1326 .* pid=` + regexp.QuoteMeta(got["pid"]) + ` .* syscall=` + strconv.Itoa(unix.SYS_EXECVE) + ` `)
	for range 20 {
		b, err := exec.Command("dmesg").Output()
		if err != nil {
			t.Logf("the kernel log cannot be read here (%v): the audit record is not judged", err)
			return out, true
		}
		if record.Match(b) {
			return out, true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return out, false
}

// sandboxedVMM is the child: the VMM, its guest and the probes.
func sandboxedVMM(t *testing.T, dir string) {
	probe := func(k string, v any) { fmt.Printf("PROBE %s=%v\n", k, v) }
	errName := func(err error) string {
		var en syscall.Errno
		if errors.As(err, &en) {
			return unix.ErrnoName(en)
		}
		if err == nil {
			return "ok"
		}
		return err.Error()
	}
	probe("pid", os.Getpid())
	g, err := tinyguest.New(tinyguest.Loop)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	applied := make(chan sandbox.Report, 1)
	vm := &VM{
		cfg: Config{Name: "tiny", CPUs: 1, Kernel: filepath.Join(dir, "kernel"),
			// /proc/self, for the probe of its status.
			Sandbox: &Sandbox{Read: []string{"/proc/self"}, Applied: func(r sandbox.Report) { applied <- r }}},
		arch: &x86Guest{}, vcpus: []*kvm.VCPU{g.CPU}, warn: devices.NewRateLimited(nil, 0),
		tids: make([]atomic.Int32, 1), dumpTo: make([]atomic.Pointer[io.Writer], 1),
	}
	ran := make(chan error, 1)
	go func() { ran <- vm.Run(context.Background()) }()
	select {
	case r := <-applied:
		probe("landlock", r.LandlockABI)
		probe("report", r)
	case err := <-ran:
		t.Fatalf("Run() = %v before the sandbox went up", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("the sandbox did not go up within 10s")
	}
	st, err := sandbox.Status(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	probe("Seccomp", st["Seccomp"])
	probe("NoNewPrivs", st["NoNewPrivs"])
	exits := func() uint64 {
		out := make(lines, 1)
		vm.DumpState(out)
		select {
		case l := <-out:
			m := regexp.MustCompile(`exits=(\d+)`).FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("DumpState wrote %q", l)
			}
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer to DumpState within 10s")
		}
		return 0
	}
	before := exits()
	probe("execve", errName(syscall.Exec("/bin/true", []string{"true"}, nil)))
	_, err = os.ReadFile(filepath.Join(dir, "secret"))
	probe("open-secret", errName(err))
	_, err = os.ReadFile(filepath.Join(dir, "kernel"))
	probe("open-kernel", errName(err))
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	probe("tcp-socket", errName(err))
	// The loop writes a port without end: thousands of exits in 50 ms on
	// a machine's own KVM, a few hundred a second in an emulated host.
	// Each look is one exit of its own (DumpState kicks the vCPU), which
	// the guest's must outnumber.
	after, looks := exits(), uint64(1)
	for deadline := time.Now().Add(5 * time.Second); after <= before+100+looks && time.Now().Before(deadline); looks++ {
		time.Sleep(50 * time.Millisecond)
		after = exits()
	}
	if after > before+100+looks {
		probe("guest-ran-on", "yes")
	} else {
		probe("guest-ran-on", fmt.Sprintf("no: exits %d then %d", before, after))
	}
	vm.Stop(ExitStopped, "test over")
	select {
	case err := <-ran:
		var ee *ExitErr
		if errors.As(err, &ee) && ee.Exit == ExitStopped {
			probe("run", "stopped")
		} else {
			probe("run", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the guest did not stop")
	}
}

// TestSandboxCallsNamed checks that every system call of the running
// VMM's filter has a number on each host architecture Tandem sandboxes
// (the filter is assembled from names when the sandbox goes up: a name
// unknown there would end every guest at start), and that the filter
// assembles on this host.
func TestSandboxCallsNamed(t *testing.T) {
	tables := map[string]*seccomparch.Info{"amd64": seccomparch.X86_64, "arm64": seccomparch.AARCH64}
	for goarch, table := range tables {
		t.Run(goarch, func(t *testing.T) {
			calls := runningCalls(goarch)
			if len(calls) == 0 {
				t.Fatalf("runningCalls(%s) is empty", goarch)
			}
			for _, r := range calls {
				if _, ok := table.SyscallNames[r.Syscall]; !ok {
					t.Errorf("%s: no system call %q in the filter's %s table", goarch, r.Syscall, table.Name)
				}
			}
		})
	}
	if calls := runningCalls("arm"); calls != nil {
		t.Errorf("runningCalls(arm) = %d calls, want none: never measured", len(calls))
	}
	if _, err := sandbox.Filter(runningCalls(runtime.GOARCH)); err != nil && measured[runtime.GOARCH] {
		t.Errorf("the filter of this host (%s): %v", runtime.GOARCH, err)
	}
}

// TestBuildLimits: a sandboxed VMM's address space is its guest's RAM,
// the pages of its passed registers and its own budget, and it dumps no
// core, from the start of Build.
func TestBuildLimits(t *testing.T) {
	page := uint64(os.Getpagesize())
	tests := []struct {
		name   string
		cfg    Config
		passed uint64
		want   uint64
	}{
		{"guest RAM", Config{Memory: 256 << 20}, 0, 256<<20 + vmmAddressSpace},
		{"a passed device before it is mapped", Config{Memory: 128 << 20, Passthrough: []PassDevice{{MMIO: []PassRange{{Size: 0x1000}}}}}, 0, 128<<20 + 0x1000 + 2*page + vmmAddressSpace},
		{"mapped registers, more than the estimate", Config{Memory: 128 << 20}, 1 << 20, 128<<20 + 1<<20 + vmmAddressSpace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := buildLimits(tt.cfg, tt.passed)
			got := map[int]uint64{}
			for _, l := range ls {
				got[l.Resource] = l.Value
			}
			if got[unix.RLIMIT_AS] != tt.want || len(ls) != 2 {
				t.Errorf("buildLimits() address space = %d, want %d", got[unix.RLIMIT_AS], tt.want)
			}
			if v, ok := got[unix.RLIMIT_CORE]; !ok || v != 0 {
				t.Errorf("buildLimits() core dumps = %d (set %v), want 0", v, ok)
			}
		})
	}
}
