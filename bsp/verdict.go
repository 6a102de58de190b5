package bsp

import (
	"fmt"
	"regexp"
	"slices"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// Capability is what a board can be for Tandem, judged from its device
// tree.
type Capability string

// The three verdicts. Every well-formed board DTB gets one of them.
const (
	// HostsKVM: every core has the virtualization extensions and the GIC
	// its virtualization interface, with the maintenance interrupt and
	// the architected timer's virtual PPI KVM needs.
	HostsKVM Capability = "hosts KVM"
	// GuestOnly: the cores lack the virtualization extensions (Cortex-A9):
	// no kernel can host KVM there.
	GuestOnly Capability = "guest-only"
	// Cannot: the cores could, but the board or its DTB cannot; Verdict.Fix
	// says when a change to the DTB would do.
	Cannot Capability = "cannot host KVM"
)

// Reasons a verdict gives, fixed phrases so that verdicts over many
// boards can be counted.
const (
	ReasonNoVirtCores    = "the cores lack the virtualization extensions"
	ReasonNoGIC          = "no GIC"
	ReasonNoCPUs         = "no cpu nodes: the DTB does not say which cores the board has"
	ReasonUnknownCores   = "cores Tandem does not know: whether they have the virtualization extensions is not known"
	ReasonNoGICVirt      = "GICv2 without the virtualization interface (no GICH/GICV regions)"
	ReasonNoMaintenance  = "no GIC maintenance interrupt in the DTB"
	ReasonNoTimer        = "no architected timer in the DTB"
	ReasonTimerNotOnGIC  = "the architected timer's interrupts do not go to the GIC"
	ReasonNoVirtualTimer = "the architected timer lists no virtual timer PPI"
)

// Verdict is what a board's DTB alone says about hosting KVM.
type Verdict struct {
	Capability Capability `json:"capability"`
	// Reason is why not (GuestOnly, Cannot): one of the Reason constants.
	Reason string `json:"reason,omitempty"`
	// Detail names what this DTB has: its cores, its GIC, the controller
	// it has instead of one.
	Detail string `json:"detail,omitempty"`
	// Fix is the change to the DTB that would make the board host KVM; ""
	// when only other hardware would.
	Fix string `json:"fix,omitempty"`
	// Notes are the caveats of a HostsKVM verdict (32-bit ARM needs an
	// old host kernel).
	Notes []string `json:"notes,omitempty"`
}

// String says the verdict in one line: "hosts KVM (...)", "guest-only:
// ... cannot host KVM ...", "no GIC: cannot host KVM (...)".
func (v Verdict) String() string {
	var s string
	switch v.Capability {
	case HostsKVM:
		s = string(HostsKVM)
	case GuestOnly:
		s = fmt.Sprintf("%s: %s: the board cannot host KVM with any kernel", GuestOnly, v.Reason)
	default:
		s = fmt.Sprintf("%s: %s", v.Reason, Cannot)
	}
	if v.Detail != "" {
		s += " (" + v.Detail + ")"
	}
	if v.Fix != "" {
		s += "; fixable: " + v.Fix
	}
	for _, n := range v.Notes {
		s += "; " + n
	}
	return s
}

// JudgeDTB reads a DTB (data, named file in messages) and judges it.
func JudgeDTB(data []byte, file string) (Verdict, *hostdt.Facts, error) {
	t, err := dtb.Parse(data)
	if err != nil {
		return Verdict{}, nil, fmt.Errorf("judging %s: %w", file, err)
	}
	f, err := hostdt.Read(t)
	if err != nil {
		return Verdict{}, nil, fmt.Errorf("judging %s: %w", file, err)
	}
	f.File = file
	return Judge(f), f, nil
}

// Judge says from a DTB's facts alone whether the board can host KVM.
// The reasons are taken in order: cores without the virtualization
// extensions make a board guest-only whatever else it has; then what
// only other hardware would change (no GIC, a GICv2 without its
// virtualization interface, cores the DTB does not name); then what a
// corrected DTB would (the maintenance interrupt, the timer).
func Judge(f *hostdt.Facts) Verdict {
	clusters := f.Clusters()
	cores := hostdt.ClusterCounts(clusters)
	lacking, unknown := virtLacking(clusters)
	gic := f.GIC
	switch {
	case len(lacking) > 0:
		return Verdict{Capability: GuestOnly, Reason: ReasonNoVirtCores, Detail: hostdt.ClusterCounts(lacking)}
	case gic == nil:
		v := Verdict{Capability: Cannot, Reason: ReasonNoGIC}
		if p := f.InterruptController; p != nil {
			v.Detail = "interrupts go to " + p.String()
		}
		if t := f.Timer; t != nil && t.Controller != nil && (f.InterruptController == nil || t.Controller.Path != f.InterruptController.Path) {
			v.Detail = join(v.Detail, "the timer's to "+t.Controller.String())
		}
		if len(clusters) == 0 {
			v.Detail = join(v.Detail, "no cpu nodes")
		}
		return v
	case len(clusters) == 0:
		return Verdict{Capability: Cannot, Reason: ReasonNoCPUs, Detail: fmt.Sprintf("GICv%d", gic.Version)}
	case len(unknown) > 0:
		return Verdict{Capability: Cannot, Reason: ReasonUnknownCores, Detail: hostdt.ClusterCounts(unknown),
			Fix: "none in the DTB: add the core to bsp's table of cores if its manual gives it EL2 (ARMv8-A) or HYP mode (ARMv7-A)"}
	case !gic.HasVirtRegions():
		v := Verdict{Capability: Cannot, Reason: ReasonNoGICVirt,
			Detail: fmt.Sprintf("%s at %s has %d reg entries, GICH and GICV would be the 3rd and 4th", first(gic.Compatible), gic.Path, len(gic.Regions))}
		if slices.ContainsFunc(gic.Compatible, func(c string) bool { return virtGICs[c] }) {
			v.Fix = fmt.Sprintf("%s always implements the virtualization extensions: on real hardware (not a hypervisor's guest), add GICH and GICV as reg entries 3 and 4 of %s, their addresses from the SoC's manual", first(gic.Compatible), gic.Path)
			if !gic.HasMaintenance {
				v.Fix += ", and its maintenance interrupt: " + maintenanceFix(gic, len(f.CPUs))
			}
		}
		return v
	case !gic.HasMaintenance:
		return Verdict{Capability: Cannot, Reason: ReasonNoMaintenance, Detail: fmt.Sprintf("GICv%d at %s", gic.Version, gic.Path),
			Fix: maintenanceFix(gic, len(f.CPUs))}
	case f.Timer == nil:
		return Verdict{Capability: Cannot, Reason: ReasonNoTimer, Detail: cores,
			Fix: "add the arm,armv7-timer or arm,armv8-timer node with its four GIC PPIs (secure, non-secure, virtual, hypervisor): KVM needs the virtual one"}
	case !f.Timer.OnGIC && f.Timer.Controller != nil:
		return Verdict{Capability: Cannot, Reason: ReasonTimerNotOnGIC, Detail: "they go to " + f.Timer.Controller.String()}
	case len(f.Timer.PPIs) < 3:
		return Verdict{Capability: Cannot, Reason: ReasonNoVirtualTimer, Detail: fmt.Sprintf("%s lists PPIs %v", f.Timer.Path, f.Timer.PPIs),
			Fix: fmt.Sprintf("list the four timer PPIs (secure, non-secure, virtual, hypervisor) in %s", f.Timer.Path)}
	}
	v := Verdict{Capability: HostsKVM, Detail: fmt.Sprintf("%s, GICv%d", cores, gic.Version)}
	if slices.ContainsFunc(clusters, func(c platforms.Cluster) bool { return armv7VirtCores[c.Compatible] }) {
		v.Notes = append(v.Notes, "32-bit ARM: "+platforms.ARMv7HostKernel.Note)
	}
	if _, ok := f.Timer.HypPPI(); !ok {
		v.Notes = append(v.Notes, "the timer lists no hypervisor timer PPI, which a host kernel running at EL2 with VHE (ARMv8.1 and later cores) uses for itself")
	}
	return v
}

// maintenanceFix is the interrupts property to add to a GIC node without
// one: PPI 9 (INTID 25), the GIC-400's maintenance interrupt and the
// INTID Arm's Server Base System Architecture recommends for others,
// level high; on GICv2 with the CPU mask of every core (arm,gic.yaml:
// GIC_CPU_MASK_SIMPLE), as the image builder adds it for profiles with
// MaintenanceNotInDTB (images/dtbfix.go).
func maintenanceFix(g *hostdt.GIC, cpus int) string {
	const ppi, levelHigh = 9, 4
	flags := uint32(levelHigh)
	if g.Version == 2 {
		flags |= uint32(1<<min(max(cpus, 1), 8)-1) << 8
	}
	return fmt.Sprintf("add interrupts = <1 %d %#x> (GIC_PPI %d, level high; PPI %d is the usual maintenance interrupt, check the SoC's manual) to %s", ppi, flags, ppi, ppi, g.Path)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// virtGICs are GICv2 implementations that always have the
// virtualization extensions (GICH and GICV): the GIC-400 (its TRM,
// "About the GIC-400") and the GICs inside the Cortex-A7 and Cortex-A15
// MPCore (their TRMs' "Generic Interrupt Controller" chapters). A DTB
// that omits those regions only leaves them out.
var virtGICs = map[string]bool{"arm,gic-400": true, "arm,cortex-a7-gic": true, "arm,cortex-a15-gic": true}

// Cores by the cpu nodes' first compatible: which implement the
// virtualization extensions, ARMv7-A's HYP mode or ARMv8-A's EL2.
var (
	// armv7VirtCores are the ARMv7-A cores with the virtualization
	// extensions (ARM ARM for ARMv7-A, B1.7; each core's TRM).
	armv7VirtCores = map[string]bool{
		"arm,cortex-a7": true, "arm,cortex-a12": true, "arm,cortex-a15": true, "arm,cortex-a17": true,
	}
	// armv8Cores are ARMv8-A cores named by vendor; the Cortex-A5x/A7x,
	// X and Neoverse families match armv8Pattern. EL2 is optional in
	// ARMv8-A, but every application core shipped has it.
	armv8Cores = map[string]bool{
		"arm,armv8": true, "apm,potenza": true, "apm,strega": true, "cavium,thunder": true, "cavium,thunder2": true,
		"brcm,vulcan": true, "brcm,brahma-b53": true, "nvidia,tegra132-denver": true, "nvidia,tegra186-denver": true,
		"nvidia,tegra194-carmel": true,
	}
	armv8Pattern = regexp.MustCompile(`^arm,cortex-(a3[2-9]|a[5-9][0-9]|a[1-9][0-9]{2}|x[0-9]+)$|^arm,neoverse-|^(qcom|arm),kryo`)
	// noVirtCores lack the extensions: ARMv7-A cores before the
	// Cortex-A15 generation, Marvell's ARMv7 PJ4 family, ARMv5 and ARMv6.
	noVirtCores = map[string]bool{
		"arm,cortex-a5": true, "arm,cortex-a8": true, "arm,cortex-a9": true,
		"marvell,pj4a": true, "marvell,pj4b": true, "marvell,sheeva-v7": true, "qcom,scorpion": true,
		"arm,arm1176jzf-s": true, "arm,arm1176jzf": true, "arm,arm11mpcore": true, "arm,arm1136jf-s": true,
		"arm,arm926ej-s": true, "arm,arm920t": true, "arm,arm946e-s": true,
		"marvell,sheeva-v5": true, "marvell,feroceon": true, "marvell,mohawk": true, "marvell,xscale": true,
	}
)

// virtLacking sorts out the clusters whose cores lack the
// virtualization extensions and those whose cores Tandem does not know.
func virtLacking(clusters []platforms.Cluster) (lacking, unknown []platforms.Cluster) {
	for _, c := range clusters {
		switch virt, known := cpuVirt(c.Compatible); {
		case !known:
			unknown = append(unknown, c)
		case !virt:
			lacking = append(lacking, c)
		}
	}
	return lacking, unknown
}

// cpuVirt says whether cores of compatible c have the virtualization
// extensions, and whether Tandem knows the core at all.
func cpuVirt(c string) (virt, known bool) {
	switch {
	case armv7VirtCores[c], armv8Cores[c], armv8Pattern.MatchString(c):
		return true, true
	case noVirtCores[c]:
		return false, true
	}
	return false, false
}
