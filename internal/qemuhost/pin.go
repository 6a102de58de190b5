package qemuhost

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// pinVCPUs gives each of QEMU's vCPU threads ("CPU n/TCG", named because
// QEMU runs with debug-threads=on) a machine CPU of its own, n modulo the
// CPUs there are. Unpinned, two busy emulated CPUs can share one real CPU
// while the other idles: the emulated cores would interfere in a way real
// cores do not.
//
// QEMU's other threads go to the last emulated CPU's machine CPU, above
// the vCPU threads in priority (nice -15 against -10). The main loop
// among them runs the emulated timers: beside a busy vCPU thread, a
// timer interrupt for another, idle emulated CPU would wait for the busy
// one's time slice, as no hardware timer waits for another core. Every
// QEMU thread runs above whatever else the machine is doing (a build,
// another test): real cores are not time-shared with unrelated programs.
//
// It polls until every vCPU thread is pinned or ctx ends, and returns
// how many it pinned.
func pinVCPUs(ctx context.Context, pid, vcpus int) (int, error) {
	ncpu := runtime.NumCPU()
	pinned, others := map[int]bool{}, map[int]bool{}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(pinned) < vcpus {
		tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return len(pinned), err
		}
		for _, t := range tids {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || pinned[tid] || others[tid] {
				continue
			}
			// Best effort: without CAP_SYS_NICE the threads keep nice 0.
			unix.Setpriority(unix.PRIO_PROCESS, tid, -10)
			comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "comm"))
			if err != nil {
				continue
			}
			n, ok := vcpuIndex(strings.TrimSpace(string(comm)))
			if !ok {
				if !others[tid] {
					var set unix.CPUSet
					set.Set((vcpus - 1) % ncpu)
					unix.SchedSetaffinity(tid, &set)
					unix.Setpriority(unix.PRIO_PROCESS, tid, -15)
					others[tid] = true
				}
				continue
			}
			var set unix.CPUSet
			set.Set(n % ncpu)
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				return len(pinned), fmt.Errorf("pinning %s (thread %d): %w", strings.TrimSpace(string(comm)), tid, err)
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
