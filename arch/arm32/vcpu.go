package arm32

import (
	"errors"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// ErrNoAArch32EL1 means the host's CPUs cannot run AArch32 at EL1, so
// KVM cannot give a guest 32-bit vCPUs (many arm64 server and recent
// mobile cores are 64-bit only).
var ErrNoAArch32EL1 = errors.New("host CPU has no AArch32 at EL1 (KVM_CAP_ARM_EL1_32BIT is 0): 32-bit ARM guests need an arm64 host whose cores implement AArch32 at EL1 (Cortex-A53/A57/A72 do; Apple, Neoverse V and Cortex-A510 and later do not)")

// CheckAArch32 decides from KVM_CHECK_EXTENSION(KVM_CAP_ARM_EL1_32BIT),
// on an ABI that needs the feature, whether 32-bit vCPUs are possible.
func CheckAArch32(abi kvm.AArch32ABI, capEL132Bit int) error {
	if abi.NeedsEL132Bit && capEL132Bit <= 0 {
		return ErrNoAArch32EL1
	}
	return nil
}

// bootCPSR is the boot protocol's CPSR (booting.rst, "CPU mode"): SVC
// mode with IRQs, FIQs and asynchronous aborts masked, in ARM (not
// Thumb) state.
const bootCPSR = kvm.CPSRModeSVC | kvm.CPSRA | kvm.CPSRI | kvm.CPSRF

// machineTypeDT is r1 when a device tree describes the machine:
// booting.rst asks for the machine type, which the kernel ignores with a
// DTB in r2; ~0 is what U-Boot and QEMU pass.
const machineTypeDT = 0xffffffff

// SetupVCPU initialises vCPU index with KVM_ARM_VCPU_INIT, as an AArch32
// vCPU, and returns its MPIDR. vCPU 0 is the boot CPU: it starts at the
// zImage with r0 = 0, r1 = ~0 and r2 = the device tree's address. The
// others start powered off and come up through PSCI CPU_ON, which KVM
// handles in the kernel (in the AArch32 state the vCPU was created in).
func SetupVCPU(vm *kvm.VM, cpu *kvm.VCPU, abi kvm.AArch32ABI, index int, b *Boot) (mpidr uint64, err error) {
	init, err := vm.ARMPreferredTarget()
	if err != nil && !abi.NeedsEL132Bit {
		// ARMv7 hosts before 3.13 have no KVM_ARM_PREFERRED_TARGET;
		// they support only the Cortex-A15 target anyway (3.9-3.12).
		init, err = kvm.VCPUInit{Target: kvm.ARMv7TargetCortexA15}, nil
	}
	if err != nil {
		return 0, err
	}
	if abi.NeedsEL132Bit {
		init.SetFeature(abi.EL132Bit)
	}
	init.SetFeature(abi.PSCI02)
	if index > 0 {
		init.SetFeature(abi.PowerOff)
	}
	if err := cpu.ARMVCPUInit(init); err != nil {
		return 0, err
	}
	var regs []armvirt.BootReg
	if index == 0 {
		cpsr := uint64(bootCPSR)
		if b.Thumb {
			cpsr |= kvm.CPSRT
		}
		regs = []armvirt.BootReg{
			{Name: "r0", ID: abi.R0, Val: 0},
			{Name: "r1", ID: abi.R1, Val: machineTypeDT},
			{Name: "r2", ID: abi.R2, Val: b.DTBAddr},
			{Name: "cpsr", ID: abi.CPSR, Val: cpsr},
			{Name: "pc", ID: abi.PC, Val: b.KernelAddr},
		}
	}
	return armvirt.StartVCPU(cpu, regs, abi.MPIDR)
}

// PSCIVersion reads the PSCI version KVM implements for a vCPU after
// KVM_ARM_VCPU_INIT; kernels before 4.16 have no such register and
// implement PSCI 0.2.
func PSCIVersion(cpu *kvm.VCPU, abi kvm.AArch32ABI) uint64 {
	v, err := cpu.GetOneReg(abi.PSCIVersion)
	if err != nil {
		return armvirt.PSCI02
	}
	return v
}
