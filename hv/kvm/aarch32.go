package kvm

// AArch32ABI is how a host's KVM names what the 32-bit ARM boot protocol
// sets: the same guest state reached through different register ids and
// feature bits on an arm64 host (AArch32 at EL1) and on an ARMv7 host.
type AArch32ABI struct {
	// Host names the host's side of the ABI in messages.
	Host string
	// R0, R1, R2, PC and CPSR are the core register ids.
	R0, R1, R2, PC, CPSR uint64
	// MPIDR and PSCIVersion are the ids of MPIDR and
	// KVM_REG_ARM_PSCI_VERSION.
	MPIDR, PSCIVersion uint64
	// PowerOff and PSCI02 are the vCPU feature bits of
	// KVM_ARM_VCPU_POWER_OFF and KVM_ARM_VCPU_PSCI_0_2.
	PowerOff, PSCI02 uint
	// EL132Bit is KVM_ARM_VCPU_EL1_32BIT, the feature that makes an arm64
	// vCPU AArch32 at EL1; NeedsEL132Bit is false on an ARMv7 host, whose
	// vCPUs are 32-bit already.
	EL132Bit      uint
	NeedsEL132Bit bool
}

// AArch32OnARM64 is the AArch32 view of an arm64 vCPU
// (arch/arm64/include/uapi/asm/kvm.h): in the 64-bit struct kvm_regs,
// regs.regs[0..14] hold r0-r14, regs.pc holds the pc and regs.pstate the
// CPSR, each a 64-bit register id.
var AArch32OnARM64 = AArch32ABI{
	Host: "arm64",
	R0:   ARM64XReg(0), R1: ARM64XReg(1), R2: ARM64XReg(2),
	PC: RegARM64PC, CPSR: RegARM64PState,
	MPIDR: RegMPIDR, PSCIVersion: RegPSCIVersion,
	PowerOff: ARMVCPUPowerOff, PSCI02: ARMVCPUPSCI02,
	EL132Bit: ARMVCPUEL132Bit, NeedsEL132Bit: true,
}

// AArch32OnARMv7 is an ARMv7 host's vCPU (arch/arm/include/uapi/asm/kvm.h,
// Linux 5.6): 32-bit core register ids into the ARMv7 struct kvm_regs.
var AArch32OnARMv7 = AArch32ABI{
	Host: "ARMv7",
	R0:   ARMv7R(0), R1: ARMv7R(1), R2: ARMv7R(2),
	PC: RegARMv7PC, CPSR: RegARMv7CPSR,
	MPIDR: RegARMv7MPIDR, PSCIVersion: RegARMv7PSCIVersion,
	PowerOff: ARMv7VCPUPowerOff, PSCI02: ARMv7VCPUPSCI02,
}
