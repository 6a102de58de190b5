package hostdt

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/platforms"
)

// ErrNoMatch: no profile matches the DTB's root compatible.
var ErrNoMatch = errors.New("no board profile matches")

// Match returns the profile whose first compatible the DTB's root lists.
// Several profiles may share one (both QEMU virt boards say
// "linux,dummy-virt"); the GIC version and CPU compatible decide then.
func Match(f *Facts, boards []*platforms.Board) (*platforms.Board, error) {
	var cands []*platforms.Board
	for _, b := range boards {
		if len(b.Compatible) > 0 && slices.Contains(f.Compatible, b.Compatible[0]) {
			cands = append(cands, b)
		}
	}
	if len(cands) > 1 {
		var best []*platforms.Board
		for _, b := range cands {
			if f.GIC != nil && f.GIC.Version == b.GIC.Version && len(f.CPUs) > 0 && f.CPUs[0].Compatible == b.CPU.Compatible {
				best = append(best, b)
			}
		}
		if len(best) == 1 {
			return best[0], nil
		}
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	if len(cands) > 1 {
		return nil, fmt.Errorf("%s matches %d profiles (%s) that its GIC and CPUs cannot tell apart", f.name(), len(cands), names(cands))
	}
	// Name profiles of the same SoC, to help a port start from one.
	var soc []*platforms.Board
	for _, b := range boards {
		for _, c := range b.Compatible[min(1, len(b.Compatible)):] {
			if slices.Contains(f.Compatible, c) {
				soc = append(soc, b)
				break
			}
		}
	}
	hint := "; start a port with `tandem bsp import`"
	if len(soc) > 0 {
		hint = fmt.Sprintf("; same SoC as %s: start a port with `tandem bsp import`", names(soc))
	}
	return nil, fmt.Errorf("%w %s (root compatible %q)%s", ErrNoMatch, f.name(), f.Compatible, hint)
}

func (f *Facts) name() string {
	if f.File == "" {
		return "the device tree"
	}
	return filepath.Base(f.File)
}

func names(bs []*platforms.Board) string {
	n := make([]string, len(bs))
	for i, b := range bs {
		n[i] = b.Name
	}
	return strings.Join(n, ", ")
}

// Finding is one comparison of a profile field with the DTB.
type Finding struct {
	Field string `json:"field"`
	OK    bool   `json:"ok"`
	Want  string `json:"want,omitempty"`
	Got   string `json:"got,omitempty"`
	// Note explains an accepted difference (a node the bootloader adds).
	Note string `json:"note,omitempty"`
}

func (fd Finding) String() string {
	mark := "✓"
	if !fd.OK {
		mark = "✗"
	}
	s := fmt.Sprintf("%s %s", mark, fd.Field)
	if !fd.OK {
		s += fmt.Sprintf(": profile says %s, DTB says %s", fd.Want, fd.Got)
	} else if fd.Got != "" {
		s += ": " + fd.Got
	}
	if fd.Note != "" {
		s += " (" + fd.Note + ")"
	}
	return s
}

// Check compares a profile with the facts of its DTB, field by field.
func Check(b *platforms.Board, f *Facts) []Finding {
	var out []Finding
	add := func(field string, ok bool, want, got, note string) {
		out = append(out, Finding{Field: field, OK: ok, Want: want, Got: got, Note: note})
	}
	eq := func(field, want, got string) { add(field, want == got, want, got, "") }

	add("compatible", len(b.Compatible) > 0 && slices.Contains(f.Compatible, b.Compatible[0]),
		fmt.Sprintf("%q", b.Compatible), fmt.Sprintf("%q", f.Compatible), "")

	eq("CPU count", fmt.Sprint(b.CPU.Count), fmt.Sprint(len(f.CPUs)))
	// Every cluster, not only the first: a big.LITTLE board's profile
	// must name its big cores too.
	eq("CPU compatible", ClusterString(ProfileClusters(b)), ClusterString(f.Clusters()))

	switch {
	case len(f.Memory) == 0 && b.MemoryFromBootloader:
		add("memory", true, "", "no memory node", "the bootloader adds it at boot")
	default:
		eq("memory", fmt.Sprint(b.Memory), fmt.Sprint(f.Memory))
	}

	if f.GIC == nil {
		add("GIC", false, fmt.Sprintf("GICv%d", b.GIC.Version), "none", "")
	} else {
		eq("GIC version", fmt.Sprint(b.GIC.Version), fmt.Sprint(f.GIC.Version))
		eq("GIC compatible", b.GIC.Compatible, f.GIC.Compatible[0])
		var want []platforms.Region
		for _, r := range b.GIC.Regions() {
			want = append(want, r.Region)
		}
		got := f.GIC.Regions
		if f.GIC.Version == 3 && len(got) > 2 {
			// GICv3's optional GICC/GICH/GICV follow the redistributors;
			// a KVM host uses none of them.
			got = got[:2]
		}
		eq("GIC regions", fmt.Sprint(want), fmt.Sprint(got))
		// A maintenance interrupt the image builder adds counts as there.
		gotVirt := f.GIC.HasVirt() || (b.GIC.MaintenanceNotInDTB && f.GIC.HasVirtRegions())
		eq("GIC virtualization interface", yesNo(b.GIC.HasVirt()), yesNo(gotVirt))
		switch {
		case b.GIC.MaintenanceNotInDTB && !f.GIC.HasMaintenance:
			add("GIC maintenance PPI", true, "", "absent", fmt.Sprintf("the image builder adds PPI %d to the DTB", b.GIC.MaintenancePPI))
		case b.GIC.MaintenancePPI != 0 || f.GIC.HasMaintenance:
			eq("GIC maintenance PPI", fmt.Sprint(b.GIC.MaintenancePPI), maintString(f.GIC))
		}
	}

	if b.Timer.HypPPI == 0 && b.Timer.PhysPPI == 0 {
		add("architected timer", f.Timer == nil, "none", timerString(f.Timer), "")
	} else if f.Timer == nil {
		add("architected timer", false, b.Timer.Compatible, "none", "")
	} else {
		want := []uint32{b.Timer.SecurePPI, b.Timer.PhysPPI, b.Timer.VirtPPI, b.Timer.HypPPI}
		got, note := f.Timer.PPIs, ""
		// The arm,armv8-timer binding's optional fifth interrupt is the
		// hypervisor's virtual timer (ARMv8.1 VHE), which newer device
		// trees list (QEMU 10's virt board does): not a profile's
		// concern, so it is only noted.
		if len(got) == 5 {
			got, note = got[:4], fmt.Sprintf("and the hypervisor virtual timer, PPI %d", got[4])
		}
		add("timer PPIs (secure, physical, virtual, hypervisor)", slices.Equal(want, got), fmt.Sprint(want), fmt.Sprint(got), note)
	}

	if f.Console == nil && b.Console.NotInDTB {
		add("console", true, "", "none named", "the boot script passes console="+b.Console.Linux)
	} else if f.Console == nil {
		add("console", false, fmt.Sprintf("%s at %#x", b.Console.Compatible, b.Console.Base), "none", "")
	} else {
		add("console", f.Console.Base == b.Console.Base && slices.Contains(f.Console.Compatible, b.Console.Compatible),
			fmt.Sprintf("%s at %#x", b.Console.Compatible, b.Console.Base),
			fmt.Sprintf("%s at %#x", first(f.Console.Compatible), f.Console.Base), "via "+f.Console.Via)
	}

	out = append(out, checkSMP(b, f))
	return out
}

// ProfileClusters returns the profile's cores by kind: its Clusters, or
// one cluster of Count × Compatible where it lists none.
func ProfileClusters(b *platforms.Board) []platforms.Cluster {
	if len(b.CPU.Clusters) > 0 {
		return b.CPU.Clusters
	}
	if b.CPU.Count == 0 && b.CPU.Compatible == "" {
		return nil
	}
	return []platforms.Cluster{{Compatible: b.CPU.Compatible, Count: b.CPU.Count}}
}

// ClusterString names the cores: the compatible alone for one kind
// ("arm,cortex-a7"), as the profiles' CPU.Compatible does; counts and
// compatibles for several ("4× arm,cortex-a53 + 2× arm,cortex-a72");
// "none" for none.
func ClusterString(cs []platforms.Cluster) string {
	switch len(cs) {
	case 0:
		return "none"
	case 1:
		return cs[0].Compatible
	}
	return ClusterCounts(cs)
}

// ClusterCounts names the cores with their counts, one kind or several:
// "4× arm,cortex-a9", "4× arm,cortex-a53 + 2× arm,cortex-a72".
func ClusterCounts(cs []platforms.Cluster) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = fmt.Sprintf("%d× %s", c.Count, c.Compatible)
	}
	return strings.Join(parts, " + ")
}

func checkSMP(b *platforms.Board, f *Facts) Finding {
	method := ""
	if len(f.CPUs) > 0 {
		method = f.CPUs[0].EnableMethod
	}
	fd := Finding{Field: "SMP bring-up", Want: string(b.SMP), Got: method}
	switch b.SMP {
	case platforms.SMPPSCI:
		switch {
		case f.PSCI != nil:
			fd.OK, fd.Got = true, "psci node, method "+f.PSCI.Method
		case b.PSCIFromBootloader:
			fd.OK, fd.Got, fd.Note = true, "no /psci node", "U-Boot adds /psci at boot"
		default:
			fd.Got = "no /psci node"
		}
	case platforms.SMPSpinTable:
		fd.OK = method == "spin-table"
	case platforms.SMPPlatform:
		// Platform SMP is kernel code keyed on the SoC: any enable-method
		// other than the generic ones.
		fd.OK = method != "psci" && method != "spin-table"
		if fd.Got == "" {
			fd.Got = "no enable-method"
		}
	}
	return fd
}

func maintString(g *GIC) string {
	if !g.HasMaintenance {
		return "absent"
	}
	return fmt.Sprint(g.MaintenancePPI)
}

func timerString(t *Timer) string {
	if t == nil {
		return "none"
	}
	return fmt.Sprintf("%s PPIs %v", first(t.Compatible), t.PPIs)
}

func first(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return ss[0]
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// Mismatches returns the findings that failed.
func Mismatches(fs []Finding) []Finding {
	var bad []Finding
	for _, f := range fs {
		if !f.OK {
			bad = append(bad, f)
		}
	}
	return bad
}
