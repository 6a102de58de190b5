package system

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/system/swtpm"
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
// exists and at least one is left for housekeeping, the guests' memory
// together fits, host partitions are present, and each guest passes the
// checks its VMM makes before it opens /dev/kvm (vmm.Config.Check: the
// kernel's format and architecture, cpus, memory, files, TAPs), so that
// `tandem system --check` refuses what `tandem run` would. It needs no
// KVM. Like LoadManifest's, each error names file:line, guest and field.
func (m *Manifest) CheckHost(h Host) error {
	var total uint64
	dedicated := map[int]bool{}
	var lastDedicating *Guest
	for _, g := range m.Guests {
		for j, c := range g.HostCPUs {
			if len(h.CPUs) > 0 && !slices.Contains(h.CPUs, c) {
				return g.errorf(fmt.Sprintf("host-cpus[%d]", j), "core %d: this host has cores %s", c, cpuList(h.CPUs))
			}
			dedicated[c] = true
			lastDedicating = g
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
	if g := lastDedicating; g != nil && len(h.CPUs) > 0 && !slices.ContainsFunc(h.CPUs, func(c int) bool { return !dedicated[c] }) {
		return g.errorf("host-cpus", "every core of this host (%s) is dedicated to a guest once this guest's are: leave at least one out of every host-cpus list, for the host, the supervisor and the VMMs' other threads", cpuList(h.CPUs))
	}
	for _, g := range m.Guests {
		if err := g.check(); err != nil {
			return err
		}
		if _, err := m.Privileges(g); err != nil {
			return err
		}
	}
	return nil
}

// check makes the guest's VMM configuration and runs the VMM's own
// checks on it (vmm.Config.Check), locating its error in the manifest.
func (g *Guest) check() error {
	cfg, err := g.Config()
	if err != nil {
		return err
	}
	// The TPM's socket is the supervisor's to make when it starts the
	// guest; what can be checked now is that the guest can have one and
	// that the host has the software TPM to back it.
	if g.VTPM {
		if a, err := vmm.DetectKernel(g.Kernel); err == nil {
			if err := vmm.TPMSupported(a); err != nil {
				return g.errorf("vtpm", "%v", err)
			}
		}
		if _, err := exec.LookPath(swtpm.Program); err != nil {
			return g.errorf("vtpm", "%s is not on this host's PATH: install Debian's swtpm package, which backs the guest's TPM", swtpm.Program)
		}
	}
	err = cfg.Check()
	var ce *vmm.ConfigError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return g.errorf(g.field(ce.Field), "%s", ce.Detail())
	}
	return g.errorf("kernel", "%v", err)
}

// field turns a vmm.ConfigError's field into the manifest's: a disk is
// a path, a label or a partuuid there.
func (g *Guest) field(f string) string {
	var j int
	if _, err := fmt.Sscanf(f, "disks[%d]", &j); err == nil && j >= 0 && j < len(g.Disks) && !strings.Contains(f, ".") {
		switch d := g.Disks[j]; {
		case d.Label != "":
			return f + ".label"
		case d.PartUUID != "":
			return f + ".partuuid"
		}
		return f + ".path"
	}
	return f
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
