package arm64

import (
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/hv/kvm"
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
		return nil, fmt.Errorf("%d vCPUs: arm64 guests have 1 to %d", cpus, MaxCPUs)
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
	addrs := []struct {
		name string
		attr uint64
		addr uint64
	}{
		{"distributor", kvm.VGICV3AddrTypeDist, GICDistBase},
		{"redistributors", kvm.VGICV3AddrTypeRedist, GICv3RedistBase},
	}
	if g.Version == GICv2 {
		addrs[0].attr = kvm.VGICV2AddrTypeDist
		addrs[1] = struct {
			name string
			attr uint64
			addr uint64
		}{"CPU interface", kvm.VGICV2AddrTypeCPU, GICv2CPUBase}
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
	if err := g.dev.SetAttr(kvm.VGICGrpCtrl, kvm.VGICCtrlInit, nil); err != nil {
		return fmt.Errorf("initialising the GICv%d: %w", g.Version, err)
	}
	return nil
}

// Close closes the vGIC's device descriptor (the VM keeps the GIC).
func (g *GIC) Close() error { return g.dev.Close() }
