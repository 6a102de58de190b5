package system

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestThreads reads this test's own threads, as tandem threads reads a
// VMM's: one thread locked to core 0 under SCHED_OTHER shows as such, and
// the table has a row per thread under its header.
func TestThreads(t *testing.T) {
	done, ready := make(chan struct{}), make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		set.Set(0)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Error(err)
		}
		ready <- unix.Gettid()
		<-done
	}()
	tid := <-ready
	defer close(done)
	ts, err := Threads(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	var got *Thread
	for i := range ts {
		if ts[i].TID == tid {
			got = &ts[i]
		}
	}
	if got == nil {
		t.Fatalf("Threads() = %+v, want thread %d among them", ts, tid)
	}
	if got.Policy != "other" || got.RTPriority != 0 || got.CPUs != "0" {
		t.Errorf("thread %d = %+v, want policy other, priority 0, cores 0", tid, *got)
	}
	table := FormatThreads(ts)
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != len(ts)+1 || !strings.HasPrefix(lines[0], "TID") {
		t.Errorf("FormatThreads() = %q, want a header and %d rows", table, len(ts))
	}
	if _, err := Threads(1 << 30); err == nil {
		t.Errorf("Threads(no such pid) = nil error")
	}
}
