package x86

import (
	"encoding/binary"
	"fmt"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/devices/acpipower"
	"github.com/tandem-hv/tandem/hv/mem"
)

// ACPI tables (ACPI Specification 6.4, chapter 5). The platform is
// hardware-reduced (§4.1): no PM1 blocks, no SCI, no FACS; sleep and
// reset go through the registers of hv/devices/acpipower.
const (
	acpiHeaderLen = 36 // §5.2.6, System Description Table Header
	rsdpLen       = 36 // §5.2.5.3
	rsdpV1Len     = 20 // the part the first checksum covers
	rsdpRevision  = 2  // ACPI 2.0 and later: XSDT
	xsdtRevision  = 1
	fadtLen       = 276
	fadtRevision  = 6 // ACPI 6.x FADT major version
	fadtMinor     = 4 // ... and minor: 6.4
	madtRevision  = 5 // ACPI 6.4
	dsdtRevision  = 2 // 64-bit AML integers
	acpiAlign     = 16

	// FADT field offsets (§5.2.9, Table 5.9).
	fadtFlags          = 112
	fadtIAPCBootArch   = 109
	fadtResetReg       = 116
	fadtResetValue     = 128
	fadtMinorVersion   = 131
	fadtXDSDT          = 140
	fadtSleepControl   = 244
	fadtSleepStatus    = 256
	fadtHypervisorID   = 268
	fadtResetRegSup    = 1 << 10
	fadtHWReducedACPI  = 1 << 20
	bootArchNoVGA      = 1 << 2
	bootArchNoMSI      = 1 << 3
	bootArchNoCMOSRTC  = 1 << 5
	gasSystemIO        = 1 // Generic Address Structure space (§5.2.3.2)
	gasAccessByte      = 1
	madtLocalAPIC      = 0 // MADT entry types (§5.2.12)
	madtIOAPIC         = 1
	madtLocalAPICNMI   = 4
	madtPCATCompat     = 1 << 0
	madtLAPICEnabled   = 1 << 0
	madtNMIEdgeHigh    = 1 | 1<<2 // polarity active high, trigger edge
	madtAllProcessors  = 0xff
	madtLINT1          = 1
	staPresentEnabled  = 0x0f // _STA: present, enabled, shown, functioning
	virtioMMIOHID      = "LNRO0005"
	serialPNPID        = "PNP0501" // 16550A-compatible COM port
	acpiOEMRevision    = 1
	acpiCreatorRev     = 1
	hypervisorVendorID = "TANDEMHV"
)

var (
	acpiOEMID      = [6]byte{'T', 'A', 'N', 'D', 'E', 'M'}
	acpiOEMTableID = [8]byte{'T', 'A', 'N', 'D', 'E', 'M', 'V', 'M'}
	acpiCreatorID  = [4]byte{'T', 'N', 'D', 'M'}
)

// tpmPNPID is a TPM with the TIS (FIFO) interface: Linux's tpm_tis binds
// it through ACPI's PNP layer (drivers/acpi/acpi_pnp.c), finds the
// registers in _CRS and, with no interrupt there, polls; it tells TPM 2.0
// from 1.2 by asking the TPM, so no TPM2 table is needed.
const tpmPNPID = "PNP0C31"

// acpiConfig is what the tables describe.
type acpiConfig struct {
	CPUs       int
	VirtioMMIO []devices.Placement
	Serial     bool
	Watchdog   *Watchdog // nil: no WDAT
	TPM        bool      // a TPM TIS at TPMBase
}

// acpiTables is the ACPI area: every table at its guest-physical address.
type acpiTables struct {
	base  uint64
	buf   []byte
	addrs map[string]uint64 // by signature, for tests
}

// add places a table at the next 16-byte boundary and returns its address.
func (t *acpiTables) add(sig string, table []byte) uint64 {
	for len(t.buf)%acpiAlign != 0 {
		t.buf = append(t.buf, 0)
	}
	addr := t.base + uint64(len(t.buf))
	t.buf = append(t.buf, table...)
	t.addrs[sig] = addr
	return addr
}

// sdt builds a table: the header of §5.2.6 around body, checksummed.
func sdt(sig string, rev uint8, body []byte) []byte {
	b := make([]byte, acpiHeaderLen, acpiHeaderLen+len(body))
	copy(b, sig)
	binary.LittleEndian.PutUint32(b[4:], uint32(acpiHeaderLen+len(body)))
	b[8] = rev
	copy(b[10:16], acpiOEMID[:])
	copy(b[16:24], acpiOEMTableID[:])
	binary.LittleEndian.PutUint32(b[24:], acpiOEMRevision)
	copy(b[28:32], acpiCreatorID[:])
	binary.LittleEndian.PutUint32(b[32:], acpiCreatorRev)
	b = append(b, body...)
	b[9] = checksum(b)
	return b
}

// buildACPI lays out the tables with the RSDP first, at base.
func buildACPI(base uint64, c acpiConfig) (*acpiTables, error) {
	dsdt, err := dsdtAML(c)
	if err != nil {
		return nil, err
	}
	t := &acpiTables{base: base, addrs: map[string]uint64{}}
	// The RSDP's address is fixed (the kernel is told, and scans for it);
	// reserve its room first and fill it in last.
	t.add("RSD PTR ", make([]byte, rsdpLen))
	dsdtAddr := t.add("DSDT", sdt("DSDT", dsdtRevision, dsdt))
	fadtAddr := t.add("FACP", fadt(dsdtAddr))
	madtAddr := t.add("APIC", madt(c.CPUs))
	xsdtBody := binary.LittleEndian.AppendUint64(nil, fadtAddr)
	xsdtBody = binary.LittleEndian.AppendUint64(xsdtBody, madtAddr)
	if c.Watchdog != nil {
		w, err := wdat(*c.Watchdog)
		if err != nil {
			return nil, err
		}
		xsdtBody = binary.LittleEndian.AppendUint64(xsdtBody, t.add("WDAT", w))
	}
	xsdtAddr := t.add("XSDT", sdt("XSDT", xsdtRevision, xsdtBody))
	copy(t.buf, rsdp(xsdtAddr))
	return t, nil
}

func writeACPI(m *mem.Memory, c acpiConfig) error {
	t, err := buildACPI(ACPIAddr, c)
	if err != nil {
		return err
	}
	if len(t.buf) > acpiSize {
		return fmt.Errorf("ACPI tables of %d bytes exceed their %d-byte area", len(t.buf), acpiSize)
	}
	return m.WriteAt(t.buf, ACPIAddr)
}

// rsdp builds the Root System Description Pointer (§5.2.5.3). No RSDT:
// an OS that reads revision 2 uses the XSDT.
func rsdp(xsdt uint64) []byte {
	b := make([]byte, rsdpLen)
	copy(b, "RSD PTR ")
	copy(b[9:15], acpiOEMID[:])
	b[15] = rsdpRevision
	binary.LittleEndian.PutUint32(b[20:], rsdpLen)
	binary.LittleEndian.PutUint64(b[24:], xsdt)
	b[8] = checksum(b[:rsdpV1Len])
	b[32] = checksum(b)
	return b
}

// gas encodes a Generic Address Structure for one byte-wide I/O port.
func gas(port uint16) []byte {
	b := []byte{gasSystemIO, 8, 0, gasAccessByte}
	return binary.LittleEndian.AppendUint64(b, uint64(port))
}

// fadt builds the Fixed ACPI Description Table (§5.2.9) of a
// hardware-reduced platform. Linux powers off by writing SLP_TYP|SLP_EN
// to SLEEP_CONTROL_REG (ACPICA's acpi_hw_extended_sleep) and reboots by
// writing RESET_VALUE to RESET_REG.
func fadt(dsdt uint64) []byte {
	b := make([]byte, fadtLen-acpiHeaderLen)
	o := func(off int) []byte { return b[off-acpiHeaderLen:] }
	le := binary.LittleEndian
	le.PutUint32(o(fadtFlags), fadtHWReducedACPI|fadtResetRegSup)
	// No VGA, no MSI (there is no PCI), no CMOS RTC at ports 0x70/0x71:
	// the wall clock comes from kvm-clock. No 8042 flag either, so the
	// kernel does not probe for a keyboard controller.
	le.PutUint16(o(fadtIAPCBootArch), bootArchNoVGA|bootArchNoMSI|bootArchNoCMOSRTC)
	copy(o(fadtResetReg), gas(PowerPortBase+acpipower.Reset))
	o(fadtResetValue)[0] = acpipower.ResetValue
	o(fadtMinorVersion)[0] = fadtMinor
	le.PutUint64(o(fadtXDSDT), dsdt)
	copy(o(fadtSleepControl), gas(PowerPortBase+acpipower.SleepControl))
	copy(o(fadtSleepStatus), gas(PowerPortBase+acpipower.SleepStatus))
	copy(o(fadtHypervisorID), hypervisorVendorID)
	return sdt("FACP", fadtRevision, b)
}

// madt builds the Multiple APIC Description Table (§5.2.12): a local
// APIC per vCPU, the IOAPIC, and LINT1 as NMI. No interrupt source
// overrides: KVM's default routing wires ISA IRQ n to IOAPIC pin n, the
// identity Linux assumes for every ISA IRQ without an override, and a
// hardware-reduced platform has no SCI to route.
func madt(cpus int) []byte {
	le := binary.LittleEndian
	b := le.AppendUint32(nil, LAPICAddr)
	b = le.AppendUint32(b, madtPCATCompat) // the in-kernel irqchip has 8259s
	for i := 0; i < cpus; i++ {
		b = append(b, madtLocalAPIC, 8, uint8(i), uint8(i))
		b = le.AppendUint32(b, madtLAPICEnabled)
	}
	b = append(b, madtIOAPIC, 12, ioapicID(cpus), 0)
	b = le.AppendUint32(b, IOAPICAddr)
	b = le.AppendUint32(b, 0) // GSI base
	b = append(b, madtLocalAPICNMI, 6, madtAllProcessors)
	b = le.AppendUint16(b, madtNMIEdgeHigh)
	b = append(b, madtLINT1)
	return sdt("APIC", madtRevision, b)
}

// dsdtAML builds the DSDT's AML: COM1, one LNRO0005 device per
// virtio-mmio transport (what drivers/virtio/virtio_mmio.c matches), and
// \_S5 so the kernel knows the sleep type value for power-off.
func dsdtAML(c acpiConfig) ([]byte, error) {
	var devs [][]byte
	if c.Serial {
		devs = append(devs, amlDevice("COM1",
			amlName("_HID", amlEISAID(serialPNPID)),
			amlName("_UID", amlInteger(0)),
			amlName("_STA", amlInteger(staPresentEnabled)),
			amlName("_CRS", amlResourceTemplate(
				resIOPort(COM1Port, COM1Port, 1, COM1Size),
				resIRQ(COM1IRQ),
			)),
		))
	}
	if len(c.VirtioMMIO) > 0x100 {
		return nil, fmt.Errorf("%d virtio-mmio devices: the DSDT names hold at most 256", len(c.VirtioMMIO))
	}
	for i, p := range c.VirtioMMIO {
		if p.Base+p.Size > 1<<32 || p.Base+p.Size < p.Base || p.Size == 0 {
			return nil, fmt.Errorf("virtio-mmio device %d at %#x+%#x: Memory32Fixed wants a range below 4 GiB", i, p.Base, p.Size)
		}
		devs = append(devs, amlDevice(fmt.Sprintf("VR%02X", i),
			amlName("_HID", amlString(virtioMMIOHID)),
			amlName("_UID", amlInteger(uint64(i))),
			amlName("_STA", amlInteger(staPresentEnabled)),
			amlName("_CRS", amlResourceTemplate(
				resMemory32Fixed(true, uint32(p.Base), uint32(p.Size)),
				// irqfd lines are edge-triggered; an explicit descriptor
				// also keeps GSIs 16-23 from PCI's level/low default.
				resInterrupt(true, false, false, p.IRQ),
			)),
		))
	}
	if c.TPM {
		devs = append(devs, amlDevice("TPM_",
			amlName("_HID", amlEISAID(tpmPNPID)),
			amlName("_STA", amlInteger(staPresentEnabled)),
			amlName("_CRS", amlResourceTemplate(resMemory32Fixed(true, TPMBase, TPMSize))),
		))
	}
	// The DSDT's own terms are in the root scope, so _SB_ and _S5_ need
	// no root prefix; iasl drops it too, and the iasl test compares bytes.
	return concat(
		amlScope("_SB_", devs...),
		// SLP_TYPa, SLP_TYPb and two reserved values (§7.4.2).
		amlName("_S5_", amlPackage(amlInteger(acpipower.S5SleepType), amlInteger(0), amlInteger(0), amlInteger(0))),
	), nil
}
