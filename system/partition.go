package system

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CPU partitioning. A guest with host-cpus owns those cores: its vCPU
// threads run there and nothing else does. Everything else (the
// supervisor, the VMMs of guests without dedicated cores, and the other
// threads of every VMM: its devices, its channel, the Go runtime) shares
// the remaining, housekeeping cores. Pinning only the control guest's
// vCPU thread is not enough: a best-effort vCPU scheduled on the
// dedicated core holds it until the next tick, and a control guest's
// timer interrupt then waits for the other guest's exit. Keeping the
// control guest's own device threads off its cores matters too: its
// vCPU thread runs under SCHED_FIFO, and a guest that never halts
// (idle=poll, a spinning task) would starve devices sharing its core
// until real-time throttling let them run.

// partition is the split of the cores the supervisor may use.
type partition struct {
	housekeeping []int // for the supervisor and guests without host-cpus
}

// newPartition splits allowed (the supervisor's own affinity) into the
// cores dedicated to guests and the rest. With no dedicated cores, or
// none left over, the housekeeping set is empty: nothing is confined.
func newPartition(allowed []int, m *Manifest) partition {
	var dedicated []int
	for _, g := range m.Guests {
		dedicated = append(dedicated, g.HostCPUs...)
	}
	if len(dedicated) == 0 {
		return partition{}
	}
	var p partition
	for _, c := range allowed {
		if !slices.Contains(dedicated, c) {
			p.housekeeping = append(p.housekeeping, c)
		}
	}
	return p
}

// cores is where a guest's VMM process starts: the housekeeping cores
// (nil: anywhere). Its vCPU threads then move themselves to the guest's
// host-cpus (vmm.Config.VCPUAffinity); threads the Go runtime starts
// later come from a thread that stayed here. Only when every core is
// dedicated, and none is left for housekeeping, does a guest's whole VMM
// run on its own cores.
func (p partition) cores(g *Guest) []int {
	if len(p.housekeeping) == 0 && len(g.HostCPUs) > 0 {
		return g.HostCPUs
	}
	return p.housekeeping
}

// currentAffinity is the calling thread's CPU set as a list.
func currentAffinity() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

func cpuSet(cpus []int) *unix.CPUSet {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return &set
}

// confineProcess moves every thread of this process to cpus. Threads
// started later inherit the mask of the thread that starts them.
func confineProcess(cpus []int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	set := cpuSet(cpus)
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// A thread may have exited since the listing.
		if err := unix.SchedSetaffinity(tid, set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("confining thread %d to cores %v: %w", tid, cpus, err)
		}
	}
	return nil
}

// startOn starts a child process on cpus: a child inherits the CPU mask
// of the thread that forks it, so the fork runs on a thread locked and
// moved there for the purpose, and every thread the child ever starts
// stays on cpus without the child doing anything. nil cpus: start as is.
func startOn(cpus []int, start func() error) error {
	if len(cpus) == 0 {
		return start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return err
	}
	if err := unix.SchedSetaffinity(0, cpuSet(cpus)); err != nil {
		return fmt.Errorf("cores %v: %w", cpus, err)
	}
	err := start()
	if rerr := unix.SchedSetaffinity(0, &old); rerr != nil && err == nil {
		err = rerr
	}
	return err
}

// IsolationCmdline is what the host kernel's command line needs for the
// manifest's dedicated cores to be the guests' alone: no scheduler load
// balancing onto them, no scheduler tick while one task runs there, RCU
// callbacks and interrupts elsewhere; and full preemption, so a
// real-time vCPU thread waking up does not wait for the kernel to finish
// a long path on its core (kernels that pick their preemption model at
// boot, PREEMPT_DYNAMIC as Debian's, take preempt=; others ignore it).
// "" when no guest has dedicated cores. Images built from the manifest
// boot with it.
func (m *Manifest) IsolationCmdline() string {
	var dedicated []int
	for _, g := range m.Guests {
		dedicated = append(dedicated, g.HostCPUs...)
	}
	if len(dedicated) == 0 {
		return ""
	}
	slices.Sort(dedicated)
	l := cpuList(dedicated)
	c := "isolcpus=nohz,domain,managed_irq," + l + " nohz_full=" + l + " rcu_nocbs=" + l
	// Interrupts that are not managed go to the cores below the highest
	// dedicated one that are not dedicated: the manifest does not say how
	// many cores the host has, but those exist.
	var irq []int
	for i := 0; i < dedicated[len(dedicated)-1]; i++ {
		if !slices.Contains(dedicated, i) {
			irq = append(irq, i)
		}
	}
	if len(irq) > 0 {
		c += " irqaffinity=" + cpuList(irq)
	}
	return c + " preempt=full"
}

// isolated reports which of cores the running kernel's command line
// (cmdline, /proc/cmdline's text) isolates with isolcpus= or nohz_full=.
func isolated(cmdline string, cores []int) (missing []int) {
	var iso []int
	for _, w := range strings.Fields(cmdline) {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k != "isolcpus" && k != "nohz_full" {
			continue
		}
		// isolcpus takes flags before the list: "nohz,domain,2-3".
		parts := strings.Split(v, ",")
		var list []string
		for _, p := range parts {
			if p != "" && (p[0] >= '0' && p[0] <= '9') {
				list = append(list, p)
			}
		}
		cs, err := parseCPUList(strings.Join(list, ","))
		if err == nil {
			iso = append(iso, cs...)
		}
	}
	for _, c := range cores {
		if !slices.Contains(iso, c) {
			missing = append(missing, c)
		}
	}
	return missing
}

// parseCPUList reads the kernel's CPU list syntax, "0-2,5".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for _, r := range strings.Split(s, ",") {
		if r == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(r, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("cpu list %q: %q is not a number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", s, r)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// isolateHost names a host kernel booted without isolation for the
// dedicated cores, with the command line that would isolate them. (The
// kernel's own isolation is what keeps its ticks, RCU callbacks, kernel
// threads and managed interrupts off those cores; the supervisor does
// not move interrupts itself.)
func (s *Supervisor) isolateHost() {
	var dedicated []int
	for _, g := range s.M.Guests {
		dedicated = append(dedicated, g.HostCPUs...)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return
	}
	if missing := isolated(string(cmdline), dedicated); len(missing) > 0 {
		slices.Sort(missing)
		s.logf("the host kernel still runs its own work (ticks, RCU, kernel threads) on dedicated cores %s: boot it with %q (Tandem's images do)",
			cpuList(missing), s.M.IsolationCmdline())
	}
}
