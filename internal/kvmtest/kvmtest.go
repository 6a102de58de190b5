// Package kvmtest runs a test that needs /dev/kvm where there is one: on
// this machine when it has a usable /dev/kvm, and otherwise inside an
// emulated host of this machine's architecture (internal/qemuhost), whose
// nested KVM gives it one. There the package's own test binary, built
// static, runs just that test; its output comes back to the test's log
// and its result becomes the test's own. So in CI a KVM test never skips
// for want of /dev/kvm, and the run's report (testenv.Record) says where
// each one ran.
//
// A test starts with
//
//	if !kvmtest.Here(t) {
//		return // it ran, and was judged, in the emulated host
//	}
package kvmtest

import (
	"context"
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// WhereEnv chooses where KVM tests run: "host" runs them in the emulated
// host even on a machine with /dev/kvm (so that the path of a machine
// without one is exercised on one with it), "here" always on this
// machine. Unset, they run here when /dev/kvm can be opened.
const WhereEnv = "TANDEM_KVM_TESTS"

// inHostEnv is set for the test binary inside the emulated host.
const inHostEnv = "TANDEM_IN_EMULATED_HOST"

// Limits of one test's run in the emulated host.
const (
	hostMemory  = "1G"
	hostTimeout = 10 * time.Minute
	// hostSilence: the test binary runs with -test.v inside, and these
	// tests take seconds; two minutes of silence is a frozen host.
	hostSilence = 2 * time.Minute
)

// Where is "this machine" or the emulated host a test runs in.
const thisMachine = "this machine"

// Here reports whether the calling test goes on in this process. It is
// true where this machine's /dev/kvm can be opened (or inside the
// emulated host). Otherwise Here runs the test in an emulated host,
// reports its result on t and returns false: the caller returns at once.
// With -short, where that would take minutes, the test is skipped.
func Here(t *testing.T) bool {
	t.Helper()
	return HereWith(t, nil)
}

// carriedDir is where files carried into the emulated host are.
const carriedDir = "/kvmtest"

// InEmulatedHost reports whether this is the test binary running inside
// the emulated host, where files a test builds on this machine (with
// tools the host lacks) come carried (HereWith).
func InEmulatedHost() bool { return os.Getenv(inHostEnv) != "" }

// HereWith is Here for a test that needs files it made on this machine:
// files maps a name to a path, and when the test goes to the emulated
// host the files go with it. There Carried gives their paths.
func HereWith(t *testing.T, files map[string]string) bool {
	t.Helper()
	inHost := InEmulatedHost()
	where := os.Getenv(WhereEnv)
	switch {
	case where != "" && where != "here" && where != "host":
		t.Fatalf("%s=%q: want host, here or nothing", WhereEnv, where)
	case inHost || where == "here" || (where == "" && testenv.KVMUsable() == nil):
		testenv.RequireKVM(t)
		if !inHost {
			start := time.Now()
			t.Cleanup(func() {
				testenv.Record(testenv.Event{Kind: "kvm", Test: t.Name(), Where: thisMachine, Outcome: result(t),
					Seconds: time.Since(start).Seconds()})
			})
		}
		return true
	}
	arch := qemuhost.NativeArch()
	if testing.Short() {
		t.Skipf("skipping: this machine has no /dev/kvm, and running the test in an emulated %s host takes minutes (-short)", arch)
	}
	qemuhost.RequireArch(t, arch)
	start := time.Now()
	covered, ok, detail := false, false, ""
	if files == nil {
		covered, ok, detail = runShared(t, arch)
	}
	if !covered {
		ok, detail = runInHost(t, arch, files)
	}
	outcome := "pass"
	if !ok {
		outcome = "fail"
	}
	testenv.Record(testenv.Event{Kind: "kvm", Test: t.Name(), Where: "emulated " + arch + " host", Outcome: outcome,
		Seconds: time.Since(start).Seconds(), Detail: detail})
	return false
}

// Carried is the path of a file HereWith carried as name: in the
// emulated host, where it was put; on this machine, path itself.
func Carried(name, path string) string {
	if InEmulatedHost() {
		return carriedDir + "/" + name
	}
	return path
}

// result is how t ended, for the report.
func result(t *testing.T) string {
	switch {
	case t.Failed():
		return "fail"
	case t.Skipped():
		return "skip"
	}
	return "pass"
}

// runInHost runs t's test in an emulated host and reports on t. It
// returns whether the test passed there and, if not, why in a line.
func runInHost(t *testing.T, arch string, files map[string]string) (bool, string) {
	bin, err := staticTestBinary(t)
	if err != nil {
		t.Fatalf("the test binary for the emulated %s host: %v", arch, err)
	}
	carry := map[string]string{}
	for name, path := range files {
		carry[carriedDir+"/"+name] = path
	}
	t.Logf("no /dev/kvm here (or %s=host): running %s in an emulated %s host", WhereEnv, t.Name(), arch)
	res, err := runBinary(arch, bin, carry, RunPattern(t.Name()), hostLog(t))
	if err != nil {
		t.Errorf("running %s in the emulated %s host: %v", t.Name(), arch, err)
		head, _, _ := strings.Cut(err.Error(), "\n")
		return false, head
	}
	if why := judge(res.Output, t.Name(), res.ExitStatus); why != "" {
		t.Errorf("in the emulated %s host: %s", arch, why)
		return false, why
	}
	t.Logf("%s passed in the emulated %s host (KVM from %s; %d boot(s), host booted in %v, whole run %v)",
		t.Name(), arch, res.KVM, res.Attempts, res.Boot.Round(time.Millisecond), res.Total.Round(time.Millisecond))
	return true, ""
}

// runBinary runs the test binary bin in an emulated arch host, with the
// files carry maps (host path to this machine's), the tests -test.run
// pattern selects, and its console to log.
func runBinary(arch, bin string, carry map[string]string, pattern string, log *qemuhost.Lines) (*qemuhost.Result, error) {
	files := map[string]string{"/bin/kvmtest.test": bin}
	maps.Copy(files, carry)
	script := fmt.Sprintf("cd /\n%s=1 CI=%s /bin/kvmtest.test -test.run %s -test.v -test.count=1 -test.timeout=%s\n",
		inHostEnv, shellQuote(os.Getenv("CI")), shellQuote(pattern), hostTimeout)
	defer log.Flush()
	return qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    arch,
		Files:   files,
		Script:  script,
		Memory:  hostMemory,
		Console: log,
		Timeout: hostTimeout,
		Silence: hostSilence,
	})
}

// judge says why the test named name did not pass, from the console of
// its run and the test binary's exit status; "" when it passed. A run
// that matched no test, or where the test skipped, did not pass.
func judge(out, name string, status int) string {
	switch {
	case strings.Contains(out, "--- FAIL: "+name+" "):
		return fmt.Sprintf("%s failed (exit status %d)", name, status)
	case strings.Contains(out, "--- SKIP: "+name+" "):
		return fmt.Sprintf("%s skipped, where it must run", name)
	case !strings.Contains(out, "--- PASS: "+name+" "):
		return fmt.Sprintf("%s did not report a result (exit status %d): the test binary did not run it", name, status)
	case status != 0:
		return fmt.Sprintf("%s passed, but the test binary exited with status %d", name, status)
	}
	return ""
}

// RunPattern is the -test.run pattern that selects exactly the test (or
// subtest) named name, as testing.T.Name gives it.
func RunPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// staticTestBinary returns this test binary where it is statically
// linked (the emulated host has no C library), or else the package's test
// binary built again without cgo, into the test's temporary directory
// (the build cache makes that a link).
func staticTestBinary(t *testing.T) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", err
	}
	if static, err := isStatic(self); err == nil && static {
		return self, nil
	}
	bin := filepath.Join(t.TempDir(), filepath.Base(self))
	// go test puts its own GOROOT/bin first on PATH: this is the
	// toolchain that runs the test.
	cmd := exec.Command("go", "test", "-c", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go test -c (CGO_ENABLED=0): %v\n%s", err, b)
	}
	return bin, nil
}

// isStatic reports whether the ELF file has no program interpreter.
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}

// hostLog passes the test binary's lines from the emulated host's console
// to the test's log: those after the host's KVM marker, without the
// host's own markers, and the harness's retries.
func hostLog(t *testing.T) *qemuhost.Lines {
	started := false
	return qemuhost.NewLines(func(s string) {
		switch {
		case strings.HasPrefix(s, "qemuhost: "): // a retry
			t.Log(s)
		case strings.Contains(s, "TANDEM-HOST kvm="):
			started = true
		case strings.Contains(s, "TANDEM-HOST exit="):
			started = false
		case started && s != "" && !strings.Contains(s, "TANDEM-HOST "):
			t.Log("host| " + s)
		}
	})
}
