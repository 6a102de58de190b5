package kvm

// The in-kernel ARM Generic Interrupt Controller (vGIC), created with
// KVM_CREATE_DEVICE and configured through device attributes
// (Documentation/virt/kvm/devices/arm-vgic.rst and arm-vgic-v3.rst; the
// numbers are from include/uapi/linux/kvm.h and
// arch/arm64/include/uapi/asm/kvm.h).

// Device types (enum kvm_device_type).
const (
	DevTypeARMVGICV2  = 5 // KVM_DEV_TYPE_ARM_VGIC_V2
	DevTypeARMVGICV3  = 7 // KVM_DEV_TYPE_ARM_VGIC_V3
	DevTypeARMVGICITS = 8 // KVM_DEV_TYPE_ARM_VGIC_ITS
)

// Attribute groups (KVM_DEV_ARM_VGIC_GRP_*).
const (
	VGICGrpAddr     = 0 // KVM_DEV_ARM_VGIC_GRP_ADDR: base addresses (u64)
	VGICGrpDistRegs = 1 // KVM_DEV_ARM_VGIC_GRP_DIST_REGS
	VGICGrpCPURegs  = 2 // KVM_DEV_ARM_VGIC_GRP_CPU_REGS
	VGICGrpNrIRQs   = 3 // KVM_DEV_ARM_VGIC_GRP_NR_IRQS: number of interrupts, private ones included (u32)
	VGICGrpCtrl     = 4 // KVM_DEV_ARM_VGIC_GRP_CTRL
)

// Attributes of VGICGrpCtrl.
const (
	VGICCtrlInit = 0 // KVM_DEV_ARM_VGIC_CTRL_INIT: set once every vCPU exists
)

// Attributes of VGICGrpAddr.
const (
	VGICV2AddrTypeDist         = 0 // KVM_VGIC_V2_ADDR_TYPE_DIST
	VGICV2AddrTypeCPU          = 1 // KVM_VGIC_V2_ADDR_TYPE_CPU
	VGICV3AddrTypeDist         = 2 // KVM_VGIC_V3_ADDR_TYPE_DIST
	VGICV3AddrTypeRedist       = 3 // KVM_VGIC_V3_ADDR_TYPE_REDIST
	VGICITSAddrType            = 4 // KVM_VGIC_ITS_ADDR_TYPE
	VGICV3AddrTypeRedistRegion = 5 // KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION
)

// Sizes of the regions the vGIC decodes.
const (
	VGICV2DistSize   = 0x1000      // KVM_VGIC_V2_DIST_SIZE
	VGICV2CPUSize    = 0x2000      // KVM_VGIC_V2_CPU_SIZE
	VGICV3DistSize   = 0x10000     // KVM_VGIC_V3_DIST_SIZE
	VGICV3RedistSize = 2 * 0x10000 // KVM_VGIC_V3_REDIST_SIZE: RD_base and SGI_base frames, per vCPU
)

// GIC interrupt numbering (Arm GIC architecture specification, 2.2):
// SGIs 0-15, PPIs 16-31, SPIs from 32.
const (
	GICPPIBase = 16
	GICSPIBase = 32
	// GICMaxIRQs bounds KVM_DEV_ARM_VGIC_GRP_NR_IRQS (1020 INTIDs in all).
	GICMaxIRQs = 1020
)
