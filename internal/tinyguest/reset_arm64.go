package tinyguest

import "github.com/tandem-hv/tandem/hv/kvm"

// reset initialises the vCPU as the host prefers and starts it at
// CodeAddr, at EL1 with every exception masked and the MMU off, with x1
// pointing at MMIOAddr for ARM64MMIOLoop.
func (g *Guest) reset() error {
	init, err := g.VM.ARMPreferredTarget()
	if err != nil {
		return err
	}
	if err := g.CPU.ARMVCPUInit(init); err != nil {
		return err
	}
	for _, r := range []struct{ id, val uint64 }{
		{kvm.RegARM64PState, kvm.PStateModeEL1h | kvm.PStateD | kvm.PStateA | kvm.PStateI | kvm.PStateF},
		{kvm.ARM64XReg(1), MMIOAddr},
		{kvm.RegARM64PC, CodeAddr},
	} {
		if err := g.CPU.SetOneReg(r.id, r.val); err != nil {
			return err
		}
	}
	return nil
}
