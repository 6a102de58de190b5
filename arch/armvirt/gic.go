package armvirt

import (
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// GICVersion is the interrupt controller architecture a guest gets.
type GICVersion int

// The in-kernel GICs KVM offers.
const (
	GICv2 GICVersion = 2
	GICv3 GICVersion = 3
)

// ErrNoGIC means the host's KVM can create neither a vGICv3 nor a vGICv2.
var ErrNoGIC = errors.New("host KVM has no in-kernel GIC (neither KVM_DEV_TYPE_ARM_VGIC_V3 nor _V2)")

// GIC is the guest's in-kernel interrupt controller.
type GIC struct {
	Version GICVersion
	dev     *kvm.Device
}

// CreateGIC creates the vGIC and sets its addresses and number of
// interrupts. It runs before the vCPUs exist; Init follows once they all
// do. A GICv3 is preferred; a host whose GIC has only a GICv2 CPU
// interface (or a GICv3 with the v2 compatibility interface) gets a
// GICv2. want forces a version (0: either).
func CreateGIC(vm *kvm.VM, cpus int, want GICVersion) (*GIC, error) {
	if cpus < 1 || cpus > MaxCPUs {
		return nil, fmt.Errorf("%d vCPUs: ARM guests have 1 to %d", cpus, MaxCPUs)
	}
	try := []GICVersion{GICv3, GICv2}
	if want != 0 {
		try = []GICVersion{want}
	}
	for _, v := range try {
		typ := uint32(kvm.DevTypeARMVGICV3)
		if v == GICv2 {
			typ = kvm.DevTypeARMVGICV2
			if cpus > 8 {
				continue
			}
		}
		if !vm.TestDevice(typ) {
			continue
		}
		d, err := vm.CreateDevice(typ)
		if err != nil {
			return nil, fmt.Errorf("creating the GICv%d: %w", v, err)
		}
		g := &GIC{Version: v, dev: d}
		if err := g.configure(); err != nil {
			d.Close()
			return nil, fmt.Errorf("GICv%d: %w", v, err)
		}
		return g, nil
	}
	if want != 0 {
		return nil, fmt.Errorf("host KVM cannot create a GICv%d for %d vCPUs", want, cpus)
	}
	return nil, ErrNoGIC
}

func (g *GIC) configure() error {
	type region struct {
		name string
		attr uint64
		addr uint64
	}
	addrs := []region{
		{"distributor", kvm.VGICV3AddrTypeDist, GICDistBase},
		{"redistributors", kvm.VGICV3AddrTypeRedist, GICv3RedistBase},
	}
	if g.Version == GICv2 {
		addrs = []region{
			{"distributor", kvm.VGICV2AddrTypeDist, GICDistBase},
			{"CPU interface", kvm.VGICV2AddrTypeCPU, GICv2CPUBase},
		}
	}
	for _, a := range addrs {
		v := a.addr
		if err := g.dev.SetAttr(kvm.VGICGrpAddr, a.attr, &v); err != nil {
			return fmt.Errorf("setting the %s address %#x: %w", a.name, a.addr, err)
		}
	}
	if err := g.dev.SetAttr32(kvm.VGICGrpNrIRQs, 0, NumIRQs); err != nil {
		return fmt.Errorf("setting %d interrupts: %w", NumIRQs, err)
	}
	return nil
}

// Init finishes the vGIC (KVM_DEV_ARM_VGIC_CTRL_INIT). It must run after
// every vCPU is created and before any runs: KVM sizes the
// redistributors and private interrupts by the vCPUs that exist then, and
// sets up the default GSI routing that irqfds use (GSI n is SPI n).
func (g *GIC) Init() error {
	if g.dev == nil {
		return nil // a legacy GICv2
	}
	if err := g.dev.SetAttr(kvm.VGICGrpCtrl, kvm.VGICCtrlInit, nil); err != nil {
		return fmt.Errorf("initialising the GICv%d: %w", g.Version, err)
	}
	return nil
}

// Close closes the vGIC's device descriptor (the VM keeps the GIC).
func (g *GIC) Close() error {
	if g.dev == nil {
		return nil
	}
	return g.dev.Close()
}

// PSCI versions as KVM_REG_ARM_PSCI_VERSION reports them: major in bits
// 31:16, minor in 15:0.
const (
	PSCI02 = 0x00000002
	PSCI10 = 0x00010000
	PSCI11 = 0x00010001
)

// PSCIVersion reads the PSCI version KVM implements for a vCPU after
// KVM_ARM_VCPU_INIT. Kernels before 4.16 have no such register and
// implement PSCI 0.2.
func PSCIVersion(cpu *kvm.VCPU) uint64 {
	v, err := cpu.GetOneReg(kvm.RegPSCIVersion)
	if err != nil {
		return PSCI02
	}
	return v
}

// CreateLegacyGICv2 creates a GICv2 the way ARMv7 hosts before Linux 3.14
// offer one: KVM_CREATE_IRQCHIP, then KVM_ARM_SET_DEVICE_ADDR for the
// distributor and CPU interface. Such a vGIC has the kernel's default
// number of interrupts and initialises itself when a vCPU first runs, so
// Init and Close do nothing for it.
func CreateLegacyGICv2(vm *kvm.VM, cpus int) (*GIC, error) {
	if cpus < 1 || cpus > 8 {
		return nil, fmt.Errorf("%d vCPUs: a GICv2 serves 1 to 8", cpus)
	}
	if err := vm.CreateIRQChip(); err != nil {
		return nil, fmt.Errorf("creating the legacy GICv2: %w", err)
	}
	for _, r := range []struct {
		name      string
		typ, addr uint64
	}{
		{"distributor", kvm.VGICV2AddrTypeDist, GICDistBase},
		{"CPU interface", kvm.VGICV2AddrTypeCPU, GICv2CPUBase},
	} {
		if err := vm.ARMSetDeviceAddr(kvm.ARMDeviceAddrID(kvm.ARMDeviceVGICV2, r.typ), r.addr); err != nil {
			return nil, fmt.Errorf("legacy GICv2 %s: %w", r.name, err)
		}
	}
	return &GIC{Version: GICv2}, nil
}

// BootReg is one register the boot vCPU starts with.
type BootReg struct {
	Name    string // for messages: "x0", "pc", "cpsr"
	ID, Val uint64
}

// StartVCPU writes the boot vCPU's registers (none for a secondary, which
// PSCI CPU_ON starts) and returns the vCPU's MPIDR, which the device
// tree's cpu nodes must carry as their reg.
func StartVCPU(cpu *kvm.VCPU, regs []BootReg, mpidrID uint64) (uint64, error) {
	for _, r := range regs {
		if err := cpu.SetOneReg(r.ID, r.Val); err != nil {
			return 0, fmt.Errorf("setting %s: %w", r.Name, err)
		}
	}
	mpidr, err := cpu.GetOneReg(mpidrID)
	if err != nil {
		return 0, fmt.Errorf("reading MPIDR: %w", err)
	}
	return mpidr, nil
}
