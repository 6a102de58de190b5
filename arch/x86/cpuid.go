package x86

import (
	"math/bits"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// CPUID leaves and bits adjusted per vCPU (Intel SDM vol. 2A, CPUID).
const (
	leafFeatures     = 0x1
	leafCacheParams  = 0x4
	leafTopology     = 0xb
	leafTopologyV2   = 0x1f
	leafHypervisor   = 0x40000000
	leafKVMFeatures  = 0x40000001
	ecxHypervisor    = 1 << 31 // leaf 1 ECX: running under a hypervisor
	ecxTSCDeadline   = 1 << 24 // leaf 1 ECX: LAPIC TSC-deadline timer
	edxHTT           = 1 << 28 // leaf 1 EDX: EBX[23:16] is valid
	topoLevelSMT     = 1
	topoLevelCore    = 2
	capTSCDeadline   = kvm.Cap(72) // KVM_CAP_TSC_DEADLINE_TIMER
	kvmSignatureEBX  = 0x4b4d564b  // "KVMK"
	kvmSignatureECX  = 0x564b4d56  // "VMKV"
	kvmSignatureEDX  = 0x0000004d  // "M\0\0\0"
	maxCoresInLeaf4  = 64          // EAX[31:26] holds cores-1
	leaf4CoresShift  = 26
	leaf1APICIDShift = 24
	leaf1CountShift  = 16
)

func (b *Boot) supportedCPUID(sys *kvm.System) ([]kvm.CPUIDEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.supported == nil {
		s, err := sys.SupportedCPUID()
		if err != nil {
			return nil, err
		}
		// The in-kernel LAPIC emulates the TSC-deadline timer, but
		// KVM_GET_SUPPORTED_CPUID leaves the bit to userspace
		// (Documentation/virt/kvm/api.rst): a guest without it falls back
		// to the slower periodic/one-shot LAPIC timer.
		if sys.CheckExtension(capTSCDeadline) > 0 {
			for i := range s {
				if s[i].Function == leafFeatures {
					s[i].ECX |= ecxTSCDeadline
				}
			}
		}
		b.supported = s
	}
	return b.supported, nil
}

// cpuidFor returns the CPUID table of vCPU id out of cpus, from what KVM
// supports. Each vCPU is one core of one package with one thread: its
// APIC ID is its index.
//
// The hypervisor leaf keeps KVM's signature "KVMKVMKVM". Everything
// leaf 0x40000001 advertises (kvm-clock, PV EOI, steal time, PV TLB
// flush, async page faults) is implemented by the host's KVM, not by
// this VMM, and Linux enables it only when it sees KVM's signature.
// Without kvm-clock a guest with no HPET or ACPI PM timer would have to
// calibrate the TSC against the PIT, and the hardware-reduced ACPI
// platform this VMM describes turns the PIT off.
func cpuidFor(supported []kvm.CPUIDEntry, id, cpus int) []kvm.CPUIDEntry {
	ents := append([]kvm.CPUIDEntry(nil), supported...)
	hasHV := false
	hasKVMFeatures := false
	coreShift := uint32(bits.Len(uint(cpus - 1)))
	for i := range ents {
		e := &ents[i]
		switch e.Function {
		case leafFeatures:
			e.EBX = e.EBX&0x0000ffff | uint32(id)<<leaf1APICIDShift | uint32(cpus)<<leaf1CountShift
			e.ECX |= ecxHypervisor
			if cpus > 1 {
				e.EDX |= edxHTT
			}
		case leafCacheParams:
			if e.EAX&0x1f != 0 { // a cache described by this sub-leaf
				e.EAX = e.EAX&(1<<leaf4CoresShift-1) | uint32(min(cpus, maxCoresInLeaf4)-1)<<leaf4CoresShift
			}
		case leafTopology, leafTopologyV2:
			e.EDX = uint32(id) // x2APIC ID
			switch e.Index {
			case 0: // threads in a core: one
				e.EAX, e.EBX, e.ECX = 0, 1, topoLevelSMT<<8
			case 1: // cores in the package: all the vCPUs
				e.EAX, e.EBX, e.ECX = coreShift, uint32(cpus), topoLevelCore<<8|1
			default: // no more levels
				e.EAX, e.EBX, e.ECX = 0, 0, e.Index
			}
		case leafHypervisor:
			hasHV = true
			e.EBX, e.ECX, e.EDX = kvmSignatureEBX, kvmSignatureECX, kvmSignatureEDX
		case leafKVMFeatures:
			hasKVMFeatures = true
		}
	}
	if !hasHV {
		max := uint32(leafHypervisor)
		if hasKVMFeatures {
			max = leafKVMFeatures
		}
		ents = append(ents, kvm.CPUIDEntry{Function: leafHypervisor, EAX: max,
			EBX: kvmSignatureEBX, ECX: kvmSignatureECX, EDX: kvmSignatureEDX})
	}
	return ents
}
