package kvm

// ioctl request encoding, from include/uapi/asm-generic/ioctl.h. x86, arm
// and arm64 all use the generic layout: dir(2) size(14) type(8) nr(8).
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
)

// kvmio is the ioctl type of every KVM request (KVMIO in linux/kvm.h).
const kvmio = 0xAE

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<iocDirShift | size<<iocSizeShift | kvmio<<iocTypeShift | nr<<iocNRShift
}

func io(nr uintptr) uintptr         { return ioc(iocNone, nr, 0) }
func ior(nr, size uintptr) uintptr  { return ioc(iocRead, nr, size) }
func iow(nr, size uintptr) uintptr  { return ioc(iocWrite, nr, size) }
func iowr(nr, size uintptr) uintptr { return ioc(iocRead|iocWrite, nr, size) }

// Requests common to every architecture (include/uapi/linux/kvm.h).
var (
	reqGetAPIVersion         = io(0x00)
	reqCreateVM              = io(0x01)
	reqCheckExtension        = io(0x03)
	reqGetVCPUMmapSize       = io(0x04)
	reqCreateVCPU            = io(0x41)
	reqSetUserMemoryRegion   = iow(0x46, sizeofUserspaceMemoryRegion)
	reqCreateIRQChip         = io(0x60)
	reqIRQLine               = iow(0x61, sizeofIRQLevel)
	reqIRQFD                 = iow(0x76, sizeofIRQFD)
	reqIOEventFD             = iow(0x79, sizeofIOEventFD)
	reqRun                   = io(0x80)
	reqGetMPState            = ior(0x98, 4)
	reqSetMPState            = iow(0x99, 4)
	reqEnableCap             = iow(0xa3, sizeofEnableCap)
	reqGetOneReg             = iow(0xab, sizeofOneReg)
	reqSetOneReg             = iow(0xac, sizeofOneReg)
	reqCreateDevice          = iowr(0xe0, sizeofCreateDevice)
	reqSetDeviceAttr         = iow(0xe1, sizeofDeviceAttr)
	reqHasDeviceAttr         = iow(0xe3, sizeofDeviceAttr)
	reqArmVCPUInit           = iow(0xae, sizeofVCPUInit)
	reqArmPreferredTarget    = ior(0xaf, sizeofVCPUInit)
	reqArmVCPUFinalize       = iow(0xc2, 4) // KVM_ARM_VCPU_FINALIZE: _IOW(KVMIO, 0xc2, int)
	reqKVMSetTSSAddr         = io(0x47)
	reqKVMSetIdentityMapAddr = iow(0x48, 8)
	reqCreatePIT2            = iow(0x77, sizeofPITConfig)
	reqGetSupportedCPUID     = iowr(0x05, sizeofCPUID2)
	reqGetRegs               = ior(0x81, sizeofRegs)
	reqSetRegs               = iow(0x82, sizeofRegs)
	reqGetSregs              = ior(0x83, sizeofSregs)
	reqSetSregs              = iow(0x84, sizeofSregs)
	reqSetMSRs               = iow(0x89, sizeofMSRs)
	reqGetFPU                = ior(0x8c, sizeofFPU)
	reqSetFPU                = iow(0x8d, sizeofFPU)
	reqGetLAPIC              = ior(0x8e, sizeofLAPICState)
	reqTranslate             = iowr(0x85, sizeofTranslation)
	reqSetLAPIC              = iow(0x8f, sizeofLAPICState)
	reqSetCPUID2             = iow(0x90, sizeofCPUID2)
)
