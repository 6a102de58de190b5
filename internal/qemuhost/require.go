package qemuhost

import (
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// Require skips the test, saying why, when an emulated x86_64 host cannot
// run here (no QEMU, no test data); in CI it fails instead (testenv).
func Require(tb testing.TB) { RequireArch(tb, "x86_64") }

// RequireArch is Require for another host architecture.
func RequireArch(tb testing.TB, arch string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("skipping: booting an emulated host takes minutes (-short)")
	}
	if err := Check(arch); err != nil {
		if testenv.InCI() {
			tb.Fatalf("CI requires this test to run: emulated %s host unavailable: %v", arch, err)
		}
		tb.Skipf("skipping: emulated %s host unavailable: %v", arch, err)
	}
}
