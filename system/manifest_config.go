package system

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/fsx"
	"github.com/tandem-hv/tandem/vmm"
)

// resolveDisk finds a disk's host path: its file, or the partition its
// label or partuuid names under /dev/disk.
func (g *Guest) resolveDisk(j int, d Disk) (string, error) {
	if d.Path != "" {
		return d.Path, nil
	}
	root := g.manifest.DevDisk
	if root == "" {
		root = defaultDevDiskRoot
	}
	dir, key, field := "by-label", d.Label, "label"
	if d.PartUUID != "" {
		dir, key, field = "by-partuuid", strings.ToLower(d.PartUUID), "partuuid"
	}
	link := filepath.Join(root, dir, key)
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", g.errorf(fmt.Sprintf("disks[%d].%s", j, field), "%s: no such partition on this host (%s: %v)", key, link, fsx.UnwrapPathError(err))
	}
	return p, nil
}

// Config returns the VMM configuration of this guest: paths resolved,
// host partitions found, host devices to pass through resolved against
// the host's device tree, vCPU placement and priority set. The vsock
// device's host side is left for the VMM to attach.
func (g *Guest) Config() (vmm.Config, error) {
	cmdline := g.Cmdline
	cfg := vmm.Config{
		Name: g.Name, Kernel: g.Kernel, KernelFormat: g.KernelFormat, LoadAddress: g.LoadAddress,
		Initrd: g.Initrd, Firmware: g.Firmware, Cmdline: &cmdline,
		CPUs: g.CPUs, Memory: g.Memory, Nets: g.Nets,
		Lock: g.LockMemory, HugePages: g.HugePages,
		VCPUAffinity: slices.Clone(g.HostCPUs), RTPriority: g.RTPriority,
		NoPMU: g.NoPMU, NoSVE: g.NoSVE,
	}
	for j, d := range g.Disks {
		p, err := g.resolveDisk(j, d)
		if err != nil {
			return vmm.Config{}, err
		}
		cfg.Disks = append(cfg.Disks, vmm.Disk{Path: p, ReadOnly: d.ReadOnly})
	}
	if g.Vsock != nil {
		cfg.Vsock = &vmm.Vsock{CID: g.Vsock.CID}
	}
	if g.Display != nil {
		d := *g.Display
		cfg.Display = &d
	}
	var err error
	if cfg.Passthrough, err = ResolvePassthrough(g.Passthrough); err != nil {
		return vmm.Config{}, g.passthroughError(err)
	}
	if g.Watchdog.Timeout > 0 {
		cfg.Watchdog = &vmm.Watchdog{Timeout: g.Watchdog.Timeout, Boot: g.Watchdog.Grace}
	}
	return cfg, nil
}

// passthroughError locates an error of ResolvePassthrough in the
// manifest: at the node it names ("passthrough /pl031@9010000: ..."),
// else at passthrough:.
func (g *Guest) passthroughError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "passthrough "); ok {
		node, _, _ := strings.Cut(rest, ":")
		for j, d := range g.Passthrough {
			if d.Node == node {
				return g.errorf(fmt.Sprintf("passthrough[%d].node", j), "%s", rest)
			}
		}
	}
	return g.errorf("passthrough", "%s", strings.TrimPrefix(msg, "passthrough: "))
}
