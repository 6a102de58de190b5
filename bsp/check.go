package bsp

import (
	"fmt"
	"strings"

	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// CheckDTB compares a board profile with the facts of a device tree and
// says whether the board can host KVM at all. With b nil (a DTB without a
// profile yet) it judges the DTB alone.
func CheckDTB(b *platforms.Board, f *hostdt.Facts) Section {
	s := Section{Title: fmt.Sprintf("Device tree %s", f.File)}
	if b != nil {
		s.Title += " against profile " + b.Name
		for _, fd := range hostdt.Check(b, f) {
			it := Item{Check: fd.Field, OK: fd.OK, Detail: fd.Got}
			if fd.Note != "" {
				it.Detail += " (" + fd.Note + ")"
			}
			if !fd.OK {
				it.Detail = fmt.Sprintf("DTB has %s, profile says %s", fd.Got, fd.Want)
				it.Fix = "correct the profile field, or use the DTB the board boots with"
			}
			s.Items = append(s.Items, it)
		}
	}
	s.Items = append(s.Items, cpuCanHost(b, f), gicCanHost(b, f), timerCanHost(f))
	v := Judge(f)
	s.Verdict = v.String()
	if b == nil {
		return s
	}
	ok, why := b.CanHostKVM()
	switch {
	case b.GuestOnly && v.Capability == HostsKVM:
		// The profile contradicts its DTB: say both.
		s.Verdict += "; but profile " + b.Name + " is guest-only: " + why
	case v.Reason == ReasonNoMaintenance && b.GIC.MaintenanceNotInDTB:
		s.Verdict += fmt.Sprintf("; profile %s has the image builder add PPI %d, so the board's image can", b.Name, b.GIC.MaintenancePPI)
	}
	// A HostsKVM verdict notes a 32-bit board's kernel limit itself.
	if !ok && !b.GuestOnly && v.Capability != HostsKVM {
		s.Verdict += "; " + why
	}
	return s
}

// cpuCanHost checks every core, not only the first cluster's: a board
// hosts KVM only if all its cores can (KVM runs a vCPU on any of them).
func cpuCanHost(b *platforms.Board, f *hostdt.Facts) Item {
	it := Item{Check: "CPU virtualization extensions", OK: true}
	clusters := f.Clusters()
	it.Detail = hostdt.ClusterString(clusters)
	lacking, unknown := virtLacking(clusters)
	switch {
	case len(clusters) == 0:
		it.OK = false
		it.Detail = "the DTB has no cpu nodes"
		it.Fix = "use the board's full DTB, whose /cpus names its cores"
	case len(lacking) > 0:
		it.OK = false
		it.Detail = fmt.Sprintf("the CPU (%s) has no virtualization extensions: it cannot host KVM", hostdt.ClusterCounts(lacking))
		it.Fix = "none for this board: use it as a guest-only target (guest-only: true in board.yaml), or pick a Cortex-A7/A15 or ARMv8 board as the host"
	case len(unknown) > 0:
		it.OK = false
		it.Detail = fmt.Sprintf("%s: a core Tandem does not know, whether it has the virtualization extensions is not known", hostdt.ClusterCounts(unknown))
		it.Fix = "add the core to bsp's table of cores (bsp/verdict.go) if its manual gives it EL2 or HYP mode"
	}
	if b != nil && b.GuestOnly && it.OK {
		it.OK = false
		it.Detail = fmt.Sprintf("the profile is guest-only: %s cannot host KVM", b.CPU.Compatible)
	}
	return it
}

func gicCanHost(b *platforms.Board, f *hostdt.Facts) Item {
	it := Item{Check: "GIC virtualization interface"}
	switch {
	case b != nil && b.GIC.MaintenanceNotInDTB && f.GIC != nil && !f.GIC.HasMaintenance && f.GIC.HasVirtRegions():
		it.OK = true
		it.Detail = fmt.Sprintf("GICv%d without a maintenance interrupt in the DTB: the image builder adds PPI %d (profile %s, MaintenanceNotInDTB)", f.GIC.Version, b.GIC.MaintenancePPI, b.Name)
	case f.GIC == nil:
		it.Detail = "no GIC in the DTB"
		if f.InterruptController != nil {
			it.Detail += ": interrupts go to " + f.InterruptController.String()
		}
		it.Fix = "the host needs an Arm GIC (v2 with GICH/GICV, or v3)"
	case f.GIC.HasVirt():
		it.OK = true
		if f.GIC.Version == 3 {
			it.Detail = fmt.Sprintf("GICv3, maintenance PPI %d", f.GIC.MaintenancePPI)
		} else {
			it.Detail = fmt.Sprintf("GICv2, GICH %v, GICV %v, maintenance PPI %d", f.GIC.Regions[2], f.GIC.Regions[3], f.GIC.MaintenancePPI)
		}
	case f.GIC.HasVirtRegions():
		it.Detail = fmt.Sprintf("GICv%d", f.GIC.Version)
		if f.GIC.Version == 2 {
			it.Detail += " with GICH/GICV"
		}
		it.Detail += " but no maintenance interrupt in the DTB"
		it.Fix = maintenanceFix(f.GIC, len(f.CPUs)) + "; KVM's vgic needs it"
	default:
		it.Detail = fmt.Sprintf("%s has %d reg entries: no GICH/GICV (reg entries 3 and 4)", first(f.GIC.Compatible), len(f.GIC.Regions))
		it.Fix = "a GIC without the virtualization interface cannot host KVM guests"
	}
	return it
}

// timerCanHost checks the architected timer: KVM gives guests its
// virtual timer (the third PPI) and cannot initialise without it.
func timerCanHost(f *hostdt.Facts) Item {
	it := Item{Check: "virtual timer PPI"}
	t := f.Timer
	switch {
	case t == nil:
		it.Detail = "none in the DTB"
		it.Fix = "add the arm,armv7-timer or arm,armv8-timer node with its GIC PPIs"
	case !t.OnGIC && t.Controller != nil:
		it.Detail = fmt.Sprintf("%s: interrupts go to %s, not to a GIC", t.Path, t.Controller)
		it.Fix = "KVM needs the timer's PPIs on the GIC"
	case len(t.PPIs) < 3:
		it.Detail = fmt.Sprintf("%s lists PPIs %v: no virtual timer", t.Path, t.PPIs)
		it.Fix = "list the four timer PPIs (secure, non-secure, virtual, hypervisor)"
	default:
		it.OK = true
		it.Detail = fmt.Sprintf("PPI %d, of %v", t.PPIs[2], t.PPIs)
	}
	return it
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

// symbolCheck is one CONFIG_ symbol the check wants.
type symbolCheck struct {
	sym, why string
	advisory bool
}

// CheckKernelConfig says whether a kernel built with c can be Tandem's
// host kernel (for board b, when not nil), and why.
func CheckKernelConfig(c *KernelConfig, b *platforms.Board) Section {
	s := Section{Title: fmt.Sprintf("Kernel config %s (Linux/%s %s)", c.File, orUnknown(c.Arch), orUnknown(c.Version))}
	add := func(it Item) { s.Items = append(s.Items, it) }
	if b != nil && b.Arch != platforms.X86 {
		want := string(b.Arch)
		add(Item{Check: "architecture", OK: c.Arch == want, Detail: c.Arch,
			Fix: fmt.Sprintf("board %s needs a %s kernel", b.Name, want)})
	}
	syms := []symbolCheck{
		{"CONFIG_VIRTUALIZATION", "the virtualization menu that holds KVM", false},
		{"CONFIG_KVM", "KVM itself: /dev/kvm", false},
	}
	switch c.Arch {
	case "arm":
		syms = append(syms,
			symbolCheck{"CONFIG_KVM_ARM_HOST", "KVM host support on 32-bit ARM (≤ 5.6)", false},
			symbolCheck{"CONFIG_ARM_LPAE", "stage-2 page tables need LPAE", false},
			symbolCheck{"CONFIG_ARM_VIRT_EXT", "booting in HYP mode", false})
	case "x86":
		syms = append(syms, symbolCheck{"CONFIG_KVM_INTEL", "VT-x hosts (kvm-intel)", true},
			symbolCheck{"CONFIG_KVM_AMD", "AMD-V hosts (kvm-amd)", true})
	}
	if c.Arch == "arm" || c.Arch == "arm64" {
		psciAdvisory := b != nil && b.SMP != platforms.SMPPSCI
		syms = append(syms, symbolCheck{"CONFIG_ARM_PSCI_FW", "PSCI: secondary cores and reset on PSCI boards", psciAdvisory})
		switch {
		case b != nil && b.GIC.Version == 3:
			syms = append(syms, symbolCheck{"CONFIG_ARM_GIC_V3", "the board's GICv3", false})
		case b != nil && b.GIC.Version == 2:
			syms = append(syms, symbolCheck{"CONFIG_ARM_GIC", "the board's GICv2", false})
		default:
			gic := c.Enabled("CONFIG_ARM_GIC") || c.Enabled("CONFIG_ARM_GIC_V3")
			add(Item{Check: "CONFIG_ARM_GIC or CONFIG_ARM_GIC_V3", OK: gic, Detail: c.Value("CONFIG_ARM_GIC") + "/" + c.Value("CONFIG_ARM_GIC_V3"),
				Fix: "enable the GIC driver of the board's interrupt controller"})
		}
	}
	syms = append(syms,
		symbolCheck{"CONFIG_EVENTFD", "irqfd and ioeventfd", false},
		symbolCheck{"CONFIG_VHOST_VSOCK", "the host end of guest vsock", true},
		symbolCheck{"CONFIG_VIRTIO_MMIO", "guests of this same kernel find their devices", true},
		symbolCheck{"CONFIG_VIRTIO_BLK", "guest disks, when this kernel is also the guest kernel", true},
		symbolCheck{"CONFIG_VIRTIO_NET", "guest networking, when this kernel is also the guest kernel", true},
		symbolCheck{"CONFIG_VFIO_PLATFORM", "passing host devices through to guests", true},
		symbolCheck{"CONFIG_TCG_TPM", "measured boot", true},
	)
	for _, sc := range syms {
		v := c.Value(sc.sym)
		it := Item{Check: sc.sym, OK: v == "y" || v == "m", Advisory: sc.advisory}
		switch v {
		case "":
			it.Detail = "absent"
		case "n":
			it.Detail = "not set"
		default:
			it.Detail = "=" + v
		}
		it.Detail += " (" + sc.why + ")"
		if !it.OK {
			it.Fix = fmt.Sprintf("build the kernel with %s=y", sc.sym)
		}
		add(it)
	}
	s.Verdict = kvmVerdict(c)
	return s
}

// kvmVerdict says in one sentence whether the config can host KVM.
func kvmVerdict(c *KernelConfig) string {
	if c.Arch == "arm" && !c.Enabled("CONFIG_KVM") {
		v := "cannot host KVM: CONFIG_KVM is absent; Linux 5.7 removed KVM host support for 32-bit ARM"
		if atMost, known := c.VersionAtMost(5, 6); known && !atMost {
			v += fmt.Sprintf(" and this is %s", c.Version)
		}
		return v + ". A 5.6 or older kernel works (5.4 is the newest LTS) with CONFIG_VIRTUALIZATION=y, CONFIG_KVM=y, CONFIG_KVM_ARM_HOST=y, CONFIG_ARM_LPAE=y"
	}
	var missing []string
	for _, sym := range []string{"CONFIG_VIRTUALIZATION", "CONFIG_KVM", "CONFIG_EVENTFD"} {
		if !c.Enabled(sym) {
			missing = append(missing, sym)
		}
	}
	if c.Arch == "arm" && !c.Enabled("CONFIG_KVM_ARM_HOST") {
		missing = append(missing, "CONFIG_KVM_ARM_HOST")
	}
	if len(missing) > 0 {
		return "cannot host KVM: missing " + strings.Join(missing, ", ")
	}
	return fmt.Sprintf("can host KVM (CONFIG_KVM=%s)", c.Value("CONFIG_KVM"))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
