package dtb

import (
	"errors"
	"reflect"
	"testing"
)

func TestLookup(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	for _, tt := range []struct {
		path, want string
		err        error
	}{
		{"/", "/", nil},
		{"/cpus/cpu@1", "/cpus/cpu@1", nil},
		{"/memory", "/memory@40000000", nil},
		{"/soc/serial", "/soc@0/serial@1c28000", nil},
		{"/cpus/cpu@0/", "/cpus/cpu@0", nil},
		{"serial0", "/soc@0/serial@1c28000", nil},
		{"gic", "/interrupt-controller@1c81000", nil},
		{"/cpus/cpu@2", "", ErrNotFound},
		{"/memory@0", "", ErrNotFound},
		{"nosuchalias", "", ErrNotFound},
	} {
		t.Run(tt.path, func(t *testing.T) {
			n, err := tr.Lookup(tt.path)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Lookup(%q) = %v, want %v", tt.path, err, tt.err)
			}
			if err == nil && n.Path() != tt.want {
				t.Errorf("Lookup(%q) = %s, want %s", tt.path, n.Path(), tt.want)
			}
		})
	}
}

func TestStdoutPath(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	n, opts, err := tr.StdoutPath()
	if err != nil || n.Path() != "/soc@0/serial@1c28000" || opts != "115200n8" {
		t.Errorf("StdoutPath() = %v, %q, %v, want /soc@0/serial@1c28000, 115200n8", n, opts, err)
	}
	chosen := tr.Root.Child("chosen")
	chosen.SetString("stdout-path", "/cpus/cpu@1")
	if n, opts, err := tr.StdoutPath(); err != nil || n.Path() != "/cpus/cpu@1" || opts != "" {
		t.Errorf("StdoutPath() without options = %v, %q, %v, want /cpus/cpu@1", n, opts, err)
	}
	chosen.SetString("stdout-path", "serial9:9600")
	if _, _, err := tr.StdoutPath(); !errors.Is(err, ErrNotFound) {
		t.Errorf("StdoutPath() to a missing alias = %v, want %v", err, ErrNotFound)
	}
	tr.Root.Child("aliases").SetString("loop", "loop")
	if _, err := tr.Alias("loop"); !errors.Is(err, ErrBadValue) {
		t.Errorf("Alias(relative) = %v, want %v", err, ErrBadValue)
	}
	chosen.Delete()
	if _, _, err := tr.StdoutPath(); !errors.Is(err, ErrNotFound) {
		t.Errorf("StdoutPath() without /chosen = %v, want %v", err, ErrNotFound)
	}
}

func TestFind(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	for _, tt := range []struct {
		compatible string
		want       []string
	}{
		{"snps,dw-apb-uart", []string{"/soc@0/serial@1c28000", "/soc@0/serial@1c28400"}},
		{"arm,cortex-a15-gic", []string{"/interrupt-controller@1c81000"}},
		{"tandem,test", []string{"/"}},
		{"arm,gic", nil},
	} {
		t.Run(tt.compatible, func(t *testing.T) {
			var got []string
			for _, n := range tr.FindCompatible(tt.compatible) {
				got = append(got, n.Path())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("FindCompatible(%q) = %v, want %v", tt.compatible, got, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		ph   uint32
		want string
	}{{1, "/interrupt-controller@1c81000"}, {0x40, "/legacy"}, {0, ""}, {0xffffffff, ""}, {2, ""}} {
		n, err := tr.FindPhandle(tt.ph)
		if tt.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("FindPhandle(%#x) = %v, %v, want %v", tt.ph, n, err, ErrNotFound)
			}
			continue
		}
		if err != nil || n.Path() != tt.want {
			t.Errorf("FindPhandle(%#x) = %v, %v, want %s", tt.ph, n, err, tt.want)
		}
	}
}

func TestReg(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	for _, tt := range []struct {
		path string
		want []Region
		err  error
	}{
		{"/memory", []Region{{0x40000000, 0x1_0000_0000}}, nil},
		{"/interrupt-controller@1c81000", []Region{{0x1c81000, 0x1000}, {0x1c82000, 0x2000}}, nil},
		{"/soc/serial@1c28000", []Region{{0x1c28000, 0x400}}, nil},
		{"/cpus/cpu@1", []Region{{1, 0}}, nil},
		{"/chosen", nil, ErrNotFound},
		{"/", nil, ErrNotFound},
	} {
		t.Run(tt.path, func(t *testing.T) {
			n, err := tr.Lookup(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := n.Reg()
			if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Reg() = %v, %v, want %v, %v", got, err, tt.want, tt.err)
			}
		})
	}
	// A reg that is not a whole number of (address, size) pairs.
	n, _ := tr.Lookup("/memory")
	n.SetU32s("reg", 1, 2, 3)
	if _, err := n.Reg(); !errors.Is(err, ErrBadValue) {
		t.Errorf("Reg() of 3 cells under 2+2 = %v, want %v", err, ErrBadValue)
	}
	tr.Root.SetU32("#address-cells", 3)
	if _, err := n.Reg(); !errors.Is(err, ErrBadValue) {
		t.Errorf("Reg() under #address-cells 3 = %v, want %v", err, ErrBadValue)
	}
}

func TestInterrupts(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	serial, _ := tr.Lookup("serial0")
	ctrl, specs, err := tr.Interrupts(serial)
	if err != nil || ctrl.Path() != "/interrupt-controller@1c81000" || !reflect.DeepEqual(specs, [][]uint32{{0, 1, 4}, {0, 2, 4}}) {
		t.Errorf("Interrupts(serial0) = %v, %v, %v, want gic, [[0 1 4] [0 2 4]]", ctrl, specs, err)
	}
	serial.SetU32s("interrupts", 0, 1)
	if _, _, err := tr.Interrupts(serial); !errors.Is(err, ErrBadValue) {
		t.Errorf("Interrupts() of 2 cells with #interrupt-cells 3 = %v, want %v", err, ErrBadValue)
	}
	cpu, _ := tr.Lookup("/cpus/cpu@0")
	if _, _, err := tr.Interrupts(cpu); !errors.Is(err, ErrNotFound) {
		t.Errorf("Interrupts(cpu) = %v, want %v", err, ErrNotFound)
	}
	tr.Root.SetU32("interrupt-parent", 0x99)
	serial.SetU32s("interrupts", 0, 1, 4)
	if _, _, err := tr.Interrupts(serial); !errors.Is(err, ErrNotFound) {
		t.Errorf("Interrupts() with a dangling interrupt-parent = %v, want %v", err, ErrNotFound)
	}
}

func TestInterruptSpecs(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	gic, _ := tr.Lookup("gic")
	serial, _ := tr.Lookup("serial0")
	got, err := tr.InterruptSpecs(serial)
	if err != nil || len(got) != 2 || got[0].Parent != gic || !reflect.DeepEqual(got[1].Spec, []uint32{0, 2, 4}) {
		t.Fatalf("InterruptSpecs(serial0) from interrupts = %v, %v, want two specs to the GIC", got, err)
	}
	// A second controller with one cell, and a node whose
	// interrupts-extended names both: it takes precedence over interrupts.
	intc := tr.Root.AddNode("intc")
	intc.SetEmpty("interrupt-controller").SetU32("#interrupt-cells", 1)
	ph, gicPh := tr.Phandle(intc), tr.Phandle(gic)
	serial.SetU32s("interrupts-extended", gicPh, 1, 13, 0xf08, ph, 7)
	got, err = tr.InterruptSpecs(serial)
	want := []Interrupt{{gic, []uint32{1, 13, 0xf08}}, {intc, []uint32{7}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("InterruptSpecs(serial0) from interrupts-extended = %v, %v, want %v", got, err, want)
	}
	for _, tt := range []struct {
		name  string
		cells []uint32
		want  error
	}{
		{"short last entry", []uint32{gicPh, 1, 13}, ErrBadValue},
		{"dangling phandle", []uint32{0x99, 7}, ErrNotFound},
		{"phandle of a node without #interrupt-cells", []uint32{tr.Phandle(tr.Root.Child("chosen")), 7}, ErrNotFound},
	} {
		serial.SetU32s("interrupts-extended", tt.cells...)
		if _, err := tr.InterruptSpecs(serial); !errors.Is(err, tt.want) {
			t.Errorf("InterruptSpecs() with %s = %v, want %v", tt.name, err, tt.want)
		}
	}
	cpu, _ := tr.Lookup("/cpus/cpu@0")
	if _, err := tr.InterruptSpecs(cpu); !errors.Is(err, ErrNotFound) {
		t.Errorf("InterruptSpecs(cpu) = %v, want %v", err, ErrNotFound)
	}
}

func TestTypedValues(t *testing.T) {
	tr := mustParse(t, goodBlob(t))
	serial, _ := tr.Lookup("serial0")
	if v, err := serial.U64("big"); err != nil || v != 0x123456789abcdef0 {
		t.Errorf("U64(big) = %#x, %v, want 0x123456789abcdef0", v, err)
	}
	if v, err := serial.U32("reg-shift"); err != nil || v != 2 {
		t.Errorf("U32(reg-shift) = %v, %v, want 2", v, err)
	}
	if v, err := serial.U32s("interrupts"); err != nil || !reflect.DeepEqual(v, []uint32{0, 1, 4, 0, 2, 4}) {
		t.Errorf("U32s(interrupts) = %v, %v", v, err)
	}
	if v, err := serial.String("status"); err != nil || v != "okay" {
		t.Errorf("String(status) = %q, %v, want okay", v, err)
	}
	for _, tt := range []struct {
		name string
		get  func() error
		want error
	}{
		{"U32 of a string", func() error { _, err := serial.U32("status"); return err }, ErrBadValue},
		{"U64 of a u32", func() error { _, err := serial.U64("reg-shift"); return err }, ErrBadValue},
		{"U32s of 6 bytes", func() error { _, err := serial.U32s("mac-address"); return err }, ErrBadValue},
		{"String of a list", func() error { _, err := tr.Root.String("compatible"); return err }, ErrBadValue},
		{"String of bytes", func() error { _, err := serial.String("mac-address"); return err }, ErrBadValue},
		{"missing", func() error { _, err := serial.U32("nope"); return err }, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.get(); !errors.Is(err, tt.want) {
				t.Errorf("%s = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

// TestStringsTerminatedList covers string lists, in particular the input
// on which u-root's (*dt.Property).AsStringList (v0.16.0) panics: a list
// whose last string ends the value, i.e. every well-formed list. Its loop
// tests len(p.Value) instead of the unconsumed rest, so after the last
// string it searches an empty slice, gets -1 and slices value[:-1].
func TestStringsTerminatedList(t *testing.T) {
	for _, tt := range []struct {
		name  string
		value string
		want  []string
		err   error
	}{
		{"two strings (u-root panics)", "a\x00bc\x00", []string{"a", "bc"}, nil},
		{"one string", "arm,pl011\x00", []string{"arm,pl011"}, nil},
		{"empty string", "\x00", []string{""}, nil},
		{"empty strings", "\x00\x00", []string{"", ""}, nil},
		{"empty inside", "a\x00\x00b\x00", []string{"a", "", "b"}, nil},
		{"empty value", "", nil, nil},
		{"unterminated", "ab", nil, ErrBadValue},
		{"last unterminated", "a\x00b", nil, ErrBadValue},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Property{Name: "compatible", Value: []byte(tt.value)}
			got, err := p.Strings()
			if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Strings(%q) = %q, %v, want %q, %v", tt.value, got, err, tt.want, tt.err)
			}
			if err != nil || len(tt.want) == 0 {
				return
			}
			n := New().Root.SetStrings("compatible", tt.want...)
			if got := string(n.Prop("compatible").Value); got != tt.value {
				t.Errorf("SetStrings(%q) = %q, want %q", tt.want, got, tt.value)
			}
		})
	}
}

func TestHeaderLayout(t *testing.T) {
	// struct fdt_header: ten u32 fields in this order (spec 5.2).
	offs := []int{offMagic, offTotalSize, offOffDtStruct, offOffDtStrings, offOffMemRsvmap,
		offVersion, offLastCompVersion, offBootCPUIDPhys, offSizeDtStrings, offSizeDtStruct}
	for i, off := range offs {
		if off != 4*i {
			t.Errorf("header field %d at offset %d, want %d", i, off, 4*i)
		}
	}
	if headerSize != 4*len(offs) {
		t.Errorf("headerSize = %d, want %d", headerSize, 4*len(offs))
	}
	h := header{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	b := make([]byte, headerSize)
	h.encode(b)
	if got := decodeHeader(b); got != h {
		t.Errorf("decodeHeader(encode(%v)) = %v", h, got)
	}
	if b[3] != 1 || b[39] != 10 {
		t.Errorf("encode() is not big-endian: % x", b)
	}
}
