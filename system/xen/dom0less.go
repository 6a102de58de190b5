package xen

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/vmm"
)

// Compatible strings of a dom0less device tree (Xen's
// docs/misc/arm/device-tree/booting.txt, "Creating Multiple Domains
// directly from Xen" and "Dom0 kernel and ramdisk modules"; the legacy
// Xen 4.4 names as xen/common/device-tree/bootfdt.c accepts them).
const (
	compatDomain     = "xen,domain"
	compatVCPU       = "xen,vcpu"
	compatModule     = "multiboot,module"
	compatModuleOld  = "xen,multiboot-module"
	compatKernel     = "multiboot,kernel"
	compatKernelOld  = "xen,linux-zimage"
	compatRamdisk    = "multiboot,ramdisk"
	compatRamdiskOld = "xen,linux-initrd"
	compatGuestDTB   = "multiboot,device-tree"
)

// Placeholder is the start of a kernel or initrd path the user has to
// fill in; tandem system --check reports it as a missing file.
const Placeholder = "FILL-IN"

// Dom0lessOptions names the files a dom0less tree gives only as load
// addresses. Keys are domain node names (domU1) or the guest names made
// from them.
type Dom0lessOptions struct {
	Kernels map[string]string
	Initrds map[string]string
}

// domainProps are the properties of a xen,domain node, each with what
// becomes of it; "" means it is converted.
var domainProps = map[string]string{
	"compatible": "", "#address-cells": "", "#size-cells": "", "memory": "", "cpus": "",
	"vpl011": "", "xen,static-mem": "", "direct-map": "", "xen,enhanced": "",
	"capabilities": "", "passthrough": "", "domain-cpupool": "",
	"llc-colors":                    "no cache colouring",
	"nr_spis":                       "the VMM sizes the guest's interrupt controller itself",
	"sve":                           "SVE is not configured per guest",
	"trap-unmapped-accesses":        "an access to unmapped memory reads zeros and is logged",
	"xen,domain-p2m-mem-mb":         "KVM sizes its stage-2 tables itself",
	"max_grant_version":             "no grant tables: guests share nothing but what vsock carries",
	"max_grant_frames":              "no grant tables",
	"max_maptrack_frames":           "no grant tables",
	"xen,sci_type":                  "no SCMI forwarding",
	"v8r_el1_msa":                   "Armv8-R hosts are not supported",
	"xen,static-heap":               "guest memory comes from the host kernel",
	"xen,shared-mem":                "no static shared memory: guests talk over vsock",
	"#xen,static-mem-address-cells": "",
	"#xen,static-mem-size-cells":    "",
}

type d0Import struct {
	file string
	opt  Dom0lessOptions
	warn []Warning
	used map[string]bool // option keys that matched a domain
}

func (d *d0Import) warnf(n *dtb.Node, key, format string, args ...any) {
	d.warn = append(d.warn, Warning{File: d.file, Node: n.Path(), Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (d *d0Import) errorf(n *dtb.Node, key, format string, args ...any) error {
	e := &Error{File: d.file, Key: key, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Node = n.Path()
	}
	return e
}

// ImportDom0less converts the domains of a Xen dom0less host device
// tree into a manifest, one guest per xen,domain node under /chosen.
func ImportDom0less(file string, data []byte, opt Dom0lessOptions) (*Result, error) {
	t, err := dtb.Parse(data)
	if err != nil {
		return nil, &Error{File: file, Msg: fmt.Sprintf("not a readable device tree blob: %v (give the compiled .dtb: dtc -I dts -O dtb -o host.dtb host.dts)", err)}
	}
	d := &d0Import{file: file, opt: opt, used: map[string]bool{}}
	chosen := t.Root.Child("chosen")
	if chosen == nil {
		return nil, &Error{File: file, Node: "/chosen", Msg: "missing: a dom0less device tree lists its domains under /chosen (Xen's docs/misc/arm/device-tree/booting.txt); is this the DTB Xen boots with?"}
	}
	var domains []*dtb.Node
	for _, c := range chosen.Children() {
		switch {
		case c.IsCompatible(compatDomain):
			domains = append(domains, c)
		case isModule(c):
			d.warnf(c, "", "a dom0 boot module: not imported; under Tandem the host Linux plays dom0's part")
		case c.IsCompatible("xen,cpupool"):
			d.warnf(c, "", "a CPU pool: no Tandem equivalent; host-cpus give a guest its own cores")
		default:
			if cs, _ := compatibles(c); len(cs) > 0 {
				d.warnf(c, "", "compatible %q: no Tandem equivalent, not imported", strings.Join(cs, "\", \""))
			}
		}
	}
	if len(domains) == 0 {
		return nil, &Error{File: file, Node: "/chosen", Msg: "no xen,domain nodes under /chosen: not a Xen dom0less device tree (each domain is a /chosen node with compatible = \"xen,domain\"); a board's own DTB has none"}
	}
	m := &Manifest{Source: file, Format: "Xen dom0less device tree"}
	owner := map[int]*Guest{}
	names := map[string]*dtb.Node{}
	for _, n := range domains {
		g, err := d.domain(n)
		if err != nil {
			return nil, err
		}
		if o := names[g.Name]; o != nil {
			return nil, d.errorf(n, "", "becomes guest %q, as %s does: rename one of the nodes", g.Name, o.Path())
		}
		names[g.Name] = n
		for _, c := range g.HostCPUs {
			if o := owner[c]; o != nil {
				return nil, d.errorf(n, "hard-affinity", "host core %d is also in the hard affinity of %s: Tandem dedicates a pinned core to one guest; give each domain its own cores, or drop the xen,vcpu nodes of one", c, o.Name)
			}
			owner[c] = g
		}
		m.Guests = append(m.Guests, g)
	}
	for _, f := range []struct {
		flag string
		m    map[string]string
	}{{"--kernel", opt.Kernels}, {"--initrd", opt.Initrds}} {
		var unknown []string
		for k := range f.m {
			if !d.used[k] {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			var have []string
			for _, n := range domains {
				have = append(have, n.Name)
			}
			return nil, &Error{File: file, Key: f.flag, Msg: fmt.Sprintf("%s=...: no domain %q under /chosen; the domains are %s", k, k, strings.Join(have, ", "))}
		}
	}
	return &Result{Manifest: m, Warnings: d.warn}, nil
}

func isModule(n *dtb.Node) bool {
	return n.IsCompatible(compatModule) || n.IsCompatible(compatModuleOld)
}

func compatibles(n *dtb.Node) ([]string, error) {
	p := n.Prop("compatible")
	if p == nil {
		return nil, nil
	}
	return p.Strings()
}

// domain converts one xen,domain node.
func (d *d0Import) domain(n *dtb.Node) (*Guest, error) {
	name, changed := guestName(n.Name)
	if name == "" {
		return nil, d.errorf(n, "", "node name %q has no letter or digit to name a guest with: rename the node", n.Name)
	}
	if changed {
		d.warnf(n, "", "becomes guest %q: system.yaml names use letters, digits, - and _", name)
	}
	g := &Guest{Name: name}
	for _, step := range []func(*dtb.Node, *Guest) error{
		d.memory, d.cpus, d.features, d.modules, d.affinity,
	} {
		if err := step(n, g); err != nil {
			return nil, err
		}
	}
	for _, p := range n.Properties() {
		why, known := domainProps[p.Name]
		switch {
		case !known:
			d.warnf(n, p.Name, "not a xen,domain property of Xen's booting.txt: left out (check its spelling)")
		case why != "":
			d.warnf(n, p.Name, "no Tandem equivalent, left out: %s", why)
		}
	}
	return g, nil
}

// memory: "A 64-bit integer specifying the amount of kilobytes of RAM"
// (booting.txt). Xen reads two cells whatever #size-cells says
// (dt_property_read_u64 in dom0less-build.c), hence <0 0x20000> in its
// examples.
func (d *d0Import) memory(n *dtb.Node, g *Guest) error {
	p := n.Prop("memory")
	if p == nil {
		return d.errorf(n, "memory", "missing: Xen requires memory = <0 KIB> (the domain's RAM in KiB, 64 bits)")
	}
	if len(p.Value) != 8 {
		hint := ""
		if len(p.Value) == 4 {
			hint = fmt.Sprintf(" (<%#x>)", binary.BigEndian.Uint32(p.Value))
		}
		return d.errorf(n, "memory", "%d bytes%s: Xen reads a 64-bit KiB count and would refuse this; write memory = <0 KIB>, e.g. <0 0x20000> for 128 MiB", len(p.Value), hint)
	}
	kib := binary.BigEndian.Uint64(p.Value)
	if kib == 0 || kib > ^uint64(0)>>10 {
		return d.errorf(n, "memory", "%d KiB: give the domain's RAM in KiB, e.g. <0 0x20000> for 128 MiB", kib)
	}
	b := kib << 10
	if b < vmm.MinMemory {
		return d.errorf(n, "memory", "%d KiB: Tandem guests need at least %s; raise memory", kib, vmm.FormatSize(vmm.MinMemory))
	}
	const align = 2 << 20
	if r := b % align; r != 0 {
		b += align - r
		d.warnf(n, "memory", "%d KiB rounded up to %s: guest memory is a multiple of 2 MiB", kib, vmm.FormatSize(b))
	}
	g.Memory = b
	g.note("memory", "memory = <%#x> KiB", kib)
	return nil
}

func (d *d0Import) cpus(n *dtb.Node, g *Guest) error {
	p := n.Prop("cpus")
	if p == nil {
		return d.errorf(n, "cpus", "missing: Xen requires cpus = <N> (the number of vCPUs)")
	}
	v, err := p.U32()
	if err != nil {
		return d.errorf(n, "cpus", "%d bytes: want one cell, cpus = <N>", len(p.Value))
	}
	if v < 1 || v > vmm.MaxCPUs {
		return d.errorf(n, "cpus", "%d: Tandem guests have 1 to %d vCPUs", v, vmm.MaxCPUs)
	}
	g.CPUs = int(v)
	return nil
}

// features reports the domain properties that change what the guest
// gets.
func (d *d0Import) features(n *dtb.Node, g *Guest) error {
	if n.Has("xen,static-mem") {
		g.LockMemory = true
		d.warnf(n, "xen,static-mem", "Tandem cannot place a guest at fixed host addresses; its memory is locked (lock-memory: true) so it is allocated up front and never swapped")
		g.note("lock-memory", "xen,static-mem")
	}
	if n.Has("direct-map") {
		d.warnf(n, "direct-map", "guest RAM is not mapped 1:1 onto host RAM: the VMM lays out guest memory itself (only DMA by passed-through devices depended on it, and import does not pass devices through)")
	}
	if p := n.Prop("xen,enhanced"); p != nil {
		v := "enabled"
		if len(p.Value) > 0 {
			if s, err := p.String(); err == nil {
				v = s
			}
		}
		if v != "disabled" {
			d.warnf(n, "xen,enhanced", "%q: no Xen PV interfaces (grant tables, xenstore, event channels): the guest gets virtio devices, and vsock for talking to other guests", v)
		}
	}
	if p := n.Prop("capabilities"); p != nil {
		if v, err := p.U32(); err != nil || v != 0 {
			d.warnf(n, "capabilities", "control, hardware or xenstore domain: under Tandem the host Linux has those parts; this guest is an ordinary one")
		}
	}
	if p := n.Prop("passthrough"); p != nil {
		if s, _ := p.String(); s == "enabled" {
			d.warnf(n, "passthrough", "device passthrough is not supported by import: the guest will not see the devices")
		}
	}
	if n.Has("domain-cpupool") {
		d.warnf(n, "domain-cpupool", "no CPU pools: the guest's xen,vcpu hard affinities (if any) become host-cpus")
	}
	return nil
}

// modules finds the kernel, ramdisk and passthrough device tree of a
// domain, as Xen does for a domU (xen/common/device-tree/kernel.c): by
// their specific compatible strings.
func (d *d0Import) modules(n *dtb.Node, g *Guest) error {
	var kernel, ramdisk *dtb.Node
	for _, c := range n.Children() {
		switch {
		case c.IsCompatible(compatKernel) || c.IsCompatible(compatKernelOld):
			if kernel != nil {
				return d.errorf(c, "compatible", "a second kernel module (the first is %s): keep one", kernel.Name)
			}
			kernel = c
		case c.IsCompatible(compatRamdisk) || c.IsCompatible(compatRamdiskOld):
			if ramdisk != nil {
				return d.errorf(c, "compatible", "a second ramdisk module (the first is %s): keep one", ramdisk.Name)
			}
			ramdisk = c
		case c.IsCompatible(compatGuestDTB):
			d.warnf(c, "", "a partial device tree for passthrough: not supported by import; the guest will not see the devices it describes")
		case c.IsCompatible(compatVCPU):
		case isModule(c):
			d.warnf(c, "compatible", "only %q: Xen ignores such a module for a domU; add \"multiboot,kernel\" or \"multiboot,ramdisk\" if it is one", compatModule)
		default:
			cs, _ := compatibles(c)
			d.warnf(c, "", "compatible %q: no Tandem equivalent, not imported", strings.Join(cs, "\", \""))
		}
	}
	var err error
	if g.Kernel, err = d.moduleFile(n, g, kernel, "kernel", d.opt.Kernels); err != nil {
		return err
	}
	if kernel == nil && g.Kernel == "" {
		return d.errorf(n, "", "no kernel module: Xen needs a child node with compatible = \"multiboot,kernel\", \"multiboot,module\" (or give the file with --kernel %s=PATH)", n.Name)
	}
	if kernel != nil {
		if p := kernel.Prop("bootargs"); p != nil {
			s, err := p.String()
			if err != nil || !utf8.ValidString(s) {
				return d.errorf(kernel, "bootargs", "not a UTF-8 string: write bootargs = \"console=ttyAMA0 ...\"")
			}
			g.Cmdline = s
			if slices.Contains(strings.Fields(s), "console=hvc0") {
				d.warnf(kernel, "bootargs", "console=hvc0 is Xen's PV console here; under Tandem hvc0 is the virtio console (the guest needs CONFIG_VIRTIO_CONSOLE), and early messages go to the PL011 only (console=ttyAMA0)")
			}
		} else {
			d.warnf(kernel, "bootargs", "missing: system.yaml's default command line applies; an arm64 guest wants console=ttyAMA0")
		}
	}
	if g.Initrd, err = d.moduleFile(n, g, ramdisk, "initrd", d.opt.Initrds); err != nil {
		return err
	}
	return nil
}

// moduleFile finds the host file of a kernel or ramdisk module: the option,
// then xen,uefi-binary, then a placeholder.
func (d *d0Import) moduleFile(dom *dtb.Node, g *Guest, mod *dtb.Node, field string, opt map[string]string) (string, error) {
	flag := "--" + field
	for _, k := range []string{dom.Name, g.Name} {
		if p, ok := opt[k]; ok {
			d.used[k] = true
			return p, nil
		}
	}
	if mod == nil {
		return "", nil
	}
	if p := mod.Prop("xen,uefi-binary"); p != nil {
		s, err := p.String()
		if err != nil || s == "" || !utf8.ValidString(s) {
			return "", d.errorf(mod, "xen,uefi-binary", "not a file name: write xen,uefi-binary = \"Image-domU\"")
		}
		d.warnf(mod, "xen,uefi-binary", "%s %q is a file on the EFI system partition: put it where system.yaml can find it, or give %s %s=PATH", field, s, flag, dom.Name)
		return s, nil
	}
	where := "no reg"
	if regs, err := mod.Reg(); err != nil {
		return "", d.errorf(mod, "reg", "%v: set #address-cells and #size-cells in %s to match reg", err, dom.Path())
	} else if len(regs) > 0 {
		where = fmt.Sprintf("loaded at %#x, %#x bytes", regs[0].Address, regs[0].Size)
	}
	ph := fmt.Sprintf("%s/%s-%s", Placeholder, g.Name, field)
	g.note(field, "%s: the file U-Boot loads for %s (%s)", Placeholder, mod.Name, where)
	d.warnf(mod, "reg", "the device tree gives the %s only as an address (%s), not a file: the manifest says %s; give %s %s=PATH, or edit %s: in the manifest", field, where, ph, flag, dom.Name, field)
	return ph, nil
}

// affinity turns the xen,vcpu nodes' hard affinities into host-cpus.
func (d *d0Import) affinity(n *dtb.Node, g *Guest) error {
	seen := map[uint32]*dtb.Node{}
	var cores []int
	var sets []string
	pinned := 0
	for _, c := range n.Children() {
		if !c.IsCompatible(compatVCPU) {
			continue
		}
		p := c.Prop("id")
		if p == nil {
			return d.errorf(c, "id", "missing: each xen,vcpu node needs id = <N> (0 to cpus-1)")
		}
		id, err := p.U32()
		if err != nil {
			return d.errorf(c, "id", "%d bytes: want one cell, id = <N>", len(p.Value))
		}
		if int(id) >= g.CPUs {
			return d.errorf(c, "id", "%d: the domain has cpus = <%d>, so ids run 0 to %d", id, g.CPUs, g.CPUs-1)
		}
		if o := seen[id]; o != nil {
			return d.errorf(c, "id", "%d: %s has the same id; each vCPU is described once", id, o.Name)
		}
		seen[id] = c
		ha := c.Prop("hard-affinity")
		if ha == nil {
			continue
		}
		s, err := ha.String()
		if err != nil {
			return d.errorf(c, "hard-affinity", "not a string: write hard-affinity = \"0-3\"")
		}
		l, err := parseCPUList(s)
		if err != nil || l.all {
			if err == nil || err == errAllExcept {
				err = fmt.Errorf("%q: want host cores and ranges only, e.g. \"0-3\" or \"1,4-7\"", s)
			}
			return d.errorf(c, "hard-affinity", "%v", err)
		}
		pinned++
		sets = append(sets, s)
		for _, core := range l.cores {
			if !slices.Contains(cores, core) {
				cores = append(cores, core)
			}
		}
	}
	if len(cores) == 0 {
		return nil
	}
	if pinned < g.CPUs {
		d.warnf(n, "hard-affinity", "only %d of %d vCPUs have a hard affinity: Tandem pins all of them to %s", pinned, g.CPUs, joinInts(cores))
	} else if len(sets) > 1 && slices.ContainsFunc(sets, func(s string) bool { return s != sets[0] }) {
		d.warnf(n, "hard-affinity", "per-vCPU affinities %s: Tandem pins every vCPU thread to the same set, cores %s", strings.Join(sets, "; "), joinInts(cores))
	}
	d.warnf(n, "hard-affinity", "host-cpus %s are dedicated to this guest: no other guest may list them", joinInts(cores))
	g.HostCPUs = cores
	return nil
}
