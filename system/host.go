package system

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/vmm"
)

// Host is what the manifest is checked against: the host's logical CPUs
// (the numbers sched_setaffinity takes) and its RAM.
type Host struct {
	CPUs   []int
	Memory uint64 // bytes
}

// DetectHost reads the running host's CPUs and memory: the online CPUs
// (/sys/devices/system/cpu/online, the numbers sched_setaffinity takes)
// and the RAM /proc/meminfo reports, the same figure each VMM checks its
// guest's memory against (vmm.HostMemory), so the supervisor's check and
// the VMM's agree.
func DetectHost() (Host, error) {
	var h Host
	b, err := os.ReadFile(onlineCPUs)
	if err != nil {
		return h, fmt.Errorf("reading the host's CPUs: %w", err)
	}
	if h.CPUs, err = parseCPUList(strings.TrimSpace(string(b))); err != nil {
		return h, fmt.Errorf("reading the host's CPUs: %s: %w", onlineCPUs, err)
	}
	if h.Memory, err = vmm.HostMemory(); err != nil {
		return h, fmt.Errorf("reading the host's memory: %w", err)
	}
	return h, nil
}

// onlineCPUs lists the host's online CPUs.
const onlineCPUs = "/sys/devices/system/cpu/online"

// CheckHost checks the manifest against a host: every dedicated core
// exists, the guests' memory together fits, host partitions are present.
// Like LoadManifest's, each error names file:line, guest and field.
func (m *Manifest) CheckHost(h Host) error {
	var total uint64
	for _, g := range m.Guests {
		for j, c := range g.HostCPUs {
			if len(h.CPUs) > 0 && !slices.Contains(h.CPUs, c) {
				return g.errorf(fmt.Sprintf("host-cpus[%d]", j), "core %d: this host has cores %s", c, cpuList(h.CPUs))
			}
		}
		if len(g.HostCPUs) > 0 && len(g.HostCPUs) == len(h.CPUs) && len(m.Guests) > 1 {
			return g.errorf("host-cpus", "dedicates every host core to this guest: leave some for the others and the host")
		}
		total += g.Memory
		if h.Memory > 0 && total > h.Memory {
			return g.errorf("memory", "%s brings the guests' memory to %s, more than the host's %s: lower it",
				vmm.FormatSize(g.Memory), vmm.FormatSize(total), fmtGiB(h.Memory))
		}
		for j, d := range g.Disks {
			if _, err := g.resolveDisk(j, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func fmtGiB(n uint64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

// cpuList prints sorted core numbers as ranges: 0-3,6.
func cpuList(cpus []int) string {
	s := ""
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if s != "" {
			s += ","
		}
		if j > i {
			s += fmt.Sprintf("%d-%d", cpus[i], cpus[j])
		} else {
			s += fmt.Sprintf("%d", cpus[i])
		}
		i = j + 1
	}
	return s
}
