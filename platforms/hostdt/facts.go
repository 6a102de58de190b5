// Package hostdt reads a host's flattened device tree into board facts
// (interrupt controller and its virtualization interface, timer PPIs,
// memory, CPUs, console, PSCI), matches a DTB to a board profile, checks a
// profile against a DTB, and describes host devices to pass through to a
// guest.
package hostdt

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
)

// Facts is what a host DTB says about the board. A nil pointer field means
// the DTB has no such node; Notes says what could not be read and why.
type Facts struct {
	// File names the DTB for messages ("" when parsed from memory).
	File       string
	Model      string
	Compatible []string
	CPUs       []CPU
	// Memory is the RAM banks of the device_type = "memory" nodes.
	Memory []platforms.Region
	// InterruptController is the controller devices' interrupts go to
	// unless they say otherwise: the root's interrupt-parent or, where
	// the root names none, the first interrupt controller in the tree.
	// The GIC on most GIC boards; on others what the board has instead
	// (the Raspberry Pi 3's brcm,bcm2836-armctrl-ic, an STM32F4's
	// arm,armv7m-nvic). Nil for a tree without interrupt controllers.
	InterruptController *Controller
	GIC                 *GIC
	Timer               *Timer
	Console             *Console
	PSCI                *PSCI
	Notes               []string
}

// CPU is one /cpus/cpu node.
type CPU struct {
	Path string
	// Compatible is the node's first compatible: the core ("arm,cortex-a72").
	Compatible   string
	Reg          uint64 // MPIDR affinity bits; 0 where #address-cells is 0 (one core)
	EnableMethod string // on the node or, as sun6i does, on /cpus
}

// Clusters groups the cores by compatible, in the order each first
// appears under /cpus: a big.LITTLE RK3399 lists four Cortex-A53s, then
// two Cortex-A72s, and gives [{arm,cortex-a53 4} {arm,cortex-a72 2}].
func (f *Facts) Clusters() []platforms.Cluster {
	var cs []platforms.Cluster
	for _, c := range f.CPUs {
		i := slices.IndexFunc(cs, func(k platforms.Cluster) bool { return k.Compatible == c.Compatible })
		if i < 0 {
			cs = append(cs, platforms.Cluster{Compatible: c.Compatible})
			i = len(cs) - 1
		}
		cs[i].Count++
	}
	return cs
}

// GIC is the Arm interrupt controller as the DTB describes it.
type GIC struct {
	Path       string
	Compatible []string
	// Version is 2 or 3.
	Version int
	// Regions are the reg entries translated to CPU physical addresses:
	// GICv2: GICD, GICC, GICH, GICV; GICv3: GICD, GICR..., GICC, GICH, GICV.
	Regions []platforms.Region
	// MaintenancePPI is the maintenance interrupt (PPI number), valid when
	// HasMaintenance.
	MaintenancePPI uint32
	HasMaintenance bool
}

// HasVirt reports whether the GIC exposes what KVM needs: a maintenance
// interrupt, and GICv3 or GICv2 with GICH and GICV (reg entries 3 and 4).
// Without the maintenance interrupt Linux's GIC drivers, v2 and v3 alike,
// hand KVM no virtual interface at all (gic_of_setup_kvm_info in
// drivers/irqchip/irq-gic.c and irq-gic-v3.c returns early), and
// kvm_vgic_hyp_init fails.
func (g *GIC) HasVirt() bool {
	if g == nil || !g.HasMaintenance {
		return false
	}
	return g.Version == 3 || g.HasVirtRegions()
}

// HasVirtRegions reports whether the GIC has the regions of the
// virtualization interface: always on GICv3 (its system registers), GICH
// and GICV (reg entries 3 and 4) on GICv2.
func (g *GIC) HasVirtRegions() bool {
	return g != nil && (g.Version == 3 || len(g.Regions) >= 4)
}

// Timer is the architected timer node.
type Timer struct {
	Path       string
	Compatible []string
	// Controller is the interrupt controller its interrupts go to: the
	// GIC on a board that has one, a SoC's own per-core controller on
	// others (the BCM2836/7 "brcm,bcm2836-l1-intc" of the Raspberry Pi 2
	// and 3). Nil when the node lists no interrupts.
	Controller *Controller
	// PPIs are the interrupt numbers in binding order: secure physical,
	// non-secure physical, virtual, hypervisor (the last may be missing).
	// Empty when the interrupts do not go to the GIC (OnGIC is false).
	PPIs []uint32
	// OnGIC says the interrupts go to the GIC, as GIC PPIs.
	OnGIC bool
}

// HypPPI returns the hypervisor timer PPI, if the node lists it.
func (t *Timer) HypPPI() (uint32, bool) {
	if t == nil || len(t.PPIs) < 4 {
		return 0, false
	}
	return t.PPIs[3], true
}

// Controller is an interrupt controller (or nexus) node.
type Controller struct {
	Path       string
	Compatible []string
}

func controller(n *dtb.Node) *Controller {
	c := &Controller{Path: n.Path()}
	c.Compatible, _ = n.Strings("compatible")
	return c
}

func (c *Controller) String() string {
	if c == nil {
		return "none"
	}
	if len(c.Compatible) == 0 {
		return c.Path
	}
	return fmt.Sprintf("%s (%s)", c.Path, strings.Join(c.Compatible, ", "))
}

// Console is the host console UART.
type Console struct {
	Path       string
	Compatible []string
	Base       uint64
	// Options follow ':' in stdout-path ("115200n8").
	Options string
	// Via says how it was found: "stdout-path" or "bootargs".
	Via string
}

// PSCI is the /psci node.
type PSCI struct {
	Path       string
	Compatible []string
	Method     string // "smc" or "hvc"
}

// gicCompatibles are the GIC bindings' compatibles
// (Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml and
// arm,gic-v3.yaml), with their architecture version.
var gicCompatibles = []struct {
	compat  string
	version int
}{
	{"arm,gic-v3", 3},
	{"arm,gic-400", 2},
	{"arm,cortex-a15-gic", 2},
	{"arm,cortex-a7-gic", 2},
	{"arm,cortex-a9-gic", 2},
	{"arm,cortex-a5-gic", 2},
	{"arm,arm11mp-gic", 2},
	{"arm,arm1176jzf-devchip-gic", 2},
	{"qcom,msm-qgic2", 2},
}

// timerCompatibles are the architected timer's (arm,arch_timer.yaml).
var timerCompatibles = []string{"arm,armv8-timer", "arm,armv7-timer"}

// ReadFile parses the DTB at path and reads its facts.
func ReadFile(path string) (*Facts, *dtb.Tree, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading host DTB: %w", err)
	}
	t, err := dtb.Parse(b)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing host DTB %s: %w", path, err)
	}
	f, err := Read(t)
	if err != nil {
		return nil, nil, fmt.Errorf("host DTB %s: %w", path, err)
	}
	f.File = path
	return f, t, nil
}

// ErrNoRoot is returned for a tree without a root compatible: not a board
// device tree.
var ErrNoRoot = errors.New("root node has no compatible: not a board device tree")

// Read reads the facts from a parsed tree. A DTB that lacks a part (no
// timer, no console) is not an error: the field stays nil with a note. A
// part that is present but malformed is an error naming the node.
func Read(t *dtb.Tree) (*Facts, error) {
	f := &Facts{}
	var err error
	if f.Compatible, err = t.Root.Strings("compatible"); err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNoRoot, err)
	}
	f.Model, _ = t.Root.String("model")
	steps := []struct {
		name string
		fn   func(*dtb.Tree, *Facts) error
	}{
		{"cpus", readCPUs},
		{"memory", readMemory},
		{"interrupt controller", readGIC},
		{"timer", readTimer},
		{"console", readConsole},
		{"psci", readPSCI},
	}
	for _, s := range steps {
		if err := s.fn(t, f); err != nil {
			return nil, fmt.Errorf("reading %s: %w", s.name, err)
		}
	}
	return f, nil
}

func (f *Facts) note(format string, args ...any) {
	f.Notes = append(f.Notes, fmt.Sprintf(format, args...))
}

func readCPUs(t *dtb.Tree, f *Facts) error {
	cpus := t.Root.Child("cpus")
	if cpus == nil {
		f.note("no /cpus node")
		return nil
	}
	shared, _ := cpus.String("enable-method")
	for _, c := range cpus.Children() {
		if dt, _ := c.String("device_type"); dt != "cpu" {
			continue
		}
		cpu := CPU{Path: c.Path(), EnableMethod: shared}
		if cs, err := c.Strings("compatible"); err == nil && len(cs) > 0 {
			cpu.Compatible = cs[0]
		}
		if m, err := c.String("enable-method"); err == nil {
			cpu.EnableMethod = m
		}
		// A single core under #address-cells = <0> has no reg (the
		// VT8500 and WM8xxx DTBs): its MPIDR affinity is 0.
		var regs []uint32
		if c.Has("reg") {
			var err error
			if regs, err = c.U32s("reg"); err != nil {
				return err
			}
		}
		for _, r := range regs {
			cpu.Reg = cpu.Reg<<32 | uint64(r)
		}
		f.CPUs = append(f.CPUs, cpu)
	}
	if len(f.CPUs) == 0 {
		f.note("/cpus has no cpu nodes")
	}
	return nil
}

func readMemory(t *dtb.Tree, f *Facts) error {
	for _, n := range t.Root.Children() {
		if dt, _ := n.String("device_type"); dt != "memory" {
			continue
		}
		regs, err := n.Reg()
		if err != nil {
			return err
		}
		for _, r := range regs {
			if r.Size != 0 {
				f.Memory = append(f.Memory, platforms.Region{Base: r.Address, Size: r.Size})
			}
		}
	}
	if len(f.Memory) == 0 {
		f.note("no memory node: the bootloader must add one")
	}
	return nil
}

// findGIC returns the first node of the most specific GIC compatible.
func findGIC(t *dtb.Tree) (*dtb.Node, int) {
	for _, g := range gicCompatibles {
		for _, n := range t.FindCompatible(g.compat) {
			if n.Has("interrupt-controller") {
				return n, g.version
			}
		}
	}
	return nil, 0
}

func readGIC(t *dtb.Tree, f *Facts) error {
	f.InterruptController = mainController(t)
	n, version := findGIC(t)
	if n == nil {
		if f.InterruptController != nil {
			f.note("no Arm GIC node: interrupts go to %s", f.InterruptController)
		} else {
			f.note("no Arm GIC node, and no interrupt controller")
		}
		return nil
	}
	g := &GIC{Path: n.Path(), Version: version}
	g.Compatible, _ = n.Strings("compatible")
	regs, err := n.Reg()
	if err != nil {
		return err
	}
	for _, r := range regs {
		a, err := Translate(n, r.Address)
		if err != nil {
			return err
		}
		g.Regions = append(g.Regions, platforms.Region{Base: a, Size: r.Size})
	}
	if hasInterrupts(n) {
		irqs, err := t.InterruptSpecs(n)
		if err != nil {
			return err
		}
		// The maintenance interrupt is the GIC's own PPI, the first entry
		// (arm,gic.yaml, arm,gic-v3.yaml).
		if len(irqs) > 0 {
			switch s := irqs[0].Spec; {
			case irqs[0].Parent != n:
				f.note("GIC %s's interrupt goes to %s, not to the GIC itself: not a maintenance interrupt", g.Path, irqs[0].Parent.Path())
			case len(s) >= 2 && s[0] == gicPPI:
				g.MaintenancePPI, g.HasMaintenance = s[1], true
			}
		}
	}
	switch {
	case !g.HasVirtRegions():
		f.note("GICv%d at %s has no virtualization interface (no GICH/GICV regions)", g.Version, g.Path)
	case !g.HasMaintenance:
		f.note("GICv%d at %s lists no maintenance interrupt", g.Version, g.Path)
	}
	f.GIC = g
	return nil
}

// mainController finds the Facts.InterruptController.
func mainController(t *dtb.Tree) *Controller {
	if t.Root.Has("interrupt-parent") {
		if p, err := t.InterruptParent(t.Root); err == nil {
			return controller(p)
		}
	}
	var first *dtb.Node
	_ = t.Root.Walk(func(n *dtb.Node) error {
		if first == nil && n.Has("interrupt-controller") {
			first = n
		}
		return nil
	})
	if first == nil {
		return nil
	}
	return controller(first)
}

// GIC interrupt specifier types (first cell, arm,gic.yaml).
const (
	gicSPI = 0
	gicPPI = 1
)

func readTimer(t *dtb.Tree, f *Facts) error {
	var n *dtb.Node
	for _, c := range timerCompatibles {
		if ns := t.FindCompatible(c); len(ns) > 0 {
			n = ns[0]
			break
		}
	}
	if n == nil {
		f.note("no architected timer (arm,armv7-timer or arm,armv8-timer)")
		return nil
	}
	tm := &Timer{Path: n.Path()}
	tm.Compatible, _ = n.Strings("compatible")
	f.Timer = tm
	if !hasInterrupts(n) {
		f.note("timer %s lists no interrupts", n.Path())
		return nil
	}
	irqs, err := t.InterruptSpecs(n)
	if err != nil {
		return err
	}
	if len(irqs) == 0 {
		f.note("timer %s lists no interrupts", n.Path())
		return nil
	}
	tm.Controller = controller(irqs[0].Parent)
	if f.GIC == nil || tm.Controller.Path != f.GIC.Path {
		f.note("timer %s interrupts go to %s, not to an Arm GIC", n.Path(), tm.Controller)
		return nil
	}
	var ppis []uint32
	for _, irq := range irqs {
		if s := irq.Spec; irq.Parent.Path() != f.GIC.Path || len(s) < 2 || s[0] != gicPPI {
			return fmt.Errorf("node %s: timer interrupt %v of %s is not a GIC PPI", n.Path(), s, irq.Parent.Path())
		}
		ppis = append(ppis, irq.Spec[1])
	}
	tm.PPIs, tm.OnGIC = ppis, true
	if _, ok := tm.HypPPI(); !ok {
		f.note("timer %s lists no hypervisor timer interrupt", n.Path())
	}
	return nil
}

// hasInterrupts says whether n lists interrupts in either form.
func hasInterrupts(n *dtb.Node) bool {
	return n.Has("interrupts") || n.Has("interrupts-extended")
}

func readConsole(t *dtb.Tree, f *Facts) error {
	n, opts, err := t.StdoutPath()
	via := "stdout-path"
	if err != nil {
		// Older DTBs (Calxeda) name the console only in bootargs; take the
		// first UART of the driver that console= names.
		n, via = consoleFromBootargs(t), "bootargs"
		if n == nil {
			f.note("no console: no /chosen/stdout-path (%v) and no console= in bootargs naming a UART in the tree", err)
			return nil
		}
	}
	c := &Console{Path: n.Path(), Options: opts, Via: via}
	c.Compatible, _ = n.Strings("compatible")
	if n.Has("reg") {
		regs, err := n.Reg()
		if err != nil {
			return err
		}
		if len(regs) > 0 {
			if c.Base, err = Translate(n, regs[0].Address); err != nil {
				return err
			}
		}
	}
	f.Console = c
	return nil
}

// consoleDrivers maps console= device prefixes to UART compatibles.
var consoleDrivers = map[string]string{
	"ttyAMA": "arm,pl011",
	"ttyS":   "ns16550a",
	"ttySAC": "samsung,exynos4210-uart",
}

func consoleFromBootargs(t *dtb.Tree) *dtb.Node {
	chosen := t.Root.Child("chosen")
	if chosen == nil {
		return nil
	}
	args, err := chosen.String("bootargs")
	if err != nil {
		return nil
	}
	for _, a := range strings.Fields(args) {
		dev, ok := strings.CutPrefix(a, "console=")
		if !ok {
			continue
		}
		dev, _, _ = strings.Cut(dev, ",")
		for prefix, compat := range consoleDrivers {
			if strings.HasPrefix(dev, prefix) {
				if ns := t.FindCompatible(compat); len(ns) > 0 {
					return ns[0]
				}
			}
		}
	}
	return nil
}

func readPSCI(t *dtb.Tree, f *Facts) error {
	n := t.Root.Child("psci")
	if n == nil {
		for _, c := range []string{"arm,psci-1.0", "arm,psci-0.2", "arm,psci"} {
			if ns := t.FindCompatible(c); len(ns) > 0 {
				n = ns[0]
				break
			}
		}
	}
	if n == nil {
		f.note("no /psci node")
		return nil
	}
	p := &PSCI{Path: n.Path()}
	p.Compatible, _ = n.Strings("compatible")
	p.Method, _ = n.String("method")
	f.PSCI = p
	return nil
}

// Translate maps a bus address of node n's reg to a CPU physical address
// through the ranges of each ancestor bus (devicetree spec 2.3.8). An
// empty ranges is an identity map; a bus without ranges is treated as one
// too (simple-bus nodes that omit it are common in old DTBs).
func Translate(n *dtb.Node, addr uint64) (uint64, error) {
	for bus := n.Parent(); bus != nil && bus.Parent() != nil; bus = bus.Parent() {
		p := bus.Prop("ranges")
		if p == nil || len(p.Value) == 0 {
			continue
		}
		cells, err := p.U32s()
		if err != nil {
			return 0, fmt.Errorf("node %s: ranges: %w", bus.Path(), err)
		}
		cac := cellsOf(bus, "#address-cells", 2)
		csc := cellsOf(bus, "#size-cells", 1)
		pac := cellsOf(bus.Parent(), "#address-cells", 2)
		per := int(cac + pac + csc)
		if cac > 2 || pac > 2 || csc > 2 || per == 0 || len(cells)%per != 0 {
			return 0, fmt.Errorf("node %s: ranges has %d cells, not a multiple of %d+%d+%d", bus.Path(), len(cells), cac, pac, csc)
		}
		found := false
		for i := 0; i < len(cells); i += per {
			child := join(cells[i : i+int(cac)])
			parent := join(cells[i+int(cac) : i+int(cac+pac)])
			size := join(cells[i+int(cac+pac) : i+per])
			if addr >= child && addr-child < size {
				addr = parent + (addr - child)
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("node %s: address %#x is outside every ranges entry of %s", n.Path(), addr, bus.Path())
		}
	}
	return addr, nil
}

func cellsOf(n *dtb.Node, name string, def uint32) uint32 {
	if n == nil {
		return def
	}
	v, err := n.U32(name)
	if err != nil {
		return def
	}
	return v
}

func join(cs []uint32) uint64 {
	var v uint64
	for _, c := range cs {
		v = v<<32 | uint64(c)
	}
	return v
}
