package x86

import (
	"encoding/binary"
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// mpEntry is one parsed MP configuration table entry.
type mpEntry struct {
	typ  uint8
	body []byte
}

// parseMP walks an MP table the way a kernel would, checking framing.
func parseMP(t *testing.T, b []byte, addr uint64) []mpEntry {
	t.Helper()
	le := binary.LittleEndian
	if len(b) < mpfLen || string(b[:4]) != "_MP_" || b[8] != 1 || b[9] != 4 || sum(b[:mpfLen]) != 0 {
		t.Fatalf("MP floating pointer = % x, want _MP_, length 1, revision 4, checksum 0", b[:mpfLen])
	}
	ptr := uint64(le.Uint32(b[4:]))
	if ptr < addr || ptr-addr >= uint64(len(b)) {
		t.Fatalf("MP floating pointer points at %#x, outside the table at %#x", ptr, addr)
	}
	c := b[ptr-addr:]
	n := int(le.Uint16(c[4:]))
	if string(c[:4]) != "PCMP" || c[6] != 4 || n != len(c) || sum(c[:n]) != 0 {
		t.Fatalf("MP config header: %q rev %d length %d (have %d), sum %#x; want PCMP rev 4, sum 0", c[:4], c[6], n, len(c), sum(c[:n]))
	}
	if lapic := le.Uint32(c[36:]); lapic != LAPICAddr {
		t.Errorf("MP config LAPIC address = %#x, want %#x", lapic, uint32(LAPICAddr))
	}
	var ents []mpEntry
	rest := c[mpcHeaderLen:n]
	for len(rest) > 0 {
		size := mpEntryLen
		if rest[0] == mpEntryProc {
			size = mpProcLen
		}
		if rest[0] > mpEntryLocInt || len(rest) < size {
			t.Fatalf("MP entry type %d with %d bytes left", rest[0], len(rest))
		}
		ents = append(ents, mpEntry{rest[0], rest[:size]})
		rest = rest[size:]
	}
	if got := int(le.Uint16(c[34:])); got != len(ents) {
		t.Errorf("MP entry count = %d, want %d", got, len(ents))
	}
	return ents
}

func TestMPTable(t *testing.T) {
	v16 := devices.Placement{Base: VirtioBase, Size: VirtioSlotSize, IRQ: 16}
	v5 := devices.Placement{Base: VirtioBase + VirtioSlotSize, Size: VirtioSlotSize, IRQ: 5}
	tests := []struct {
		name   string
		cpus   int
		virtio []devices.Placement
		ioInts int
	}{
		{"one CPU", 1, nil, 16},
		{"four CPUs, virtio below and above 16", 4, []devices.Placement{v5, v16}, 17},
		{"max CPUs", MaxCPUs, nil, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := mpTable(MPTableAddr, tt.cpus, tt.virtio)
			if len(b) > mpTableSize {
				t.Errorf("mpTable() = %d bytes, want at most %d", len(b), mpTableSize)
			}
			count := map[uint8]int{}
			for _, e := range parseMP(t, b, MPTableAddr) {
				count[e.typ]++
				switch e.typ {
				case mpEntryProc:
					id := e.body[1]
					wantFlags := uint8(mpCPUEnabled)
					if id == 0 {
						wantFlags |= mpCPUBSP
					}
					if e.body[3] != wantFlags {
						t.Errorf("processor %d flags = %#x, want %#x", id, e.body[3], wantFlags)
					}
				case mpEntryBus:
					if string(e.body[2:]) != "ISA   " {
						t.Errorf("bus = %q, want ISA", e.body[2:])
					}
				case mpEntryIOAPIC:
					if e.body[1] != uint8(tt.cpus) || binary.LittleEndian.Uint32(e.body[4:]) != IOAPICAddr {
						t.Errorf("IOAPIC id %d at %#x, want %d at %#x", e.body[1], binary.LittleEndian.Uint32(e.body[4:]), tt.cpus, uint32(IOAPICAddr))
					}
				case mpEntryIOInt:
					if e.body[5] != e.body[7] || e.body[6] != uint8(tt.cpus) {
						t.Errorf("I/O interrupt: IRQ %d to IOAPIC %d pin %d, want identity to IOAPIC %d", e.body[5], e.body[6], e.body[7], tt.cpus)
					}
				}
			}
			want := map[uint8]int{mpEntryProc: tt.cpus, mpEntryBus: 1, mpEntryIOAPIC: 1, mpEntryIOInt: tt.ioInts, mpEntryLocInt: 2}
			for typ, n := range want {
				if count[typ] != n {
					t.Errorf("MP table has %d entries of type %d, want %d", count[typ], typ, n)
				}
			}
		})
	}
}

func TestCPUIDFor(t *testing.T) {
	supported := []kvm.CPUIDEntry{
		{Function: 0, EAX: 0x1f},
		{Function: leafFeatures, EBX: 0xff08ffff, ECX: 0x1, EDX: 0x1},
		{Function: leafCacheParams, Index: 0, EAX: 0xfc004121},
		{Function: leafCacheParams, Index: 4, EAX: 0},
		{Function: leafTopology, Index: 0, Flags: kvm.CPUIDFlagSignificantIndex},
		{Function: leafTopology, Index: 1, Flags: kvm.CPUIDFlagSignificantIndex},
		{Function: leafTopology, Index: 2, Flags: kvm.CPUIDFlagSignificantIndex},
		{Function: leafHypervisor, EAX: leafKVMFeatures},
		{Function: leafKVMFeatures, EAX: 0x1234},
	}
	got := cpuidFor(supported, 3, 6)
	find := func(fn, idx uint32) kvm.CPUIDEntry {
		for _, e := range got {
			if e.Function == fn && e.Index == idx {
				return e
			}
		}
		t.Fatalf("cpuidFor() lacks leaf %#x.%d", fn, idx)
		return kvm.CPUIDEntry{}
	}
	tests := []struct {
		name      string
		got, want uint32
	}{
		{"leaf 1 EBX: APIC ID 3, 6 logical, CLFLUSH kept", find(1, 0).EBX, 0x0306ffff},
		{"leaf 1 ECX: hypervisor bit", find(1, 0).ECX, 0x80000001},
		{"leaf 1 EDX: HTT", find(1, 0).EDX, 0x10000001},
		{"leaf 4 EAX: 6 cores", find(4, 0).EAX, 5<<26 | 0x4121},
		{"leaf 4.4 EAX: no cache, untouched", find(4, 4).EAX, 0},
		{"leaf 0xb.0 EDX: x2APIC ID", find(0xb, 0).EDX, 3},
		{"leaf 0xb.0 EBX: one thread", find(0xb, 0).EBX, 1},
		{"leaf 0xb.0 ECX: SMT level", find(0xb, 0).ECX, 0x100},
		{"leaf 0xb.1 EAX: 3 bits for 6 cores", find(0xb, 1).EAX, 3},
		{"leaf 0xb.1 EBX: 6 cores", find(0xb, 1).EBX, 6},
		{"leaf 0xb.1 ECX: core level", find(0xb, 1).ECX, 0x201},
		{"leaf 0xb.2 ECX: invalid level", find(0xb, 2).ECX, 2},
		{"hypervisor max leaf kept", find(leafHypervisor, 0).EAX, leafKVMFeatures},
		{"hypervisor signature", find(leafHypervisor, 0).EBX, 0x4b4d564b},
		{"KVM features kept", find(leafKVMFeatures, 0).EAX, 0x1234},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("cpuidFor() = %#x, want %#x", tt.got, tt.want)
			}
		})
	}
	if supported[1].EBX != 0xff08ffff {
		t.Errorf("cpuidFor() modified its input")
	}
	// Without a hypervisor leaf from KVM, one is added with KVM's signature.
	added := cpuidFor([]kvm.CPUIDEntry{{Function: leafFeatures}}, 0, 1)
	if len(added) != 2 || added[1].Function != leafHypervisor || added[1].EBX != kvmSignatureEBX || added[1].EAX != leafHypervisor {
		t.Errorf("cpuidFor(no hypervisor leaf) = %+v, want a KVMKVMKVM leaf appended", added)
	}
}

func TestGDTSegments(t *testing.T) {
	g := gdt()
	tests := []struct {
		name string
		got  kvm.Segment
		want kvm.Segment
	}{
		{"code64", segment(selCode, g[selCode>>3]), kvm.Segment{Limit: 0xffffffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}},
		{"data", segment(selData, g[selData>>3]), kvm.Segment{Limit: 0xffffffff, Selector: 0x18, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}},
		{"TSS", segment(selTSS, g[selTSS>>3]), kvm.Segment{Limit: 0x67, Selector: 0x20, Type: 0xb, Present: 1}},
		{"base split", segment(0, gdtEntry(gdtData, 0x12345678, 0xfffff)), kvm.Segment{Base: 0x12345678, Limit: 0xffffffff, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("segment() = %+v, want %+v", tt.got, tt.want)
			}
		})
	}
	if g[selCode>>3] != 0x00af9b000000ffff || g[selData>>3] != 0x00cf93000000ffff {
		t.Errorf("gdt() code %#x data %#x, want the flat descriptors 0x00af9b000000ffff and 0x00cf93000000ffff", g[selCode>>3], g[selData>>3])
	}
}
