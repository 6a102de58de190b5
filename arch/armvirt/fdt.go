package armvirt

import (
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/devices"
)

// Hardware is everything a guest's device tree says. It is plain data, so
// the tree can be generated, and tested, without KVM.
type Hardware struct {
	// MPIDRs are the vCPUs' MPIDR values, in vCPU order.
	MPIDRs []uint64
	// MemorySize is the RAM from RAMBase.
	MemorySize uint64
	GIC        GICVersion
	// PSCIVersion is KVM_REG_ARM_PSCI_VERSION of the vCPUs.
	PSCIVersion uint64
	// Virtio are the virtio-mmio transports, in slot order.
	Virtio []devices.Placement
	// Passthrough are host device nodes passed through, described for
	// this guest (platforms/hostdt.Passthrough): reg in guest addresses
	// inside the PassthroughBase window, interrupts (if any) as guest
	// SPIs, properties naming host phandles removed.
	Passthrough []*dtb.Node
	// Cmdline is the kernel command line.
	Cmdline string
	// InitrdStart and InitrdEnd locate the initrd; both 0 for none.
	InitrdStart, InitrdEnd uint64
	// RNGSeed (64 bytes is customary) and KASLRSeed seed the guest's
	// entropy pool and its KASLR offset. Callers take them from
	// crypto/rand; tests fix them. KASLRSeed is written only for
	// profiles with KASLR.
	RNGSeed   []byte
	KASLRSeed uint64
	// Watchdog, when set, describes an SP805 at WatchdogBase.
	Watchdog *Watchdog
	// TPM says the guest has a TPM's TIS registers at TPMBase.
	TPM bool
	// PMU says the vCPUs have a PMUv3 whose overflow interrupt is
	// PMUPPI.
	PMU bool
}

// Watchdog is the guest's SP805 watchdog.
type Watchdog struct {
	// TimeoutSec is the timeout-sec the driver starts with
	// (Documentation/devicetree/bindings/watchdog/watchdog.yaml).
	TimeoutSec uint32
}

// Profile is what differs between the guest architectures' trees.
type Profile struct {
	// Model and Compatible are the root node's.
	Model      string
	Compatible []string
	// CPU is the cpu nodes' compatible; Timer the architected timer's
	// (Documentation/devicetree/bindings/timer/arm,arch_timer.yaml).
	CPU, Timer string
	// KASLR says the kernel reads /chosen/kaslr-seed (arm64 does).
	KASLR bool
}

// Interrupt specifier encodings of the GIC binding
// (Documentation/devicetree/bindings/interrupt-controller/arm,gic.yaml
// and arm,gic-v3.yaml; include/dt-bindings/interrupt-controller/).
const (
	gicSPI = 0 // GIC_SPI: number is the SPI (INTID - 32)
	gicPPI = 1 // GIC_PPI: number is the PPI (INTID - 16)

	irqTypeEdgeRising = 1 // IRQ_TYPE_EDGE_RISING
	irqTypeLevelHigh  = 4 // IRQ_TYPE_LEVEL_HIGH

	// gicv2PPICPUShift places GICv2's PPI CPU mask (GIC_CPU_MASK_SIMPLE)
	// in the flags cell.
	gicv2PPICPUShift = 8
)

// Architected timer PPIs (Arm Base System Architecture; the same as
// QEMU's virt board): secure EL1 physical, non-secure EL1 physical,
// virtual, and EL2 (hypervisor) physical timer.
var timerPPIs = []uint32{13, 14, 11, 10}

// apbClockHz is the PrimeCell bus clock the UART and RTC nodes name. The
// PL011 model has no baud-rate timing, so any sane value works; 24 MHz is
// what QEMU's virt board says.
const apbClockHz = 24000000

// mpidrAffinity masks MPIDR to Aff2.Aff1.Aff0, the cpu nodes' reg for
// #address-cells = 1 (Documentation/devicetree/bindings/arm/cpus.yaml).
// Aff3 is zero for every vCPU KVM numbers below 2^20.
const mpidrAffinity = 0x00ffffff

// ErrNoCPUs is returned by DeviceTree for a guest without vCPUs.
var ErrNoCPUs = errors.New("no vCPUs")

// DeviceTree generates the device tree of a guest of profile p.
//
// The root has #address-cells and #size-cells of 2 for both guest
// architectures, as QEMU's virt board does: a 32-bit kernel reads 64-bit
// cells whether or not it was built with LPAE, and with all of the map
// below 4 GiB the values fit a 32-bit physical address too.
func DeviceTree(p Profile, h Hardware) (*dtb.Tree, error) {
	if len(h.MPIDRs) == 0 {
		return nil, ErrNoCPUs
	}
	if h.GIC == GICv2 && len(h.MPIDRs) > 8 {
		return nil, fmt.Errorf("%d vCPUs: a GICv2 serves at most 8", len(h.MPIDRs))
	}
	t := dtb.New()
	root := t.Root
	root.SetU32("#address-cells", 2).SetU32("#size-cells", 2).
		SetString("model", p.Model).
		SetStrings("compatible", p.Compatible...)

	gic, err := addGIC(root, h)
	if err != nil {
		return nil, err
	}
	gicPh := t.Phandle(gic)
	root.SetU32("interrupt-parent", gicPh)

	if err := addCPUs(root, p.CPU, h.MPIDRs); err != nil {
		return nil, err
	}
	memory := root.AddNodeAt("memory", RAMBase).SetString("device_type", "memory")
	if err := memory.SetReg(dtb.Region{Address: RAMBase, Size: h.MemorySize}); err != nil {
		return nil, err
	}

	psci := root.AddNode("psci").SetString("method", "hvc")
	switch {
	case h.PSCIVersion >= PSCI10:
		psci.SetStrings("compatible", "arm,psci-1.0", "arm,psci-0.2")
	case h.PSCIVersion == PSCI02:
		psci.SetStrings("compatible", "arm,psci-0.2")
	default:
		return nil, fmt.Errorf("PSCI version %#x: Tandem needs KVM's PSCI 0.2 or later", h.PSCIVersion)
	}

	ppiFlags := uint32(irqTypeLevelHigh)
	if h.GIC == GICv2 {
		ppiFlags |= (1<<len(h.MPIDRs) - 1) << gicv2PPICPUShift
	}
	var timer []uint32
	for _, ppi := range timerPPIs {
		timer = append(timer, gicPPI, ppi, ppiFlags)
	}
	root.AddNode("timer").
		SetStrings("compatible", p.Timer).
		SetU32s("interrupts", timer...).
		SetEmpty("always-on")
	if h.PMU {
		// Documentation/devicetree/bindings/arm/pmu.yaml: one PPI for
		// all CPUs, level-triggered like the timer's.
		root.AddNode("pmu").
			SetStrings("compatible", "arm,armv8-pmuv3").
			SetU32s("interrupts", gicPPI, PMUPPI, ppiFlags)
	}

	clkPh := fixedClock(t, "apb-pclk", apbClockHz, "clk24mhz")

	uart := root.AddNodeAt("pl011", UARTBase).
		SetStrings("compatible", "arm,pl011", "arm,primecell").
		SetU32s("interrupts", gicSPI, UARTSPI, irqTypeEdgeRising).
		SetU32s("clocks", clkPh, clkPh).
		SetStrings("clock-names", "uartclk", "apb_pclk")
	if err := uart.SetReg(dtb.Region{Address: UARTBase, Size: UARTSize}); err != nil {
		return nil, err
	}
	rtc := root.AddNodeAt("pl031", RTCBase).
		SetStrings("compatible", "arm,pl031", "arm,primecell").
		SetU32s("interrupts", gicSPI, RTCSPI, irqTypeEdgeRising).
		SetU32s("clocks", clkPh).
		SetStrings("clock-names", "apb_pclk")
	if err := rtc.SetReg(dtb.Region{Address: RTCBase, Size: RTCSize}); err != nil {
		return nil, err
	}

	if h.Watchdog != nil {
		if err := addWatchdog(t, clkPh, *h.Watchdog); err != nil {
			return nil, err
		}
	}

	if h.TPM {
		if err := addTPM(root); err != nil {
			return nil, err
		}
	}

	// virtio-mmio interrupts arrive through irqfds, which pulse the
	// line: they must be edge-triggered in the GIC, or a pulse the vCPU
	// has not yet taken is lost when the line drops.
	for _, p := range h.Virtio {
		n := root.AddNodeAt("virtio_mmio", p.Base).
			SetStrings("compatible", "virtio,mmio").
			SetU32s("interrupts", gicSPI, p.IRQ, irqTypeEdgeRising).
			SetEmpty("dma-coherent")
		if err := n.SetReg(dtb.Region{Address: p.Base, Size: p.Size}); err != nil {
			return nil, err
		}
	}

	// A PrimeCell's bus driver enables its apb_pclk before it reads the
	// ID registers (drivers/amba/bus.c, amba_read_periphid): a passed
	// PrimeCell gets the guest's bus clock in place of the host's.
	for _, n := range h.Passthrough {
		c, err := t.CopyNode(root, n)
		if err != nil {
			return nil, fmt.Errorf("passed-through node: %w", err)
		}
		if c.IsCompatible("arm,primecell") {
			c.SetU32s("clocks", clkPh).SetStrings("clock-names", "apb_pclk")
		}
	}

	chosen := root.AddNode("chosen").
		SetString("bootargs", h.Cmdline).
		SetString("stdout-path", uart.Path())
	if p.KASLR {
		chosen.SetU64("kaslr-seed", h.KASLRSeed)
	}
	if len(h.RNGSeed) > 0 {
		chosen.SetBytes("rng-seed", h.RNGSeed)
	}
	if h.InitrdEnd > h.InitrdStart {
		chosen.SetU64("linux,initrd-start", h.InitrdStart).SetU64("linux,initrd-end", h.InitrdEnd)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("generated device tree: %w", err)
	}
	return t, nil
}

// addWatchdog describes the SP805 as its binding asks
// (Documentation/devicetree/bindings/watchdog/arm,sp805.yaml): the
// counter's clock first ("wdog_clk", whose rate sp805_wdt reads), the bus
// clock second ("apb_pclk", which the AMBA bus enables to read the
// PrimeCell ids). The interrupt is the first stage's; the line is an
// irqfd, so edge-triggered like the UART's.
func addWatchdog(t *dtb.Tree, apbClk uint32, w Watchdog) error {
	clkPh := fixedClock(t, "wdog-clk", WatchdogClockHz, "wdogclk")
	n := t.Root.AddNodeAt("watchdog", WatchdogBase).
		SetStrings("compatible", "arm,sp805", "arm,primecell").
		SetU32s("interrupts", gicSPI, WatchdogSPI, irqTypeEdgeRising).
		SetU32s("clocks", clkPh, apbClk).
		SetStrings("clock-names", "wdog_clk", "apb_pclk")
	if w.TimeoutSec > 0 {
		n.SetU32("timeout-sec", w.TimeoutSec)
	}
	return n.SetReg(dtb.Region{Address: WatchdogBase, Size: WatchdogSize})
}

// addTPM describes the TIS registers as the tcg,tpm-tis-mmio binding
// asks (Documentation/devicetree/bindings/tpm/tcg,tpm-tis-mmio.yaml;
// security/tpm/tpm_tis_mmio.txt in older trees), the compatible Linux's
// tpm_tis matches. The binding's interrupt is optional and
// there is none: the driver polls the status register, as it does on the
// x86 guests' TIS, and the device model raises nothing.
func addTPM(root *dtb.Node) error {
	n := root.AddNodeAt("tpm", TPMBase).SetStrings("compatible", "tcg,tpm-tis-mmio")
	return n.SetReg(dtb.Region{Address: TPMBase, Size: TPMSize})
}

func addGIC(root *dtb.Node, h Hardware) (*dtb.Node, error) {
	gic := root.AddNodeAt("intc", GICDistBase).
		SetU32("#interrupt-cells", 3).
		SetU32("#address-cells", 0).
		SetEmpty("interrupt-controller")
	switch h.GIC {
	case GICv3:
		redist := uint64(len(h.MPIDRs)) * 0x20000 // KVM_VGIC_V3_REDIST_SIZE each
		gic.SetStrings("compatible", "arm,gic-v3").SetU32("#redistributor-regions", 1)
		// The maintenance interrupt (PPI 9) is for a guest hypervisor;
		// KVM gives this guest none, so none is described.
		return gic, gic.SetReg(dtb.Region{Address: GICDistBase, Size: 0x10000}, dtb.Region{Address: GICv3RedistBase, Size: redist})
	case GICv2:
		gic.SetStrings("compatible", "arm,cortex-a15-gic")
		return gic, gic.SetReg(dtb.Region{Address: GICDistBase, Size: 0x1000}, dtb.Region{Address: GICv2CPUBase, Size: 0x2000})
	}
	return nil, fmt.Errorf("GIC version %d: want 2 or 3", h.GIC)
}

func addCPUs(root *dtb.Node, compatible string, mpidrs []uint64) error {
	cpus := root.AddNode("cpus").SetU32("#address-cells", 1).SetU32("#size-cells", 0)
	for i, m := range mpidrs {
		aff := m & mpidrAffinity
		if m>>32&0xff != 0 {
			return fmt.Errorf("vCPU %d: MPIDR %#x has Aff3 set, which one address cell cannot hold", i, m)
		}
		cpu := cpus.AddNodeAt("cpu", aff).
			SetString("device_type", "cpu").
			SetStrings("compatible", compatible).
			SetString("enable-method", "psci")
		if err := cpu.SetReg(dtb.Region{Address: aff}); err != nil {
			return err
		}
	}
	return nil
}

// fixedClock adds a fixed-rate clock node at the root and returns its
// phandle.
func fixedClock(t *dtb.Tree, name string, hz uint32, output string) uint32 {
	clk := t.Root.AddNode(name).
		SetStrings("compatible", "fixed-clock").
		SetU32("#clock-cells", 0).
		SetU32("clock-frequency", hz).
		SetString("clock-output-names", output)
	return t.Phandle(clk)
}
