package arm64

import (
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// bootPState is the boot protocol's PSTATE (booting.rst, "CPU mode"): all
// of D, A, I and F masked, at EL1 on SP_EL1 (EL1h). KVM's reset already
// gives this; it is set anyway so that the state does not depend on it.
const bootPState = kvm.PStateModeEL1h | kvm.PStateD | kvm.PStateA | kvm.PStateI | kvm.PStateF

// SetupVCPU initialises vCPU index with KVM_ARM_VCPU_INIT and returns its
// MPIDR_EL1. vCPU 0 is the boot CPU: it starts at the kernel's entry with
// x0 = the device tree's address and x1-x3 zero (booting.rst). The others
// start powered off and come up through PSCI CPU_ON, which KVM handles
// in the kernel, setting their entry point and context id itself. f are
// the optional features the vCPU gets (armvirt.HostFeatures); a PMU is
// initialised later, once the vGIC is (armvirt.InitPMU).
func SetupVCPU(vm *kvm.VM, cpu *kvm.VCPU, index int, b *Boot, f armvirt.Features) (mpidr uint64, err error) {
	init, err := vm.ARMPreferredTarget()
	if err != nil {
		return 0, err
	}
	init.SetFeature(kvm.ARMVCPUPSCI02)
	if index > 0 {
		init.SetFeature(kvm.ARMVCPUPowerOff)
	}
	f.SetInit(&init)
	if err := cpu.ARMVCPUInit(init); err != nil {
		return 0, err
	}
	if err := f.Finalize(cpu); err != nil {
		return 0, err
	}
	var regs []armvirt.BootReg
	if index == 0 {
		regs = []armvirt.BootReg{
			{Name: "x0", ID: kvm.ARM64XReg(0), Val: b.DTBAddr},
			{Name: "x1", ID: kvm.ARM64XReg(1), Val: 0},
			{Name: "x2", ID: kvm.ARM64XReg(2), Val: 0},
			{Name: "x3", ID: kvm.ARM64XReg(3), Val: 0},
			{Name: "pstate", ID: kvm.RegARM64PState, Val: bootPState},
			{Name: "pc", ID: kvm.RegARM64PC, Val: b.KernelAddr},
		}
	}
	return armvirt.StartVCPU(cpu, regs, kvm.RegMPIDR)
}

// PSCIVersion reads the PSCI version KVM implements for a vCPU after
// KVM_ARM_VCPU_INIT (armvirt.PSCIVersion).
func PSCIVersion(cpu *kvm.VCPU) uint64 { return armvirt.PSCIVersion(cpu) }
