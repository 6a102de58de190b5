package x86

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/devices/acpipower"
)

func TestAMLPkgLength(t *testing.T) {
	tests := []struct {
		name string
		n    int // bytes after the PkgLength
		want []byte
	}{
		{"empty", 0, []byte{0x01}},
		{"largest one-byte", 0x3e, []byte{0x3f}},
		{"smallest two-byte", 0x3f, []byte{0x41, 0x04}},
		{"largest two-byte", 0xffd, []byte{0x4f, 0xff}},
		{"smallest three-byte", 0xffe, []byte{0x81, 0x00, 0x01}},
		{"largest three-byte", 0xffffc, []byte{0x8f, 0xff, 0xff}},
		{"smallest four-byte", 0xffffd, []byte{0xc1, 0x00, 0x00, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := amlPkgLength(tt.n); !bytes.Equal(got, tt.want) {
				t.Errorf("amlPkgLength(%#x) = % x, want % x", tt.n, got, tt.want)
			}
		})
	}
}

func TestAMLGolden(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"Zero", amlInteger(0), []byte{0x00}},
		{"One", amlInteger(1), []byte{0x01}},
		{"Ones", amlInteger(^uint64(0)), []byte{0xff}},
		{"byte", amlInteger(0x0f), []byte{0x0a, 0x0f}},
		{"word", amlInteger(0x3f8), []byte{0x0b, 0xf8, 0x03}},
		{"dword", amlInteger(0xd0000000), []byte{0x0c, 0x00, 0x00, 0x00, 0xd0}},
		{"qword", amlInteger(1 << 32), []byte{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}},
		{"string", amlString("LNRO0005"), []byte{0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0}},
		{"EISAID", amlEISAID("PNP0501"), []byte{0x0c, 0x41, 0xd0, 0x05, 0x01}},
		{"short name padded", amlNameString("S5"), []byte("S5__")},
		{"root name", amlNameString("\\_SB_"), []byte("\\_SB_")},
		{"dual name", amlNameString("\\_SB_.COM1"), []byte("\\\x2e_SB_COM1")},
		{"multi name", amlNameString("A.B.C"), []byte("\x2f\x03A___B___C___")},
		{"Name", amlName("_UID", amlInteger(0)), []byte{0x08, '_', 'U', 'I', 'D', 0x00}},
		{"Device", amlDevice("COM1", amlName("_UID", amlInteger(0))),
			[]byte{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x00}},
		{"Scope", amlScope("_SB_"), []byte{0x10, 0x05, '_', 'S', 'B', '_'}},
		{"Package", amlPackage(amlInteger(5), amlInteger(0)), []byte{0x12, 0x05, 0x02, 0x0a, 0x05, 0x00}},
		{"Buffer", amlBuffer([]byte{0xaa, 0xbb}), []byte{0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb}},
		// Resource descriptors: ACPI 6.4 §6.4.2.5, §6.4.2.6, §6.4.3.4, §6.4.3.6.
		{"IO", resIOPort(0x3f8, 0x3f8, 1, 8), []byte{0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08}},
		{"IRQNoFlags", resIRQ(4), []byte{0x22, 0x10, 0x00}},
		{"Memory32Fixed", resMemory32Fixed(true, 0xd0000000, 0x1000),
			[]byte{0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00}},
		{"Interrupt edge high", resInterrupt(true, false, false, 5),
			[]byte{0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00}},
		{"Interrupt level low shared", resInterrupt(false, true, true, 16, 17),
			[]byte{0x89, 0x0a, 0x00, 0x0d, 0x02, 0x10, 0, 0, 0, 0x11, 0, 0, 0}},
		{"ResourceTemplate", amlResourceTemplate(resIRQ(4)), []byte{0x11, 0x08, 0x0a, 0x05, 0x22, 0x10, 0x00, 0x79, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Equal(tt.got, tt.want) {
				t.Errorf("got % x, want % x", tt.got, tt.want)
			}
		})
	}
}

// TestAMLLongPackage checks that a package just past the one-byte
// PkgLength limit gets the two-byte form and still frames its contents.
func TestAMLLongPackage(t *testing.T) {
	body := bytes.Repeat([]byte{0x01}, 0x40)
	got := amlBuffer(body) // BufferOp, PkgLength, BytePrefix 0x40, body
	if got[0] != amlBufferOp || got[1]>>6 != 1 {
		t.Fatalf("amlBuffer(%d bytes) = % x..., want a two-byte PkgLength", len(body), got[:4])
	}
	n := int(got[1]&0xf) | int(got[2])<<4
	if n != len(got)-1 {
		t.Errorf("amlBuffer(%d bytes) PkgLength = %d, want %d (all bytes after the opcode)", len(body), n, len(got)-1)
	}
}

func TestAMLBadNamesPanic(t *testing.T) {
	for _, name := range []string{"", "TOOLONG", "1ABC", "a", "AB-C"} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("amlNameSeg(%q) did not panic", name)
				}
			}()
			amlNameSeg(name)
		})
	}
}

func allSlots(t *testing.T, n int) []devices.Placement {
	t.Helper()
	var ps []devices.Placement
	for i := 0; i < n; i++ {
		p, err := VirtioSlot(i)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, p)
	}
	return ps
}

var acpiConfigs = []struct {
	name string
	cfg  acpiConfig
}{
	{"one CPU, nothing else", acpiConfig{CPUs: 1}},
	{"two CPUs, serial, two virtio", acpiConfig{CPUs: 2, Serial: true}},
	{"max CPUs, serial, every slot", acpiConfig{CPUs: MaxCPUs, Serial: true}},
	{"watchdog", acpiConfig{CPUs: 1, Serial: true, Watchdog: &Watchdog{MinCount: 1, MaxCount: 10}}},
	{"TPM", acpiConfig{CPUs: 1, Serial: true, TPM: true}},
}

func configFor(t *testing.T, i int) acpiConfig {
	c := acpiConfigs[i].cfg
	switch i {
	case 1:
		c.VirtioMMIO = allSlots(t, 2)
	case 2:
		c.VirtioMMIO = allSlots(t, NumVirtioSlots)
	}
	return c
}

// tableAt returns the table at guest-physical addr within the ACPI area.
func tableAt(t *testing.T, tb *acpiTables, addr uint64) []byte {
	t.Helper()
	off := addr - tb.base
	if addr < tb.base || off+acpiHeaderLen > uint64(len(tb.buf)) {
		t.Fatalf("table at %#x is outside the ACPI area %#x+%#x", addr, tb.base, len(tb.buf))
	}
	n := uint64(binary.LittleEndian.Uint32(tb.buf[off+4:]))
	if off+n > uint64(len(tb.buf)) {
		t.Fatalf("table at %#x: length %d runs past the ACPI area", addr, n)
	}
	return tb.buf[off : off+n]
}

func sum(b []byte) (s uint8) {
	for _, c := range b {
		s += c
	}
	return s
}

func TestACPITables(t *testing.T) {
	le := binary.LittleEndian
	for i, tt := range acpiConfigs {
		t.Run(tt.name, func(t *testing.T) {
			c := configFor(t, i)
			tb, err := buildACPI(ACPIAddr, c)
			if err != nil {
				t.Fatalf("buildACPI() = %v", err)
			}
			if len(tb.buf) > acpiSize {
				t.Errorf("ACPI area is %d bytes, want at most %d", len(tb.buf), acpiSize)
			}
			r := tb.buf[:rsdpLen]
			if string(r[:8]) != "RSD PTR " || r[15] != 2 || le.Uint32(r[20:]) != rsdpLen {
				t.Errorf("RSDP = % x, want signature, revision 2, length 36", r)
			}
			if sum(r[:rsdpV1Len]) != 0 || sum(r) != 0 {
				t.Errorf("RSDP checksums: first 20 bytes sum to %#x, all 36 to %#x; want 0", sum(r[:rsdpV1Len]), sum(r))
			}
			xsdt := tableAt(t, tb, le.Uint64(r[24:]))
			entries := 2
			if c.Watchdog != nil {
				entries++
			}
			if string(xsdt[:4]) != "XSDT" || len(xsdt) != acpiHeaderLen+8*entries {
				t.Fatalf("XSDT = %q of %d bytes, want %d entries", xsdt[:4], len(xsdt), entries)
			}
			fadt := tableAt(t, tb, le.Uint64(xsdt[36:]))
			madt := tableAt(t, tb, le.Uint64(xsdt[44:]))
			dsdt := tableAt(t, tb, le.Uint64(fadt[fadtXDSDT:]))
			for _, tab := range []struct {
				sig  string
				b    []byte
				rev  uint8
				size int
			}{
				{"XSDT", xsdt, xsdtRevision, acpiHeaderLen + 8*entries},
				{"FACP", fadt, fadtRevision, fadtLen},
				{"APIC", madt, madtRevision, 44 + 8*c.CPUs + 12 + 6},
				{"DSDT", dsdt, dsdtRevision, len(dsdt)},
			} {
				if string(tab.b[:4]) != tab.sig || tab.b[8] != tab.rev || len(tab.b) != tab.size {
					t.Errorf("table %q rev %d, %d bytes; want %q rev %d, %d bytes", tab.b[:4], tab.b[8], len(tab.b), tab.sig, tab.rev, tab.size)
				}
				if s := sum(tab.b); s != 0 {
					t.Errorf("%s checksum: bytes sum to %#x, want 0", tab.sig, s)
				}
			}
			if f := le.Uint32(fadt[fadtFlags:]); f&fadtHWReducedACPI == 0 || f&fadtResetRegSup == 0 {
				t.Errorf("FADT flags = %#x, want HW_REDUCED_ACPI and RESET_REG_SUP", f)
			}
			for _, reg := range []struct {
				name string
				off  int
				port uint64
			}{
				{"RESET_REG", fadtResetReg, PowerPortBase + acpipower.Reset},
				{"SLEEP_CONTROL_REG", fadtSleepControl, PowerPortBase + acpipower.SleepControl},
				{"SLEEP_STATUS_REG", fadtSleepStatus, PowerPortBase + acpipower.SleepStatus},
			} {
				g := fadt[reg.off : reg.off+12]
				if g[0] != gasSystemIO || g[1] != 8 || le.Uint64(g[4:]) != reg.port {
					t.Errorf("FADT %s = % x, want 8-bit SystemIO at %#x", reg.name, g, reg.port)
				}
			}
			if fadt[fadtResetValue] != acpipower.ResetValue || fadt[fadtMinorVersion] != fadtMinor || string(fadt[fadtHypervisorID:fadtHypervisorID+8]) != hypervisorVendorID {
				t.Errorf("FADT reset value %#x, minor %d, hypervisor %q; want %#x, %d, %q",
					fadt[fadtResetValue], fadt[fadtMinorVersion], fadt[fadtHypervisorID:], acpipower.ResetValue, fadtMinor, hypervisorVendorID)
			}
			if n := bytes.Count(dsdt, []byte("LNRO0005")); n != len(c.VirtioMMIO) {
				t.Errorf("DSDT has %d LNRO0005 devices, want %d", n, len(c.VirtioMMIO))
			}
			if got, want := bytes.Contains(dsdt, []byte("COM1")), c.Serial; got != want {
				t.Errorf("DSDT has COM1 = %v, want %v", got, want)
			}
			if !bytes.Contains(dsdt, []byte("_S5_")) {
				t.Errorf("DSDT lacks _S5_")
			}
		})
	}
}

// iaslProblem matches what iasl prints for a problem, and not its
// "0 Errors, 0 Warnings" summary.
var iaslProblem = regexp.MustCompile(`(?i)(warning|error|remark)[^s]|does not contain a valid`)

// TestACPIWithIasl checks the tables with ACPICA's own tools: iasl -d
// must disassemble each without a complaint, and compiling the
// disassembly back must give the same bytes. The RSDP is not a table iasl
// 20200925 disassembles; TestACPITables checks it.
func TestACPIWithIasl(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skipf("iasl not installed (apt-get install acpica-tools): %v", err)
	}
	for i, tt := range acpiConfigs {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := buildACPI(ACPIAddr, configFor(t, i))
			if err != nil {
				t.Fatalf("buildACPI() = %v", err)
			}
			dir := t.TempDir()
			for sig, addr := range tb.addrs {
				if sig == "RSD PTR " {
					continue
				}
				tab := tableAt(t, tb, addr)
				dat := filepath.Join(dir, sig+".dat")
				if err := os.WriteFile(dat, tab, 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(iasl, "-d", dat).CombinedOutput()
				if err != nil || iaslProblem.Match(out) {
					t.Fatalf("iasl -d %s: %v\n%s", sig, err, out)
				}
				out, err = exec.Command(iasl, "-p", filepath.Join(dir, sig+"-re"), filepath.Join(dir, sig+".dsl")).CombinedOutput()
				if err != nil || iaslProblem.Match(out) {
					t.Fatalf("iasl %s.dsl: %v\n%s", sig, err, out)
				}
				re, err := os.ReadFile(filepath.Join(dir, sig+"-re.aml"))
				if err != nil {
					// Data tables keep their own name.
					re, err = os.ReadFile(filepath.Join(dir, sig+".aml"))
				}
				if err != nil {
					t.Fatalf("iasl wrote no AML for %s: %v", sig, err)
				}
				// iasl writes its own compiler ID and revision, hence its
				// own checksum; everything else must match.
				if err := sameTable(tab, re); err != nil {
					t.Errorf("%s recompiled by iasl: %v", sig, err)
				}
			}
		})
	}
}

func sameTable(ours, iasl []byte) error {
	if len(ours) != len(iasl) {
		return fmt.Errorf("%d bytes, iasl's %d", len(ours), len(iasl))
	}
	for i := range ours {
		if i == 9 || i >= 28 && i < 36 { // checksum, compiler ID and revision
			continue
		}
		if ours[i] != iasl[i] {
			return fmt.Errorf("byte %#x is %#x, iasl's %#x", i, ours[i], iasl[i])
		}
	}
	return nil
}

func TestDSDTRejectsHighPlacement(t *testing.T) {
	_, err := buildACPI(ACPIAddr, acpiConfig{CPUs: 1, VirtioMMIO: []devices.Placement{{Base: 0xfffff000, Size: 0x2000, IRQ: 5}}})
	if err == nil || !strings.Contains(err.Error(), "below 4 GiB") {
		t.Errorf("buildACPI(device across 4 GiB) = %v, want an error", err)
	}
}

// TestDSDTDescribesTPM disassembles the DSDT of a guest with a TPM with
// iasl: a PNP0C31 device whose only resource is the TIS's registers at
// TPMBase, as Linux's tpm_tis expects to find them.
func TestDSDTDescribesTPM(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skipf("iasl not installed (apt-get install acpica-tools): %v", err)
	}
	tb, err := buildACPI(ACPIAddr, acpiConfig{CPUs: 1, TPM: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dat := filepath.Join(dir, "DSDT.dat")
	if err := os.WriteFile(dat, tableAt(t, tb, tb.addrs["DSDT"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(iasl, "-d", dat).CombinedOutput(); err != nil {
		t.Fatalf("iasl -d: %v\n%s", err, out)
	}
	dsl, err := os.ReadFile(filepath.Join(dir, "DSDT.dsl"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?s)Device \(TPM\)\s*\{\s*Name \(_HID, EisaId \("PNP0C31"\)\).*Memory32Fixed \(ReadWrite,\s*0xFED40000,\s*// Address Base\s*0x00005000,\s*// Address Length`)
	if !want.Match(dsl) {
		t.Errorf("the DSDT does not describe the TPM at 0xFED40000:\n%s", dsl)
	}
}
