// Package testenv decides whether tests that need /dev/kvm or QEMU run.
// Where a machine lacks them the tests skip, saying why; in CI (CI=true),
// where both are required, a missing one fails the test instead, so a
// green run always means the KVM and QEMU tests ran.
package testenv

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// InCI reports whether the tests run under CI, where nothing may skip for
// want of KVM or QEMU.
func InCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips the test with the reason, or fails it in CI.
func skipOrFail(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI requires this test to run: "+format, args...)
	}
	tb.Skipf("skipping: "+format, args...)
}

// KVMUsable says why /dev/kvm cannot be opened read-write, or nil when
// it can.
func KVMUsable() error {
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// RequireKVM skips (or in CI fails) the test when /dev/kvm cannot be
// opened read-write.
func RequireKVM(tb testing.TB) {
	tb.Helper()
	if err := KVMUsable(); err != nil {
		skipOrFail(tb, "/dev/kvm unavailable: %v", err)
	}
}

// RequireCommand skips (or in CI fails) the test when a program is not on
// PATH, naming the Debian package that provides it. It returns its path.
func RequireCommand(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		skipOrFail(tb, "%s not found (install Debian's %s, or run `make deps`)", name, debianPackage)
	}
	return p
}

// RequireFile skips (or in CI fails) the test when a test-data file is
// missing, naming the step that makes it.
func RequireFile(tb testing.TB, path, how string) {
	tb.Helper()
	if _, err := os.Stat(path); err != nil {
		skipOrFail(tb, "%s missing (%s)", path, how)
	}
}

// ReportEnv names the file a test run's report goes to (make test sets
// it): one JSON object a line, appended by every test binary of the run,
// which internal/cmd/testreport sums up at the end. Unset, nothing is
// recorded.
const ReportEnv = "TANDEM_TEST_REPORT"

// Event is one line of the run's report.
type Event struct {
	// Kind is "host" for one boot of an emulated host, "kvm" for where a
	// test that needs /dev/kvm ran, "guest-kernel" for one cell of the
	// end-to-end tests' guest kernel matrix.
	Kind string `json:"kind"`
	// Package is the test binary's package directory, relative to the
	// module root where it can be found.
	Package string `json:"package,omitempty"`
	// Test is the test's name (kind "kvm").
	Test string `json:"test,omitempty"`
	// Where a test ran: "this machine" or "emulated x86_64 host" (kind
	// "kvm").
	Where string `json:"where,omitempty"`
	// Arch and QEMU describe an emulated host (kind "host").
	Arch string `json:"arch,omitempty"`
	QEMU string `json:"qemu,omitempty"`
	// Row and Kernel place a cell of the guest kernel matrix (kind
	// "guest-kernel"): the guest's architecture, host and userland
	// ("arm64/GICv2 testinit"), and the guest's Linux version ("6.12").
	Row    string `json:"row,omitempty"`
	Kernel string `json:"kernel,omitempty"`
	// Outcome is "ok", "panic", "hang", "reset", "timeout" or "error" for a host
	// boot; "pass" or "fail" for a test ("skip" too for a matrix cell).
	Outcome string `json:"outcome"`
	// Retried says the host boot was followed by another attempt.
	Retried bool `json:"retried,omitempty"`
	// BootSeconds is the time from starting QEMU to the host's first
	// marker; 0 when it never came.
	BootSeconds float64 `json:"boot_seconds,omitempty"`
	// Seconds is the whole host run or test.
	Seconds float64 `json:"seconds,omitempty"`
	// Detail is the first line of an error.
	Detail string `json:"detail,omitempty"`
}

// Record appends ev to the run's report, if there is one. A report that
// cannot be written is said on stderr; it never fails a test.
func Record(ev Event) {
	name := os.Getenv(ReportEnv)
	if name == "" {
		return
	}
	if ev.Package == "" {
		ev.Package = packageDir()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: report: %v\n", err)
		return
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: report: %v\n", err)
		return
	}
	defer f.Close()
	// One write of a short line: lines of test binaries running at the
	// same time do not interleave (O_APPEND).
	if _, err := f.Write(append(b, '\n')); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: report: %v\n", err)
	}
}

// packageDir is the working directory (a test's package directory)
// relative to the module root, or as it is where none is found.
func packageDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if rel, err := filepath.Rel(dir, wd); err == nil {
				return filepath.ToSlash(rel)
			}
			return wd
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return wd
		}
		dir = parent
	}
}

// CrashedOnPurpose labels the emulated hosts a test crashes, freezes or
// runs out of time on purpose (qemuhost.Options.Label): the run's report counts them apart.
const CrashedOnPurpose = "crashed on purpose"

// ShortEvery is how sparsely Sampled keeps a corpus under -short.
const ShortEvery = 10

// Sampled reports whether the i-th item (from 0) of a corpus a test
// walks is checked: all of them normally, one in ShortEvery under
// -short (make test's race pass, where every check costs several times
// as much and the full corpus has been checked in the pass before).
func Sampled(i int) bool {
	return !testing.Short() || i%ShortEvery == 0
}
