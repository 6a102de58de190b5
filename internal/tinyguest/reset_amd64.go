package tinyguest

import "github.com/tandem-hv/tandem/hv/kvm"

// reset puts the vCPU in flat real mode at CodeAddr.
func (g *Guest) reset() error {
	sr, err := g.CPU.GetSregs()
	if err != nil {
		return err
	}
	// Real mode, flat: CS base 0 so RIP is the physical address.
	sr.CS.Base, sr.CS.Selector = 0, 0
	if err := g.CPU.SetSregs(sr); err != nil {
		return err
	}
	return g.CPU.SetRegs(kvm.Regs{RIP: CodeAddr, RFLAGS: 2})
}
