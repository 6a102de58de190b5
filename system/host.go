package system

import (
	"fmt"
	"slices"

	"github.com/jaypipes/ghw"

	"github.com/tandem-hv/tandem/vmm"
)

// Host is what the manifest is checked against: the host's logical CPUs
// (the numbers sched_setaffinity takes) and its RAM.
type Host struct {
	CPUs   []int
	Memory uint64 // bytes
}

// DetectHost reads the running host's CPUs and memory with ghw.
func DetectHost() (Host, error) {
	var h Host
	cpu, err := ghw.CPU(ghw.WithDisableWarnings())
	if err != nil {
		return h, fmt.Errorf("reading the host's CPUs: %w", err)
	}
	for _, p := range cpu.Processors {
		for _, c := range p.Cores {
			h.CPUs = append(h.CPUs, c.LogicalProcessors...)
		}
	}
	slices.Sort(h.CPUs)
	h.CPUs = slices.Compact(h.CPUs)
	mem, err := ghw.Memory(ghw.WithDisableWarnings())
	if err != nil {
		return h, fmt.Errorf("reading the host's memory: %w", err)
	}
	h.Memory = uint64(mem.TotalUsableBytes)
	if h.Memory == 0 {
		// Some kernels hide the usable total from ghw; /proc/meminfo has it.
		h.Memory, _ = vmm.HostMemory()
	}
	return h, nil
}

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
