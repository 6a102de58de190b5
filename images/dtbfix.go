package images

import (
	"fmt"
	"os"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
)

// Interrupt specifier cells of the GIC binding
// (include/dt-bindings/interrupt-controller/arm-gic.h).
const (
	gicPPI             = 1
	irqTypeLevelHigh   = 4
	gicCPUMaskShift    = 8
	maxGICv2CPUMaskBit = 8
)

// boardDTB reads the board's device tree and applies the fixes its
// profile asks for. Today one: a GICv2 node without its maintenance
// interrupt (MaintenanceNotInDTB, OMAP5) gets interrupts = <GIC_PPI n
// (GIC_CPU_MASK_SIMPLE(cpus) | IRQ_TYPE_LEVEL_HIGH)>; without it KVM's
// vgic-v2 does not initialise. It returns the DTB and what it changed.
func boardDTB(b *platforms.Board, file string) ([]byte, []string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, err
	}
	if !b.GIC.MaintenanceNotInDTB {
		return raw, nil, nil
	}
	t, err := dtb.Parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("board device tree %s: %w", file, err)
	}
	var fixed []string
	for _, n := range t.FindCompatible(b.GIC.Compatible) {
		if n.Has("interrupts") || n.Has("interrupts-extended") {
			continue
		}
		cpus := b.CPU.Count
		if cpus > maxGICv2CPUMaskBit {
			cpus = maxGICv2CPUMaskBit
		}
		flags := uint32(1<<cpus-1)<<gicCPUMaskShift | irqTypeLevelHigh
		n.SetU32s("interrupts", gicPPI, b.GIC.MaintenancePPI, flags)
		fixed = append(fixed, fmt.Sprintf("%s: added the GIC maintenance interrupt <%d %d %#x>", n.Path(), gicPPI, b.GIC.MaintenancePPI, flags))
	}
	if len(fixed) == 0 {
		return raw, nil, nil
	}
	out, err := t.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("board device tree %s: writing the fixed tree: %w", file, err)
	}
	return out, fixed, nil
}
