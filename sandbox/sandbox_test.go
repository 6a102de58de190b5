package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// childEnv names the probe a run of this test binary is, as a child of
// TestApply: it applies a policy to itself and reports what it can still
// do, one "PROBE name=result" line each.
const childEnv = "TANDEM_SANDBOX_PROBE_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(probe(dir))
	}
	os.Exit(m.Run())
}

// probePolicy is the child's: the Go runtime, what the probes
// themselves call (reading files, sockets, one ioctl request), one file
// to read and one to write, and limits.
func probePolicy(dir string) Policy {
	return Policy{
		Syscalls: append(GoRuntime(),
			Rule{Syscall: "openat"}, Rule{Syscall: "newfstatat"}, Rule{Syscall: "fstat"},
			Rule{Syscall: "socket", Arg: 0, Values: []uint64{unix.AF_UNIX}},
			Rule{Syscall: "ioctl", Arg: 1, Values: []uint64{unix.TIOCGWINSZ}},
		),
		Paths: []Path{
			{Path: filepath.Join(dir, "readable")},
			{Path: filepath.Join(dir, "writable"), Write: true},
			{Path: "/proc/self"},
		},
		Limits: []Limit{{Resource: unix.RLIMIT_NOFILE, Name: "open files", Value: 64}, {Resource: unix.RLIMIT_CORE, Name: "core dumps", Value: 0}},
	}
}

// noSeccompEnv makes the child apply its policy without a system-call
// list, as on a host architecture never measured.
const noSeccompEnv = "TANDEM_SANDBOX_PROBE_NO_SECCOMP"

// probe is the child: it sandboxes itself, then tries each thing.
func probe(dir string) int {
	pol := probePolicy(dir)
	if os.Getenv(noSeccompEnv) != "" {
		pol.Syscalls = nil
		r, err := Apply(pol)
		fmt.Printf("PROBE apply=%v\nPROBE missing=%q\n", err, r.Missing)
		st, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(st), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && (k == "Seccomp" || k == "NoNewPrivs") {
				fmt.Printf("PROBE %s=%s\n", k, strings.TrimSpace(v))
			}
		}
		return 0
	}
	r, err := Apply(pol)
	if err != nil {
		fmt.Printf("PROBE apply=%v\n", err)
		return 1
	}
	say := func(name string, err error) {
		s := "ok"
		if err != nil {
			s = err.Error()
			var en syscall.Errno
			if errors.As(err, &en) {
				s = unix.ErrnoName(en)
			}
		}
		fmt.Printf("PROBE %s=%s\n", name, s)
	}
	fmt.Printf("PROBE landlock=%d\n", r.LandlockABI)
	st, err := os.ReadFile("/proc/self/status")
	say("read-status", err)
	for _, l := range strings.Split(string(st), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && (k == "Seccomp" || k == "NoNewPrivs" || k == "CapEff") {
			fmt.Printf("PROBE %s=%s\n", k, strings.TrimSpace(v))
		}
	}
	say("exec", syscall.Exec("/bin/true", []string{"true"}, nil))
	_, err = syscall.ForkExec("/bin/true", []string{"true"}, nil)
	say("fork", err)
	_, _, e := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
	say("getppid", errnoErr(e))
	// Threads still start: each goroutine locked to a thread of its own
	// makes the runtime clone one.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			unix.Gettid()
		}()
	}
	wg.Wait()
	say("threads", nil)
	p := make([]int, 2)
	say("pipe", unix.Pipe2(p, unix.O_CLOEXEC))
	// An allowed ioctl request reaches the kernel (a pipe is no
	// terminal); another is refused.
	_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(p[0]), unix.TIOCGWINSZ, 0)
	say("ioctl-allowed", errnoErr(e))
	_, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(p[0]), unix.TCGETS, 0)
	say("ioctl-other", errnoErr(e))
	_, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	say("socket-unix", err)
	_, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	say("socket-inet", err)
	_, err = unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	say("mmap-exec", err)
	_, err = unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	say("mmap", err)
	_, err = os.ReadFile(filepath.Join(dir, "readable"))
	say("read-allowed", err)
	say("write-readonly", os.WriteFile(filepath.Join(dir, "readable"), []byte("x"), 0))
	say("write-allowed", os.WriteFile(filepath.Join(dir, "writable"), []byte("x"), 0))
	_, err = os.ReadFile(filepath.Join(dir, "other"))
	say("read-other", err)
	// getrlimit is not in the filter: the limits as /proc shows them.
	lim, err := os.ReadFile("/proc/self/limits")
	say("read-limits", err)
	for _, l := range strings.Split(string(lim), "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "Max open files")); len(f) == 3 && f[2] == "files" {
			fmt.Printf("PROBE nofile=%s/%s\n", f[0], f[1])
		}
	}
	return 0
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// TestApply sandboxes a child process with a policy and checks what it
// can still do: the filter allows what it lists (an ioctl only with the
// listed request, sockets only AF_UNIX, threads but no processes, no
// executable memory) and refuses the rest with EPERM; Landlock keeps it
// to its files; the limits hold; no_new_privs is set.
func TestApply(t *testing.T) {
	if !Supported() {
		t.Skip("skipping: the kernel has no seccomp filters")
	}
	dir := t.TempDir()
	for _, f := range []string{"readable", "writable", "other"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	got := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(l, "PROBE "), "="); ok && strings.HasPrefix(l, "PROBE ") {
			got[k] = v
		}
	}
	if err != nil {
		t.Fatalf("the sandboxed child failed: %v\n%s", err, out)
	}
	want := map[string]string{
		"read-status": "ok", "Seccomp": "2", "NoNewPrivs": "1",
		"exec": "EPERM", "fork": "EPERM", "getppid": "EPERM",
		"threads": "ok", "pipe": "ok",
		"ioctl-allowed": "ENOTTY", "ioctl-other": "EPERM",
		"socket-unix": "ok", "socket-inet": "EPERM",
		"mmap-exec": "EPERM", "mmap": "ok",
		"read-limits": "ok", "nofile": "64/64",
	}
	if os.Geteuid() == 0 {
		want["CapEff"] = "0000000000000000"
	}
	landlock := got["landlock"] != "0"
	if landlock {
		want["read-allowed"], want["write-allowed"] = "ok", "ok"
		want["write-readonly"], want["read-other"] = "EACCES", "EACCES"
	} else {
		t.Logf("this kernel has no Landlock: the file probes are not judged")
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("sandboxed child: %s = %q, want %q", k, got[k], w)
		}
	}
	if t.Failed() {
		t.Logf("child output:\n%s", out)
	}
}

// TestFilter assembles filters from rules: rules of several thread kinds
// naming one call merge (any arguments win; values add up), and rules
// the filter cannot hold are refused with the call's name.
func TestFilter(t *testing.T) {
	merged := merge([]Rule{
		{Syscall: "ioctl", Arg: 1, Values: []uint64{1}},
		{Syscall: "ioctl", Arg: 1, Values: []uint64{2, 1}},
		{Syscall: "read"},
		{Syscall: "write", Arg: 0, Values: []uint64{2}},
		{Syscall: "write"},
	})
	var got []string
	for _, r := range merged {
		got = append(got, fmt.Sprintf("%s%v", r.Syscall, r.Values))
	}
	if strings.Join(got, " ") != "ioctl[1 2] read[] write[]" {
		t.Errorf("merge() = %s, want ioctl with values 1 and 2, read and write with any arguments", got)
	}
	bad := []struct {
		name string
		rule Rule
		want string
	}{
		{"argument out of range", Rule{Syscall: "ioctl", Arg: 6, Values: []uint64{1}}, "ioctl: argument 6: want 0 to 5"},
		{"two bits to set", Rule{Syscall: "clone", Set: 3}, "clone: Set 0x3: want a single bit"},
		{"an errno with conditions", Rule{Syscall: "clone3", Errno: unix.ENOSYS, Values: []uint64{1}}, "clone3: an errno answer takes no argument conditions"},
		{"no such call", Rule{Syscall: "no_such_call"}, "no_such_call"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Filter([]Rule{tt.rule}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Filter(%+v) = %v, want an error containing %q", tt.rule, err, tt.want)
			}
		})
	}
	if _, err := Filter(GoRuntime()); err != nil {
		t.Errorf("Filter(GoRuntime()) = %v", err)
	}
}

// TestApplyWithoutSeccomp: where no system-call list exists the rest of
// the sandbox goes up, no_new_privs included, and the report says what
// is missing.
func TestApplyWithoutSeccomp(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"readable", "writable"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir, noSeccompEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the child failed: %v\n%s", err, out)
	}
	for _, want := range []string{"PROBE apply=<nil>", "PROBE Seccomp=0", "PROBE NoNewPrivs=1", "seccomp (no system-call list for this host architecture)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}
