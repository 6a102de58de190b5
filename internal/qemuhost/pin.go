package qemuhost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pinVCPUs gives each of QEMU's vCPU threads ("CPU n/TCG", named because
// QEMU runs with debug-threads=on) a machine CPU of its own, n modulo the
// CPUs there are. Unpinned, two busy emulated CPUs can share one real CPU
// while the other idles: the emulated cores would interfere in a way real
// cores do not. QEMU's other threads (the main loop, which runs the
// emulated timers) stay free to go where there is room: in the
// mixed-criticality bench, keeping them on machine CPU 0 beside emulated
// CPU 0 made the control loop's p99 worse (3.8-4.9× stressed against
// alone, against 2.1-2.6× free), nice -20 on the main loop did not help,
// and SCHED_FIFO on it kept the emulated host from ever reporting when
// set at QEMU's start. Set once the host had booted, it cut the control
// loop's misses under stress by about a third, but the host's kernel then
// panicked in 6 of 9 boots (about 1 in 8 without).
//
// What works is the other way round: yield lists emulated CPUs whose
// threads run under SCHED_IDLE. A thread of any other policy that wakes
// preempts them at once, and the scheduler counts a CPU running only
// them as idle, so the main loop runs there, at once, instead of waiting
// behind a busy vCPU thread or taking the control CPU's machine CPU.
//
// It polls until every vCPU thread is pinned or ctx ends, and returns
// how many it pinned.
func pinVCPUs(ctx context.Context, pid, vcpus int, yield []int) (int, error) {
	ncpu := runtime.NumCPU()
	pinned := map[int]bool{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(pinned) < vcpus {
		tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return len(pinned), err
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || pinned[tid] {
				continue
			}
			comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "comm"))
			if err != nil {
				continue
			}
			name := strings.TrimSpace(string(comm))
			n, ok := vcpuIndex(name)
			if !ok {
				continue
			}
			var set unix.CPUSet
			set.Set(n % ncpu)
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				return len(pinned), fmt.Errorf("pinning %s (thread %d): %w", name, tid, err)
			}
			if slices.Contains(yield, n) {
				attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
				if err := unix.SchedSetAttr(tid, attr, 0); err != nil {
					return len(pinned), fmt.Errorf("SCHED_IDLE for %s (thread %d): %w", name, tid, err)
				}
			}
			pinned[tid] = true
		}
		select {
		case <-ctx.Done():
			return len(pinned), ctx.Err()
		case <-tick.C:
		}
	}
	return len(pinned), nil
}

// vcpuIndex parses QEMU's vCPU thread name, "CPU 1/TCG" or "CPU 1/KVM".
func vcpuIndex(comm string) (int, bool) {
	rest, ok := strings.CutPrefix(comm, "CPU ")
	if !ok {
		return 0, false
	}
	num, accel, ok := strings.Cut(rest, "/")
	if !ok || accel == "" {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil && n >= 0
}
