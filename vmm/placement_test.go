package vmm

import (
	"runtime"
	"testing"
)

// TestReserveProc: each running vCPU thread adds a P beyond those the
// process started with, in every VM together, and GOMAXPROCS returns to
// where it started once no vCPU runs.
func TestReserveProc(t *testing.T) {
	start := runtime.GOMAXPROCS(0)
	if start != baseProcs {
		t.Skipf("skipping: GOMAXPROCS is %d, changed since start (%d) by another test", start, baseProcs)
	}
	var releases []func()
	for n := 1; n <= 3; n++ {
		releases = append(releases, reserveProc())
		if got := runtime.GOMAXPROCS(0); got != baseProcs+n {
			t.Errorf("GOMAXPROCS with %d vCPUs = %d, want %d", n, got, baseProcs+n)
		}
	}
	releases[0]()
	if got := runtime.GOMAXPROCS(0); got != baseProcs+3 {
		t.Errorf("GOMAXPROCS after one of three vCPUs stopped = %d, want %d (never lowered while vCPUs run)", got, baseProcs+3)
	}
	for _, r := range releases[1:] {
		r()
	}
	if got := runtime.GOMAXPROCS(0); got != start {
		t.Errorf("GOMAXPROCS after every vCPU stopped = %d, want %d", got, start)
	}
}
