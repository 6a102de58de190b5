package x86

import (
	"encoding/binary"
	"fmt"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// GDT selectors the 64-bit boot protocol requires: __BOOT_CS is 0x10 and
// __BOOT_DS is 0x18 (Documentation/arch/x86/boot.rst, "64-bit BOOT
// PROTOCOL"). The TSS follows; KVM refuses to enter long mode without a
// usable TR.
const (
	selCode = 0x10
	selData = 0x18
	selTSS  = 0x20
	gdtLen  = 6 // null, null, code, data, TSS (16 bytes: two slots)
)

// GDT access/flags words, in the layout of bits 40-55 of a descriptor
// (Intel SDM vol. 3A §3.4.5): G, D/B, L, AVL in the high nibble, then P,
// DPL, S and type.
const (
	gdtCode64 = 0xa09b // G, L, P, S, type 0xb: execute/read, accessed
	gdtData   = 0xc093 // G, D/B, P, S, type 0x3: read/write, accessed
	gdtTSS64  = 0x008b // P, type 0xb: busy 64-bit TSS
	tssLimit  = 0x67   // sizeof(struct x86_hw_tss) - 1
)

// gdtEntry encodes a segment descriptor.
func gdtEntry(flags uint16, base, limit uint32) uint64 {
	return uint64(base&0xff000000)<<32 | uint64(flags&0xf0ff)<<40 | uint64(limit&0x000f0000)<<32 |
		uint64(base&0x00ffffff)<<16 | uint64(limit&0xffff)
}

// segment decodes a descriptor into the form KVM takes, so the cached
// segment state always matches what the GDT in guest memory says.
func segment(sel uint16, desc uint64) kvm.Segment {
	flags := uint16(desc>>40) & 0xf0ff
	limit := uint32(desc&0xffff) | uint32(desc>>32)&0x000f0000
	g := uint8(flags>>15) & 1
	if g == 1 {
		limit = limit<<12 | 0xfff
	}
	return kvm.Segment{
		Base:     (desc>>16)&0xffffff | (desc>>32)&0xff000000,
		Limit:    limit,
		Selector: sel,
		Type:     uint8(flags & 0xf),
		S:        uint8(flags>>4) & 1,
		DPL:      uint8(flags>>5) & 3,
		Present:  uint8(flags>>7) & 1,
		AVL:      uint8(flags>>12) & 1,
		L:        uint8(flags>>13) & 1,
		DB:       uint8(flags>>14) & 1,
		G:        g,
	}
}

// gdt returns the boot GDT. The TSS descriptor points at nothing in
// particular: the kernel loads its own before it can take an interrupt.
func gdt() [gdtLen]uint64 {
	return [gdtLen]uint64{
		selCode >> 3: gdtEntry(gdtCode64, 0, 0xfffff),
		selData >> 3: gdtEntry(gdtData, 0, 0xfffff),
		selTSS >> 3:  gdtEntry(gdtTSS64, 0, tssLimit),
		// The upper half of the 16-byte TSS descriptor (base 63:32) is 0.
	}
}

func writeGDT(m *mem.Memory) error {
	b, err := m.Slice(GDTAddr, gdtLen*8)
	if err != nil {
		return err
	}
	for i, d := range gdt() {
		binary.LittleEndian.PutUint64(b[i*8:], d)
	}
	// An empty IDT: any exception before the kernel loads its own is a
	// triple fault, which KVM reports as a shutdown exit.
	return m.WriteAt(make([]byte, 8), IDTAddr)
}

// Page-table entry bits (Intel SDM vol. 3A §4.5).
const (
	ptePresent  = 1 << 0
	pteWritable = 1 << 1
	ptePS       = 1 << 7 // a 2 MiB page in a page directory
	identityGiB = 4
)

// writePageTables identity-maps the first 4 GiB with 2 MiB pages: the
// kernel, zero page and command line must be mapped (boot.rst), and 4 GiB
// covers anywhere the loader puts them.
func writePageTables(m *mem.Memory) error {
	le := binary.LittleEndian
	pml4, err := m.Slice(PML4Addr, pageSize)
	if err != nil {
		return err
	}
	clear(pml4)
	le.PutUint64(pml4, pdptAddr|ptePresent|pteWritable)
	pdpt, err := m.Slice(pdptAddr, pageSize)
	if err != nil {
		return err
	}
	clear(pdpt)
	for g := uint64(0); g < identityGiB; g++ {
		pd := pdAddr + g*pageSize
		le.PutUint64(pdpt[g*8:], pd|ptePresent|pteWritable)
		dir, err := m.Slice(pd, pageSize)
		if err != nil {
			return err
		}
		for i := uint64(0); i < 512; i++ {
			le.PutUint64(dir[i*8:], (g<<30+i<<21)|ptePresent|pteWritable|ptePS)
		}
	}
	return nil
}

// Control register and EFER bits.
const (
	cr0PE   = 1 << 0
	cr0ET   = 1 << 4
	cr0PG   = 1 << 31
	cr4PAE  = 1 << 5
	eferLME = 1 << 8
	eferLMA = 1 << 10
	// rflagsReserved is bit 1 of RFLAGS, which always reads 1.
	rflagsReserved = 1 << 1
)

// SetupVCPU gives cpu its CPUID, MSRs, FPU and LAPIC state. The BSP
// (cpu.ID 0) is also put at the kernel's 64-bit entry point in long mode;
// the others are left to the in-kernel LAPIC, waiting for INIT and SIPI
// from the BSP. The VM's in-kernel irqchip must exist before cpu was
// created.
func (b *Boot) SetupVCPU(sys *kvm.System, cpu *kvm.VCPU) error {
	supported, err := b.supportedCPUID(sys)
	if err != nil {
		return err
	}
	if err := cpu.SetCPUID2(cpuidFor(supported, cpu.ID, b.cpus)); err != nil {
		return err
	}
	if err := cpu.SetMSRs(bootMSRs()); err != nil {
		return err
	}
	if err := cpu.SetFPU(kvm.FPU{FCW: fpuControlWord, MXCSR: mxcsrDefault}); err != nil {
		return err
	}
	if err := setupLINTs(cpu); err != nil {
		return err
	}
	if cpu.ID != 0 {
		return nil
	}
	s, err := cpu.GetSregs()
	if err != nil {
		return err
	}
	longMode(&s)
	if err := cpu.SetSregs(s); err != nil {
		return err
	}
	return cpu.SetRegs(kvm.Regs{RIP: b.Entry, RSI: ZeroPageAddr, RFLAGS: rflagsReserved})
}

// longMode puts the special registers in the state the 64-bit boot
// protocol wants: paging on with the identity map, flat segments from
// the boot GDT, CS a 64-bit code segment.
func longMode(s *kvm.Sregs) {
	g := gdt()
	s.GDT = kvm.DTable{Base: GDTAddr, Limit: gdtLen*8 - 1}
	s.IDT = kvm.DTable{Base: IDTAddr, Limit: 0}
	s.CS = segment(selCode, g[selCode>>3])
	data := segment(selData, g[selData>>3])
	s.DS, s.ES, s.FS, s.GS, s.SS = data, data, data, data, data
	s.TR = segment(selTSS, g[selTSS>>3])
	s.CR0 = cr0PE | cr0ET | cr0PG
	s.CR3 = PML4Addr
	s.CR4 = cr4PAE
	s.EFER = eferLME | eferLMA
}

// FPU reset values (Intel SDM vol. 1 §8.1.5, §10.2.3.1): all exceptions
// masked, 64-bit precision, round to nearest.
const (
	fpuControlWord = 0x37f
	mxcsrDefault   = 0x1f80
)

// MSR numbers (Intel SDM vol. 4).
const (
	msrTSC           = 0x10
	msrSysenterCS    = 0x174
	msrSysenterESP   = 0x175
	msrSysenterEIP   = 0x176
	msrMiscEnable    = 0x1a0
	msrMTRRDefType   = 0x2ff
	msrSTAR          = 0xc0000081
	msrLSTAR         = 0xc0000082
	msrCSTAR         = 0xc0000083
	msrSyscallMask   = 0xc0000084
	msrKernelGSBase  = 0xc0000102
	miscEnableFastSt = 1 << 0  // fast string operations (rep movs)
	mtrrEnable       = 1 << 11 // MTRRdefType.E
	mtrrTypeWB       = 6
)

// bootMSRs is the MSR state every vCPU starts with: what firmware leaves
// behind. Fast strings on and write-back as the default memory type,
// because Linux trusts the MTRRs it finds and would otherwise map all of
// RAM uncached.
func bootMSRs() []kvm.MSREntry {
	return []kvm.MSREntry{
		{Index: msrSysenterCS}, {Index: msrSysenterESP}, {Index: msrSysenterEIP},
		{Index: msrSTAR}, {Index: msrLSTAR}, {Index: msrCSTAR}, {Index: msrSyscallMask},
		{Index: msrKernelGSBase},
		{Index: msrTSC},
		{Index: msrMiscEnable, Data: miscEnableFastSt},
		{Index: msrMTRRDefType, Data: mtrrEnable | mtrrTypeWB},
	}
}

// Local APIC registers and delivery modes (Intel SDM vol. 3A §10.5.1).
const (
	apicLVTLINT0      = 0x350
	apicLVTLINT1      = 0x360
	apicDeliveryMask  = 0x700
	apicDeliveryNMI   = 0x400
	apicDeliveryExtIn = 0x700
)

// setupLINTs wires LINT0 to the PIC (ExtINT) and LINT1 to NMI, the
// virtual-wire mode an MP-spec BIOS leaves the local APICs in.
func setupLINTs(cpu *kvm.VCPU) error {
	l, err := cpu.GetLAPIC()
	if err != nil {
		return fmt.Errorf("setting up LINT0/LINT1: %w", err)
	}
	le := binary.LittleEndian
	for _, r := range []struct {
		reg  int
		mode uint32
	}{{apicLVTLINT0, apicDeliveryExtIn}, {apicLVTLINT1, apicDeliveryNMI}} {
		v := le.Uint32(l.Regs[r.reg:])
		le.PutUint32(l.Regs[r.reg:], v&^apicDeliveryMask|r.mode)
	}
	return cpu.SetLAPIC(l)
}
