package x86

import (
	"encoding/binary"
	"fmt"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/mem"
)

// Intel MultiProcessor Specification 1.4 (May 1997), chapter 4. Linux
// reads the MP table only when it finds no MADT, or with acpi=off on a
// kernel built with CONFIG_X86_MPPARSE; it is here for those guests.
const (
	mpfSignature  = "_MP_"
	mpcSignature  = "PCMP"
	mpfLen        = 16 // floating pointer structure (§4.1)
	mpcHeaderLen  = 44 // configuration table header (§4.2)
	mpSpecRev     = 4  // version 1.4
	mpProcLen     = 20
	mpEntryLen    = 8 // bus, I/O APIC, I/O and local interrupt entries
	mpEntryProc   = 0
	mpEntryBus    = 1
	mpEntryIOAPIC = 2
	mpEntryIOInt  = 3
	mpEntryLocInt = 4

	mpCPUEnabled = 1 << 0
	mpCPUBSP     = 1 << 1
	// lapicVersion and ioapicVersion are what KVM's in-kernel chips report
	// in their version registers.
	lapicVersion   = 0x14
	ioapicVersion  = 0x11
	mpIOAPICUsable = 1 << 0

	mpIntINT    = 0
	mpIntNMI    = 1
	mpIntExtINT = 3
	// mpIntConforms: polarity and trigger conform to the bus (ISA: active
	// high, edge).
	mpIntConforms = 0
	// mpIntEdgeHigh spells out active-high (01) edge (01<<2) for pins past
	// the ISA range, whose bus default would be PCI's level/low.
	mpIntEdgeHigh = 1 | 1<<2
	mpBusISA      = 0
	mpAllLAPICs   = 0xff
	isaIRQs       = 16
	// mpCPUSignature and mpCPUFeatures: family 6, and FPU|APIC, enough for
	// a kernel that reads them; the real values come from CPUID.
	mpCPUSignature = 0x600
	mpCPUFeatures  = 1<<0 | 1<<9
)

var mpOEMID = [8]byte{'T', 'A', 'N', 'D', 'E', 'M', ' ', ' '}
var mpProductID = [12]byte{'T', 'A', 'N', 'D', 'E', 'M', 'V', 'M', ' ', ' ', ' ', ' '}

// ioapicID is the IOAPIC's ID: the first after the vCPUs' APIC IDs, so
// every APIC in the system has its own (MP spec §3.6.1).
func ioapicID(cpus int) uint8 { return uint8(cpus) }

// checksum returns the byte that makes b sum to zero.
func checksum(b []byte) uint8 {
	var s uint8
	for _, c := range b {
		s += c
	}
	return -s
}

// mpTable builds the floating pointer and configuration table to be
// placed at addr.
func mpTable(addr uint64, cpus int, virtio []devices.Placement) []byte {
	le := binary.LittleEndian
	var ents []byte
	count := 0
	add := func(e []byte) { ents = append(ents, e...); count++ }
	for i := 0; i < cpus; i++ {
		e := make([]byte, mpProcLen)
		e[0] = mpEntryProc
		e[1] = uint8(i)
		e[2] = lapicVersion
		e[3] = mpCPUEnabled
		if i == 0 {
			e[3] |= mpCPUBSP
		}
		le.PutUint32(e[4:], mpCPUSignature)
		le.PutUint32(e[8:], mpCPUFeatures)
		add(e)
	}
	add([]byte{mpEntryBus, mpBusISA, 'I', 'S', 'A', ' ', ' ', ' '})
	io := make([]byte, mpEntryLen)
	io[0], io[1], io[2], io[3] = mpEntryIOAPIC, ioapicID(cpus), ioapicVersion, mpIOAPICUsable
	le.PutUint32(io[4:], IOAPICAddr)
	add(io)
	ioInt := func(typ uint8, flags uint16, irq, pin uint8) {
		e := []byte{mpEntryIOInt, typ, 0, 0, mpBusISA, irq, ioapicID(cpus), pin}
		le.PutUint16(e[2:], flags)
		add(e)
	}
	// KVM's default routing wires ISA IRQ n to IOAPIC pin n (and to the
	// PIC): identity entries, no overrides.
	for irq := uint8(0); irq < isaIRQs; irq++ {
		ioInt(mpIntINT, mpIntConforms, irq, irq)
	}
	for _, v := range virtio {
		if v.IRQ >= isaIRQs {
			ioInt(mpIntINT, mpIntEdgeHigh, uint8(v.IRQ), uint8(v.IRQ))
		}
	}
	for lint, typ := range []uint8{mpIntExtINT, mpIntNMI} {
		add([]byte{mpEntryLocInt, typ, mpIntConforms, 0, mpBusISA, 0, mpAllLAPICs, uint8(lint)})
	}

	out := make([]byte, mpfLen+mpcHeaderLen+len(ents))
	f := out[:mpfLen]
	copy(f, mpfSignature)
	le.PutUint32(f[4:], uint32(addr+mpfLen)) // the configuration table follows
	f[8] = 1                                 // length in 16-byte units
	f[9] = mpSpecRev
	// Feature bytes 1-5 are 0: a configuration table is present, and the
	// IMCR is absent (virtual wire mode, §3.6.2.2).
	f[10] = checksum(f)

	c := out[mpfLen:]
	copy(c, mpcSignature)
	le.PutUint16(c[4:], uint16(len(c)))
	c[6] = mpSpecRev
	copy(c[8:16], mpOEMID[:])
	copy(c[16:28], mpProductID[:])
	le.PutUint16(c[34:], uint16(count))
	le.PutUint32(c[36:], LAPICAddr)
	copy(c[mpcHeaderLen:], ents)
	c[7] = checksum(c)
	return out
}

func writeMPTable(m *mem.Memory, cpus int, virtio []devices.Placement) error {
	t := mpTable(MPTableAddr, cpus, virtio)
	if len(t) > mpTableSize {
		return fmt.Errorf("MP table of %d bytes exceeds its %d-byte area", len(t), mpTableSize)
	}
	return m.WriteAt(t, MPTableAddr)
}
