package vmm

import (
	"runtime"
	"testing"
)

// TestReserveProc: while vCPU threads run, GOMAXPROCS is the device
// goroutines' Ps plus one per running vCPU, in every VM together; it is
// not lowered while any vCPU runs, and returns to where the process
// started once none does.
func TestReserveProc(t *testing.T) {
	start := runtime.GOMAXPROCS(0)
	if start != baseProcs {
		t.Skipf("skipping: GOMAXPROCS is %d, changed since start (%d) by another test", start, baseProcs)
	}
	var releases []func()
	for n := 1; n <= 3; n++ {
		releases = append(releases, reserveProc())
		if got := runtime.GOMAXPROCS(0); got != deviceProcs+n {
			t.Errorf("GOMAXPROCS with %d vCPUs = %d, want %d", n, got, deviceProcs+n)
		}
	}
	releases[0]()
	if got := runtime.GOMAXPROCS(0); got != deviceProcs+3 {
		t.Errorf("GOMAXPROCS after one of three vCPUs stopped = %d, want %d (never lowered while vCPUs run)", got, deviceProcs+3)
	}
	for _, r := range releases[1:] {
		r()
	}
	if got := runtime.GOMAXPROCS(0); got != start {
		t.Errorf("GOMAXPROCS after every vCPU stopped = %d, want %d", got, start)
	}
}

// TestDeviceProcsFrom: the device goroutines share one P unless
// GOMAXPROCS in the environment says how many.
func TestDeviceProcsFrom(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		base int
		want int
	}{
		{"unset: one, as a C VMM's main loop", "", 8, 1},
		{"unset on one core", "", 1, 1},
		{"set: the runtime's reading of it", "4", 4, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := deviceProcsFrom(tc.env, tc.base); got != tc.want {
				t.Errorf("deviceProcsFrom(%q, %d) = %d, want %d", tc.env, tc.base, got, tc.want)
			}
		})
	}
}
