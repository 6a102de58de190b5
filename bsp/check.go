package bsp

import (
	"fmt"
	"strings"

	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// CheckDTB compares a board profile with the facts of a device tree and
// says whether the board can host KVM at all.
func CheckDTB(b *platforms.Board, f *hostdt.Facts) Section {
	s := Section{Title: fmt.Sprintf("Device tree %s against profile %s", f.File, b.Name)}
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
	s.Items = append(s.Items, cpuCanHost(b, f), gicCanHost(f))
	if ok, why := b.CanHostKVM(); !ok {
		s.Verdict = why
	} else {
		s.Verdict = "the hardware can host KVM"
	}
	return s
}

// noVirtCPUs are CPU compatibles without the virtualization extensions:
// ARMv7 cores before the Cortex-A15/A7 generation.
var noVirtCPUs = []string{"arm,cortex-a5", "arm,cortex-a8", "arm,cortex-a9", "arm,arm1176jzf-s", "arm,arm11mpcore", "marvell,pj4b"}

func cpuCanHost(b *platforms.Board, f *hostdt.Facts) Item {
	it := Item{Check: "CPU virtualization extensions", OK: true}
	var cpu string
	if len(f.CPUs) > 0 {
		cpu = f.CPUs[0].Compatible
	}
	it.Detail = cpu
	for _, c := range noVirtCPUs {
		if cpu == c {
			it.OK = false
			it.Detail = fmt.Sprintf("the CPU (%s) has no virtualization extensions: it cannot host KVM", cpu)
			it.Fix = "none for this board: use it as a guest-only target (GuestOnly: true), or pick a Cortex-A7/A15 or ARMv8 board as the host"
		}
	}
	if b != nil && b.GuestOnly && it.OK {
		it.OK = false
		it.Detail = fmt.Sprintf("the profile is guest-only: %s cannot host KVM", b.CPU.Compatible)
	}
	return it
}

func gicCanHost(f *hostdt.Facts) Item {
	it := Item{Check: "GIC virtualization interface"}
	switch {
	case f.GIC == nil:
		it.Detail = "no GIC in the DTB"
		it.Fix = "the host needs an Arm GIC (v2 with GICH/GICV, or v3)"
	case f.GIC.HasVirt():
		it.OK = true
		if f.GIC.Version == 3 {
			it.Detail = "GICv3"
		} else {
			it.Detail = fmt.Sprintf("GICv2, GICH %v, GICV %v, maintenance PPI %d", f.GIC.Regions[2], f.GIC.Regions[3], f.GIC.MaintenancePPI)
		}
	case len(f.GIC.Regions) >= 4:
		it.Detail = "GICv2 with GICH/GICV but no maintenance interrupt in the DTB"
		it.Fix = fmt.Sprintf("add interrupts = <1 9 0xf04> (GIC_PPI 9) to %s; KVM's vgic needs it", f.GIC.Path)
	default:
		it.Detail = fmt.Sprintf("%s has %d reg entries: no GICH/GICV (reg entries 3 and 4)", first(f.GIC.Compatible), len(f.GIC.Regions))
		it.Fix = "a GIC without the virtualization interface cannot host KVM guests"
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
