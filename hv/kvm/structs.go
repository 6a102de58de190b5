package kvm

// Mirrors of the architecture-neutral structs of include/uapi/linux/kvm.h.
// Each mirror's size (and the offsets that matter) is pinned by
// TestStructSizes; the kernel rejects an ioctl whose encoded size is wrong.

// userspaceMemoryRegion mirrors struct kvm_userspace_memory_region.
type userspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

const sizeofUserspaceMemoryRegion = 32

// irqLevel mirrors struct kvm_irq_level.
type irqLevel struct {
	IRQ   uint32
	Level uint32
}

const sizeofIRQLevel = 8

// irqfd mirrors struct kvm_irqfd.
type irqfd struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

const sizeofIRQFD = 32

// ioeventfd mirrors struct kvm_ioeventfd.
type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

const sizeofIOEventFD = 64

// ioeventfd flags (KVM_IOEVENTFD_FLAG_*).
const (
	ioeventfdFlagDatamatch = 1 << 0
	ioeventfdFlagPIO       = 1 << 1
)

// enableCap mirrors struct kvm_enable_cap.
type enableCap struct {
	Cap   uint32
	Flags uint32
	Args  [4]uint64
	_     [64]uint8
}

const sizeofEnableCap = 104

// oneReg mirrors struct kvm_one_reg.
type oneReg struct {
	ID   uint64
	Addr uint64
}

const sizeofOneReg = 16

// createDevice mirrors struct kvm_create_device.
type createDevice struct {
	Type  uint32
	FD    uint32
	Flags uint32
}

const sizeofCreateDevice = 12

// deviceAttr mirrors struct kvm_device_attr.
type deviceAttr struct {
	Flags uint32
	Group uint32
	Attr  uint64
	Addr  uint64
}

const sizeofDeviceAttr = 24

// VCPUInit mirrors struct kvm_vcpu_init (arm and arm64).
type VCPUInit struct {
	Target   uint32
	Features [7]uint32
}

const sizeofVCPUInit = 32

// runHeader mirrors the fixed head of struct kvm_run, up to the exit union.
type runHeader struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IfFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
}

// exitUnionOffset is offsetof(struct kvm_run, exit union).
const exitUnionOffset = 32

// runIO mirrors kvm_run.io.
type runIO struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64
}

// runMMIO mirrors kvm_run.mmio.
type runMMIO struct {
	PhysAddr uint64
	Data     [8]uint8
	Len      uint32
	IsWrite  uint8
	_        [3]uint8
}

// runSystemEvent mirrors kvm_run.system_event.
type runSystemEvent struct {
	Type  uint32
	NData uint32
	Data  [16]uint64
}

// runInternal mirrors kvm_run.internal.
type runInternal struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

// runFailEntry mirrors kvm_run.fail_entry.
type runFailEntry struct {
	HardwareEntryFailureReason uint64
	CPU                        uint32
	_                          uint32
}
