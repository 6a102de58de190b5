package kvm

// The ARMv7 (32-bit ARM) host ABI of KVM: what a Tandem built for
// GOARCH=arm speaks to a host kernel of Linux 3.9 to 5.6 (5.7 removed
// 32-bit ARM KVM hosts). The numbers are those of
// arch/arm/include/uapi/asm/kvm.h and include/uapi/linux/kvm.h of Linux
// 5.6, the last kernel with the header; TestARMv7Encodings pins each. They
// are plain numbers, arch-neutral, so the tests run on any host.

// Fields of an ARMv7 KVM_{GET,SET}_ONE_REG id.
const (
	RegARM uint64 = 0x4000000000000000 // KVM_REG_ARM (include/uapi/linux/kvm.h)

	// KVM_REG_ARM_32_CRN_SHIFT, KVM_REG_ARM_CRM_SHIFT,
	// KVM_REG_ARM_OPC1_SHIFT and KVM_REG_ARM_32_OPC2_SHIFT: where a
	// 32-bit cp15 register's CRn, CRm, opc1 and opc2 go.
	armv7CRnShift  = 11
	armv7CRmShift  = 7
	armv7Opc1Shift = 3
	armv7Opc2Shift = 0
	armv7CP15      = 15 << regARMCoprocShift // coprocessor 15 in KVM_REG_ARM_COPROC_MASK
)

// Byte offsets into the ARMv7 struct kvm_regs:
//
//	struct kvm_regs {
//		struct pt_regs usr_regs;   // long uregs[18]: r0-r15, cpsr, ORIG_r0
//		unsigned long svc_regs[3]; // SP_svc, LR_svc, SPSR_svc
//		unsigned long abt_regs[3]; // SP_abt, LR_abt, SPSR_abt
//		unsigned long und_regs[3]; // SP_und, LR_und, SPSR_und
//		unsigned long irq_regs[3]; // SP_irq, LR_irq, SPSR_irq
//		unsigned long fiq_regs[8]; // R8_fiq-R14_fiq, SPSR_fiq
//	};
//
// Every field is a 32-bit unsigned long, so uregs[n] is at 4n
// (arch/arm/include/uapi/asm/ptrace.h: ARM_pc is uregs[15], ARM_cpsr
// uregs[16]).
const (
	armv7PCOff      = 15 * 4
	armv7CPSROff    = 16 * 4
	armv7SvcRegsOff = 18 * 4
	armv7FiqRegsOff = armv7SvcRegsOff + 4*3*4
	// SizeofARMv7Regs is sizeof(struct kvm_regs) on ARMv7.
	SizeofARMv7Regs = armv7FiqRegsOff + 8*4
)

// ARMv7CoreReg is the id of the 32-bit struct kvm_regs field at byte
// offset off: KVM_REG_ARM | KVM_REG_SIZE_U32 | KVM_REG_ARM_CORE |
// offsetof(struct kvm_regs, field) / 4 (KVM_REG_ARM_CORE_REG).
func ARMv7CoreReg(off uint64) uint64 {
	return RegARM | RegSizeU32 | regARMCore | off/4
}

// ARMv7CP15Reg is the id of the 32-bit cp15 register (opc1, CRn, CRm,
// opc2), as `mrc p15, opc1, rX, CRn, CRm, opc2` names it.
func ARMv7CP15Reg(opc1, crn, crm, opc2 uint64) uint64 {
	return RegARM | RegSizeU32 | armv7CP15 |
		crn<<armv7CRnShift&0x7800 | crm<<armv7CRmShift&0x0780 |
		opc1<<armv7Opc1Shift&0x0078 | opc2<<armv7Opc2Shift&0x0007
}

// ARMv7 core and system registers the boot protocol touches.
var (
	RegARMv7PC   = ARMv7CoreReg(armv7PCOff)
	RegARMv7CPSR = ARMv7CoreReg(armv7CPSROff)
	// RegARMv7MPIDR is MPIDR (p15, 0, c0, c0, 5).
	RegARMv7MPIDR = ARMv7CP15Reg(0, 0, 0, 5)
	// RegARMv7PSCIVersion is KVM_REG_ARM_PSCI_VERSION on ARMv7 (4.16+):
	// KVM_REG_ARM | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_REG(0), firmware
	// register 0.
	RegARMv7PSCIVersion = RegARM | RegSizeU64 | regARMFW
)

// ARMv7R is the id of general-purpose register Rn (0-15) of user mode,
// which is also that of SVC mode for r0-r12 and the pc.
func ARMv7R(n int) uint64 { return ARMv7CoreReg(uint64(n) * 4) }

// vCPU targets of struct kvm_vcpu_init on ARMv7 (KVM_ARM_TARGET_*).
// KVM_ARM_PREFERRED_TARGET (3.13+) names the host's; older kernels want
// the one that matches the host's cores.
const (
	ARMv7TargetCortexA15 = 0 // KVM_ARM_TARGET_CORTEX_A15
	ARMv7TargetCortexA7  = 1 // KVM_ARM_TARGET_CORTEX_A7
)

// vCPU feature bits of struct kvm_vcpu_init.features[0] on ARMv7. They
// differ from arm64's: a 32-bit host has no KVM_ARM_VCPU_EL1_32BIT, and
// PSCI 0.2 took bit 1.
const (
	ARMv7VCPUPowerOff = 0 // KVM_ARM_VCPU_POWER_OFF
	ARMv7VCPUPSCI02   = 1 // KVM_ARM_VCPU_PSCI_0_2
)

// The legacy vGIC interface of ARMv7 hosts before KVM_CREATE_DEVICE
// (3.9-3.13): KVM_CREATE_IRQCHIP makes a GICv2, and
// KVM_ARM_SET_DEVICE_ADDR, a VM ioctl, places it. struct
// kvm_arm_device_addr { __u64 id; __u64 addr; }, with id =
// device << KVM_ARM_DEVICE_ID_SHIFT | type << KVM_ARM_DEVICE_TYPE_SHIFT.
const (
	armDeviceIDShift   = 16 // KVM_ARM_DEVICE_ID_SHIFT
	armDeviceTypeShift = 0  // KVM_ARM_DEVICE_TYPE_SHIFT
	ARMDeviceVGICV2    = 0  // KVM_ARM_DEVICE_VGIC_V2
)

// ARMDeviceAddrID is the id of KVM_ARM_SET_DEVICE_ADDR for region typ
// (VGICV2AddrTypeDist or VGICV2AddrTypeCPU) of device dev.
func ARMDeviceAddrID(dev, typ uint64) uint64 {
	return dev<<armDeviceIDShift | typ<<armDeviceTypeShift
}

// armDeviceAddr mirrors struct kvm_arm_device_addr.
type armDeviceAddr struct {
	ID   uint64
	Addr uint64
}

const sizeofARMDeviceAddr = 16

// reqARMSetDeviceAddr is KVM_ARM_SET_DEVICE_ADDR = _IOW(KVMIO, 0xab,
// struct kvm_arm_device_addr). It shares its number with
// KVM_GET_ONE_REG (same nr, same 16-byte size): the kernel tells them
// apart by the descriptor, a VM's or a vCPU's.
var reqARMSetDeviceAddr = iow(0xab, sizeofARMDeviceAddr)

// PSR bits of the AArch32 CPSR (arch/arm/include/uapi/asm/ptrace.h; on
// arm64 the PSR_AA32_* of asm/ptrace.h, with the same values).
const (
	CPSRModeSVC = 0x13  // SVC_MODE (M[4] set: AArch32)
	CPSRT       = 0x20  // PSR_T_BIT: Thumb state
	CPSRF       = 0x40  // PSR_F_BIT: FIQ masked
	CPSRI       = 0x80  // PSR_I_BIT: IRQ masked
	CPSRA       = 0x100 // PSR_A_BIT: asynchronous aborts masked
)
