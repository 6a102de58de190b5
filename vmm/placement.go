package vmm

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// placeThread pins the calling thread (a vCPU's, locked to it) to cpus
// and, when priority is above 0, runs it under SCHED_FIFO: a control
// guest's vCPU then owns its dedicated core and is not preempted by
// best-effort work. An empty cpus and 0 leave the thread as it is.
//
// Only this thread moves. Threads the Go runtime starts later do not
// inherit its mask: the runtime never clones a thread from one locked
// with LockOSThread, it asks its template thread, started before the
// first lock, to do it.
func placeThread(cpus []int, priority int) error {
	if len(cpus) > 0 {
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pinning to host cores %v: %w", cpus, err)
		}
	}
	if priority > 0 {
		attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(priority)}
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			return fmt.Errorf("SCHED_FIFO priority %d (needs CAP_SYS_NICE or an RLIMIT_RTPRIO): %w", priority, err)
		}
	}
	return nil
}

// reserveProcs gives each of n vCPU threads moved off the process's own
// cores a Go scheduler P of its own. The runtime sizes GOMAXPROCS from the
// cores the process started on (the housekeeping cores, under the
// supervisor); a vCPU thread coming back from KVM_RUN needs a P before it
// can handle the exit, and when every P is held by a device goroutine,
// the vCPU waits until that goroutine's thread gets to run on a
// housekeeping core, behind whatever else runs there: a real-time vCPU
// on a dedicated core would be held up by the other guests' load. With n
// more Ps than the process's cores, a P is always free for a vCPU thread
// (and the device goroutines still cannot use more cores than they have).
// It only ever raises GOMAXPROCS, so building VMs one after another in a
// process does not add up.
func reserveProcs(n int) {
	if want := runtime.NumCPU() + n; runtime.GOMAXPROCS(0) < want {
		runtime.GOMAXPROCS(want)
	}
}
