package vmm

import (
	"fmt"
	"os"
	"runtime"
	"sync"

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

// runningVCPUs counts the vCPU threads of every VM in this process that
// are in their run loop; procsMu serialises changes of GOMAXPROCS made for
// them.
var (
	procsMu      sync.Mutex
	runningVCPUs int
	baseProcs    = runtime.GOMAXPROCS(0)
	deviceProcs  = deviceProcsFrom(os.Getenv("GOMAXPROCS"), baseProcs)
)

// deviceProcsFrom is how many Ps the process's goroutines other than
// running vCPUs (device work, the console, the supervisor's channel)
// share: one, as a C VMM's main loop is one thread, unless GOMAXPROCS is
// set in the environment, which then gives their number (base, the
// runtime's reading of it).
//
// Why one: on the arm64 board (2 cores, a 2-vCPU guest) a second device P
// let the runtime keep another thread spinning for work beside the
// guest's vCPUs whenever a queue's eventfd or the TAP woke a goroutine;
// with one, virtio-net's guest→host TCP throughput went from 0.77-0.84×
// QEMU's to 0.89-0.98× in three runs and the virtio-blk rows stayed above
// QEMU's (docs/bench-notes.md).
func deviceProcsFrom(env string, base int) int {
	if env != "" {
		return base
	}
	return 1
}

// reserveProc gives the calling vCPU thread a Go scheduler P of its own,
// and returns the function that gives it back. A vCPU thread holds its P
// for as long as its guest runs (kvm.VCPU.Run is a raw system call, so
// that the thread never waits for the scheduler to hand a P back when an
// exit comes), so the process needs one P per running vCPU beyond those
// its other goroutines (device work, the console, the supervisor's
// channel) run on: without them, vCPUs idle in the guest would hold every
// P, and the device goroutine that would wake them could never run.
// While vCPUs run, GOMAXPROCS is the device goroutines' Ps (deviceProcs)
// plus the vCPUs running now, in every VM of the process together; it is
// never lowered while any vCPU runs (a vCPU that stops leaves its P), and
// returns to where the process started once none does.
//
// It also serves pinned vCPUs: the runtime sizes GOMAXPROCS from the
// cores the process started on (the housekeeping cores, under the
// supervisor), and a vCPU moved to a dedicated core then holds a P that
// no longer stands for a core of the process's own.
func reserveProc() (release func()) {
	procsMu.Lock()
	runningVCPUs++
	want := deviceProcs + runningVCPUs
	if cur := runtime.GOMAXPROCS(0); cur < want || runningVCPUs == 1 && cur != want {
		runtime.GOMAXPROCS(want)
	}
	procsMu.Unlock()
	return func() {
		procsMu.Lock()
		runningVCPUs--
		if runningVCPUs == 0 && runtime.GOMAXPROCS(0) != baseProcs {
			runtime.GOMAXPROCS(baseProcs)
		}
		procsMu.Unlock()
	}
}
