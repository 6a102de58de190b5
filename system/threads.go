package system

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/system/procstat"
)

// A Thread is one thread of a guest's VMM as `tandem threads NAME` shows
// it: where the kernel may run it and under which policy, the proof of a
// guest's CPU partitioning (host-cpus, rt-priority).
type Thread struct {
	TID  int
	Name string
	// Policy is the scheduling policy's name (other, fifo, rr, batch,
	// idle, deadline); RTPriority its real-time priority.
	Policy     string
	RTPriority int
	// CPUs is the cores it may run on (Cpus_allowed_list: "0", "1-3").
	CPUs string
}

// policyNames are the scheduling policies by number (sched(7)).
var policyNames = map[int]string{0: "other", 1: "fifo", 2: "rr", 3: "batch", 5: "idle", 6: "deadline"}

// Threads reads the threads of process pid from /proc.
func Threads(pid int) ([]Thread, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("threads of pid %d: %w", pid, err)
	}
	var out []Thread
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procstat.Read(filepath.Join(dir, e.Name(), "stat"))
		if !ok {
			continue // ended meanwhile
		}
		t := Thread{TID: tid, Name: st.Name, RTPriority: st.RTPriority, Policy: policyNames[st.Policy]}
		if t.Policy == "" {
			t.Policy = strconv.Itoa(st.Policy)
		}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name(), "status")); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "Cpus_allowed_list:"); ok {
					t.CPUs = strings.TrimSpace(v)
				}
			}
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TID < out[j].TID })
	return out, nil
}

// FormatThreads prints threads as `tandem threads NAME` shows them.
func FormatThreads(ts []Thread) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-16s %-8s %4s  %s\n", "TID", "NAME", "POLICY", "PRIO", "CPUS")
	for _, t := range ts {
		fmt.Fprintf(&b, "%-8d %-16s %-8s %4d  %s\n", t.TID, t.Name, t.Policy, t.RTPriority, t.CPUs)
	}
	return b.String()
}
