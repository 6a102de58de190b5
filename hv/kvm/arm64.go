package kvm

// Register IDs and vCPU features of arm64 guests, from
// arch/arm64/include/uapi/asm/kvm.h and include/uapi/linux/kvm.h. They are
// plain numbers, usable from any host (tests and `tandem run --dump-dtb`
// build them on x86 too); TestARM64Encodings pins each against the header.

// Fields of a KVM_{GET,SET}_ONE_REG id (include/uapi/linux/kvm.h).
const (
	RegARM64   uint64 = 0x6000000000000000 // KVM_REG_ARM64
	RegSizeU32 uint64 = 0x0020000000000000 // KVM_REG_SIZE_U32
	RegSizeU64 uint64 = 0x0030000000000000 // KVM_REG_SIZE_U64

	regARMCoprocShift = 16                          // KVM_REG_ARM_COPROC_SHIFT
	regARMCore        = 0x0010 << regARMCoprocShift // KVM_REG_ARM_CORE
	regARM64Sysreg    = 0x0013 << regARMCoprocShift // KVM_REG_ARM64_SYSREG
	regARMFW          = 0x0014 << regARMCoprocShift // KVM_REG_ARM_FW
	sysregOp0Shift    = 14                          // KVM_REG_ARM64_SYSREG_OP0_SHIFT
	sysregOp1Shift    = 11                          // KVM_REG_ARM64_SYSREG_OP1_SHIFT
	sysregCRnShift    = 7                           // KVM_REG_ARM64_SYSREG_CRN_SHIFT
	sysregCRmShift    = 3                           // KVM_REG_ARM64_SYSREG_CRM_SHIFT
	sysregOp2Shift    = 0                           // KVM_REG_ARM64_SYSREG_OP2_SHIFT
)

// Offsets of struct kvm_regs fields in bytes. struct kvm_regs starts with
// struct user_pt_regs { __u64 regs[31]; __u64 sp; __u64 pc; __u64 pstate; }
// (arch/arm64/include/uapi/asm/ptrace.h).
const (
	kvmRegsSPOff     = 31 * 8
	kvmRegsPCOff     = 32 * 8
	kvmRegsPStateOff = 33 * 8
)

// ARM64CoreReg is the id of the 64-bit struct kvm_regs field at byte
// offset off: KVM_REG_ARM_CORE_REG(name) is offsetof(struct kvm_regs,
// name) / sizeof(__u32).
func ARM64CoreReg(off uint64) uint64 {
	return RegARM64 | RegSizeU64 | regARMCore | off/4
}

// ARM64XReg is the id of general-purpose register Xn (0-30).
func ARM64XReg(n int) uint64 { return ARM64CoreReg(uint64(n) * 8) }

// Core registers the boot protocol sets.
var (
	RegARM64SP     = ARM64CoreReg(kvmRegsSPOff)
	RegARM64PC     = ARM64CoreReg(kvmRegsPCOff)
	RegARM64PState = ARM64CoreReg(kvmRegsPStateOff)
)

// ARM64SysReg is ARM64_SYS_REG(op0, op1, crn, crm, op2).
func ARM64SysReg(op0, op1, crn, crm, op2 uint64) uint64 {
	return RegARM64 | RegSizeU64 | regARM64Sysreg |
		op0<<sysregOp0Shift&0xc000 | op1<<sysregOp1Shift&0x3800 |
		crn<<sysregCRnShift&0x0780 | crm<<sysregCRmShift&0x0078 | op2<<sysregOp2Shift&0x0007
}

// RegMPIDR is MPIDR_EL1 (op0 3, op1 0, CRn 0, CRm 0, op2 5; Arm ARM
// D17.2.101). KVM sets it at vCPU reset from the vCPU index.
var RegMPIDR = ARM64SysReg(3, 0, 0, 0, 5)

// RegPSCIVersion is KVM_REG_ARM_PSCI_VERSION (KVM_REG_ARM_FW_REG(0)), the
// firmware pseudo-register holding the PSCI version KVM implements for the
// guest: major in bits 31:16, minor in 15:0.
var RegPSCIVersion = RegARM64 | RegSizeU64 | regARMFW

// vCPU feature bits of struct kvm_vcpu_init.features[0].
const (
	ARMVCPUPowerOff = 0 // KVM_ARM_VCPU_POWER_OFF: start powered off (secondaries wait for PSCI CPU_ON)
	ARMVCPUEL132Bit = 1 // KVM_ARM_VCPU_EL1_32BIT
	ARMVCPUPSCI02   = 2 // KVM_ARM_VCPU_PSCI_0_2
	ARMVCPUPMUv3    = 3 // KVM_ARM_VCPU_PMU_V3
	ARMVCPUSVE      = 4 // KVM_ARM_VCPU_SVE: finalised with KVM_ARM_VCPU_FINALIZE before the first run
)

// The vCPU PMU's attributes (KVM_SET_DEVICE_ATTR on the vCPU;
// Documentation/virt/kvm/devices/vcpu.rst, "GROUP: KVM_ARM_VCPU_PMU_V3_CTRL").
const (
	ARMVCPUPMUv3Ctrl = 0 // KVM_ARM_VCPU_PMU_V3_CTRL
	ARMVCPUPMUv3IRQ  = 0 // KVM_ARM_VCPU_PMU_V3_IRQ: the overflow interrupt, a PPI's INTID (an int)
	ARMVCPUPMUv3Init = 1 // KVM_ARM_VCPU_PMU_V3_INIT: after the vGIC is initialised
)

// SetFeature sets feature bit f in the init's feature bitmap.
func (i *VCPUInit) SetFeature(f uint) { i.Features[f/32] |= 1 << (f % 32) }

// KVM_IRQ_LINE's irq field on arm64 (arch/arm64/include/uapi/asm/kvm.h):
// vcpu2_index(4) | irq_type(4) | vcpu_index(8) | irq_id(16).
const (
	ARMIRQTypeCPU = 0 // KVM_ARM_IRQ_TYPE_CPU: the vCPU's IRQ or FIQ pin (no in-kernel GIC)
	ARMIRQTypeSPI = 1 // KVM_ARM_IRQ_TYPE_SPI: irq_id is the INTID (32 and up)
	ARMIRQTypePPI = 2 // KVM_ARM_IRQ_TYPE_PPI: irq_id is the INTID (16-31) of vCPU vcpu

	armIRQVCPU2Shift = 28 // KVM_ARM_IRQ_VCPU2_SHIFT
	armIRQTypeShift  = 24 // KVM_ARM_IRQ_TYPE_SHIFT
	armIRQVCPUShift  = 16 // KVM_ARM_IRQ_VCPU_SHIFT
)

// ARMIRQ encodes the irq field of KVM_IRQ_LINE for an interrupt of type
// typ, number num, on vCPU vcpu (for PPIs and the CPU type).
func ARMIRQ(typ, vcpu, num uint32) uint32 {
	return (vcpu>>8&0xf)<<armIRQVCPU2Shift | (typ&0xf)<<armIRQTypeShift | (vcpu&0xff)<<armIRQVCPUShift | num&0xffff
}

// SystemEventResetFlagPSCIReset2 is set in data[0] of a
// KVM_SYSTEM_EVENT_RESET when the guest called PSCI SYSTEM_RESET2 rather
// than SYSTEM_RESET (KVM_SYSTEM_EVENT_RESET_FLAG_PSCI_RESET2).
const SystemEventResetFlagPSCIReset2 = 1 << 0

// PSTATE bits (arch/arm64/include/uapi/asm/ptrace.h).
const (
	PStateModeEL1h = 0x5   // PSR_MODE_EL1h: EL1, SP_EL1
	PStateF        = 0x40  // PSR_F_BIT: FIQ masked
	PStateI        = 0x80  // PSR_I_BIT: IRQ masked
	PStateA        = 0x100 // PSR_A_BIT: SError masked
	PStateD        = 0x200 // PSR_D_BIT: debug exceptions masked
)
