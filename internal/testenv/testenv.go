// Package testenv decides whether tests that need /dev/kvm or QEMU run.
// Where a machine lacks them the tests skip, saying why; in CI (CI=true),
// where both are required, a missing one fails the test instead, so a
// green run always means the KVM and QEMU tests ran.
package testenv

import (
	"os"
	"os/exec"
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

// RequireKVM skips (or in CI fails) the test when /dev/kvm cannot be
// opened read-write.
func RequireKVM(tb testing.TB) {
	tb.Helper()
	fd, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		skipOrFail(tb, "/dev/kvm unavailable: %v", err)
		return
	}
	unix.Close(fd)
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
