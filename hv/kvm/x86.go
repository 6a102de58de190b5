package kvm

// Mirrors of the x86 structs of arch/x86/include/uapi/asm/kvm.h. They are
// defined on every host so their layout can be pinned anywhere; only an
// x86 host's kernel accepts the requests that carry them.

// Regs mirrors struct kvm_regs (x86).
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

const sizeofRegs = 144

// translation mirrors struct kvm_translation: KVM_TRANSLATE's question (a
// guest-virtual address) and answer (its guest-physical address, valid
// when the guest's page tables map it).
type translation struct {
	LinearAddress   uint64
	PhysicalAddress uint64
	Valid           uint8
	Writeable       uint8
	Usermode        uint8
	_               [5]uint8
}

const sizeofTranslation = 24

// Segment mirrors struct kvm_segment.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable mirrors struct kvm_dtable.
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// Sregs mirrors struct kvm_sregs.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	InterruptBitmap        [4]uint64
}

const sizeofSregs = 312

// FPU mirrors struct kvm_fpu.
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

const sizeofFPU = 416

// MSREntry mirrors struct kvm_msr_entry.
type MSREntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

// msrsHeader mirrors the head of struct kvm_msrs; entries follow it.
type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

const sizeofMSRs = 8

// CPUIDEntry mirrors struct kvm_cpuid_entry2.
type CPUIDEntry struct {
	Function uint32
	Index    uint32
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUIDFlagSignificantIndex is KVM_CPUID_FLAG_SIGNIFCANT_INDEX: the entry
// depends on ECX (the sub-leaf).
const CPUIDFlagSignificantIndex = 1 << 0

// cpuid2Header mirrors the head of struct kvm_cpuid2; entries follow it.
type cpuid2Header struct {
	NEnt uint32
	_    uint32
}

const sizeofCPUID2 = 8

// maxCPUIDEntries bounds KVM_GET_SUPPORTED_CPUID (KVM_MAX_CPUID_ENTRIES is 256).
const maxCPUIDEntries = 256

// LAPICState mirrors struct kvm_lapic_state: the 1 KiB APIC register page.
type LAPICState struct {
	Regs [1024]uint8
}

const sizeofLAPICState = 1024

// pitConfig mirrors struct kvm_pit_config.
type pitConfig struct {
	Flags uint32
	_     [15]uint32
}

const sizeofPITConfig = 64

// pitSpeakerDummy is KVM_PIT_SPEAKER_DUMMY: port 0x61 is emulated in the
// kernel so the guest's PIT calibration does not exit to us.
const pitSpeakerDummy = 1
