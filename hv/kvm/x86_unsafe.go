package kvm

import (
	"fmt"
	"unsafe"
)

// SetTSSAddr places the three pages KVM needs for real-mode emulation on
// Intel hosts (KVM_SET_TSS_ADDR). The range must be outside guest RAM.
func (vm *VM) SetTSSAddr(addr uint64) error {
	if _, err := ioctlInt(vm.fd, reqKVMSetTSSAddr, uintptr(addr)); err != nil {
		return fmt.Errorf("KVM_SET_TSS_ADDR %#x: %w", addr, err)
	}
	return nil
}

// SetIdentityMapAddr places the identity-map page (Intel EPT real mode).
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	if err := ioctlPtr(vm.fd, reqKVMSetIdentityMapAddr, unsafe.Pointer(&addr)); err != nil {
		return fmt.Errorf("KVM_SET_IDENTITY_MAP_ADDR %#x: %w", addr, err)
	}
	return nil
}

// CreatePIT2 creates the in-kernel i8254 timer.
func (vm *VM) CreatePIT2() error {
	c := pitConfig{Flags: pitSpeakerDummy}
	if err := ioctlPtr(vm.fd, reqCreatePIT2, unsafe.Pointer(&c)); err != nil {
		return fmt.Errorf("KVM_CREATE_PIT2: %w", err)
	}
	return nil
}

// SupportedCPUID returns what KVM_GET_SUPPORTED_CPUID reports: the CPUID
// leaves this host's KVM can present to a guest.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	buf := make([]byte, sizeofCPUID2+maxCPUIDEntries*unsafe.Sizeof(CPUIDEntry{}))
	h := (*cpuid2Header)(unsafe.Pointer(&buf[0]))
	h.NEnt = maxCPUIDEntries
	if err := ioctlPtr(s.fd, reqGetSupportedCPUID, unsafe.Pointer(&buf[0])); err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	if h.NEnt > maxCPUIDEntries {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %d entries: %w", h.NEnt, errTooManyEntries)
	}
	ents := unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[sizeofCPUID2])), h.NEnt)
	return append([]CPUIDEntry(nil), ents...), nil
}

// SetCPUID2 sets the vCPU's CPUID table.
func (c *VCPU) SetCPUID2(ents []CPUIDEntry) error {
	if len(ents) > maxCPUIDEntries {
		return fmt.Errorf("KVM_SET_CPUID2: %d entries: %w", len(ents), errTooManyEntries)
	}
	buf := make([]byte, sizeofCPUID2+uintptr(len(ents))*unsafe.Sizeof(CPUIDEntry{}))
	h := (*cpuid2Header)(unsafe.Pointer(&buf[0]))
	h.NEnt = uint32(len(ents))
	if len(ents) > 0 {
		copy(unsafe.Slice((*CPUIDEntry)(unsafe.Pointer(&buf[sizeofCPUID2])), len(ents)), ents)
	}
	if err := ioctlPtr(c.fd, reqSetCPUID2, unsafe.Pointer(&buf[0])); err != nil {
		return fmt.Errorf("KVM_SET_CPUID2 on vCPU %d: %w", c.ID, err)
	}
	return nil
}

// SetMSRs writes model-specific registers.
func (c *VCPU) SetMSRs(ents []MSREntry) error {
	buf := make([]byte, sizeofMSRs+uintptr(len(ents))*unsafe.Sizeof(MSREntry{}))
	h := (*msrsHeader)(unsafe.Pointer(&buf[0]))
	h.NMSRs = uint32(len(ents))
	if len(ents) > 0 {
		copy(unsafe.Slice((*MSREntry)(unsafe.Pointer(&buf[sizeofMSRs])), len(ents)), ents)
	}
	n, _, e := rawIoctl(c.fd, reqSetMSRs, unsafe.Pointer(&buf[0]))
	if e != nil {
		return fmt.Errorf("KVM_SET_MSRS on vCPU %d: %w", c.ID, e)
	}
	// KVM_SET_MSRS returns how many entries it set; it stops at the first
	// MSR it refuses.
	if int(n) != len(ents) {
		return fmt.Errorf("KVM_SET_MSRS on vCPU %d: MSR %#x refused", c.ID, ents[n].Index)
	}
	return nil
}

// GetRegs reads the general-purpose registers.
func (c *VCPU) GetRegs() (Regs, error) {
	var r Regs
	if err := ioctlPtr(c.fd, reqGetRegs, unsafe.Pointer(&r)); err != nil {
		return r, fmt.Errorf("KVM_GET_REGS on vCPU %d: %w", c.ID, err)
	}
	return r, nil
}

// Translate walks the vCPU's current page tables for a guest-virtual
// address (KVM_TRANSLATE): its guest-physical address, and whether the
// tables map it at all.
func (c *VCPU) Translate(gva uint64) (gpa uint64, mapped bool, err error) {
	t := translation{LinearAddress: gva}
	if err := ioctlPtr(c.fd, reqTranslate, unsafe.Pointer(&t)); err != nil {
		return 0, false, fmt.Errorf("KVM_TRANSLATE on vCPU %d: %w", c.ID, err)
	}
	return t.PhysicalAddress, t.Valid != 0, nil
}

// SetRegs writes the general-purpose registers.
func (c *VCPU) SetRegs(r Regs) error {
	if err := ioctlPtr(c.fd, reqSetRegs, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_SET_REGS on vCPU %d: %w", c.ID, err)
	}
	return nil
}

// GetSregs reads the special registers.
func (c *VCPU) GetSregs() (Sregs, error) {
	var s Sregs
	if err := ioctlPtr(c.fd, reqGetSregs, unsafe.Pointer(&s)); err != nil {
		return s, fmt.Errorf("KVM_GET_SREGS on vCPU %d: %w", c.ID, err)
	}
	return s, nil
}

// SetSregs writes the special registers.
func (c *VCPU) SetSregs(s Sregs) error {
	if err := ioctlPtr(c.fd, reqSetSregs, unsafe.Pointer(&s)); err != nil {
		return fmt.Errorf("KVM_SET_SREGS on vCPU %d: %w", c.ID, err)
	}
	return nil
}

// SetFPU writes the FPU state.
func (c *VCPU) SetFPU(f FPU) error {
	if err := ioctlPtr(c.fd, reqSetFPU, unsafe.Pointer(&f)); err != nil {
		return fmt.Errorf("KVM_SET_FPU on vCPU %d: %w", c.ID, err)
	}
	return nil
}

// GetLAPIC reads the local APIC's register page.
func (c *VCPU) GetLAPIC() (LAPICState, error) {
	var l LAPICState
	if err := ioctlPtr(c.fd, reqGetLAPIC, unsafe.Pointer(&l)); err != nil {
		return l, fmt.Errorf("KVM_GET_LAPIC on vCPU %d: %w", c.ID, err)
	}
	return l, nil
}

// SetLAPIC writes the local APIC's register page.
func (c *VCPU) SetLAPIC(l LAPICState) error {
	if err := ioctlPtr(c.fd, reqSetLAPIC, unsafe.Pointer(&l)); err != nil {
		return fmt.Errorf("KVM_SET_LAPIC on vCPU %d: %w", c.ID, err)
	}
	return nil
}
