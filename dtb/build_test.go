package dtb

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"reflect"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// buildGuest builds a small tree of the shape arch/arm64 generates for a
// guest.
func buildGuest(t *testing.T) *Tree {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tr := New()
	tr.AddReservation(0x4ff00000, 0x100000)
	root := tr.Root
	root.SetU32("#address-cells", 2).SetU32("#size-cells", 2).
		SetStrings("compatible", "tandem,virt").
		SetString("model", "Tandem virtual machine")

	cpus := root.AddNode("cpus").SetU32("#address-cells", 1).SetU32("#size-cells", 0)
	for i := range uint64(2) {
		cpu := cpus.AddNodeAt("cpu", i).
			SetString("device_type", "cpu").
			SetStrings("compatible", "arm,arm-v8").
			SetString("enable-method", "psci")
		must(cpu.SetReg(Region{Address: i}))
	}

	mem := root.AddNodeAt("memory", 0x40000000).SetString("device_type", "memory")
	must(mem.SetReg(Region{0x40000000, 0x10000000}))

	root.AddNode("psci").SetStrings("compatible", "arm,psci-1.0", "arm,psci-0.2").SetString("method", "hvc")

	gic := root.AddNodeAt("intc", 0x8000000).
		SetStrings("compatible", "arm,gic-v3").
		SetU32("#interrupt-cells", 3).
		SetU32("#address-cells", 0).
		SetEmpty("interrupt-controller")
	must(gic.SetReg(Region{0x8000000, 0x10000}, Region{0x80a0000, 0xf60000}))
	root.SetU32("interrupt-parent", tr.Phandle(gic))

	const ppi, levelLow = 1, 8 // GIC PPI, IRQ_TYPE_LEVEL_LOW
	root.AddNode("timer").
		SetStrings("compatible", "arm,armv8-timer").
		SetU32s("interrupts", ppi, 13, levelLow, ppi, 14, levelLow, ppi, 11, levelLow, ppi, 10, levelLow).
		SetEmpty("always-on")

	clk := root.AddNode("apb-pclk").
		SetStrings("compatible", "fixed-clock").
		SetU32("#clock-cells", 0).
		SetU32("clock-frequency", 24000000).
		SetString("clock-output-names", "clk24mhz")

	uart := root.AddNodeAt("pl011", 0x9000000).
		SetStrings("compatible", "arm,pl011", "arm,primecell").
		SetU32s("interrupts", 0, 1, 4).
		SetU32s("clocks", tr.Phandle(clk), tr.Phandle(clk)).
		SetStrings("clock-names", "uartclk", "apb_pclk")
	must(uart.SetReg(Region{0x9000000, 0x1000}))

	root.AddNode("chosen").
		SetString("bootargs", "console=ttyAMA0 earlycon").
		SetString("stdout-path", "/pl011@9000000:115200n8").
		SetU64("linux,initrd-start", 0x48000000).
		SetU64("linux,initrd-end", 0x48100000).
		SetBytes("rng-seed", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	return tr
}

// TestBuildGuest checks the builder against testdata/guest.dts (rewrite it
// with go test ./dtb -run TestBuildGuest -update), then has dtc compile the
// golden source and compares dtc's blob with ours.
func TestBuildGuest(t *testing.T) {
	tr := buildGuest(t)
	got := dts(t, tr)
	const golden = "testdata/guest.dts"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("reading golden file (create it with -update): %v", err)
	}
	if got != string(want) {
		t.Errorf("WriteDTS(guest) differs from %s:\n%s", golden, lineDiff(got, string(want)))
	}
	blob := mustBytes(t, tr)
	if b2 := mustBytes(t, buildGuest(t)); !bytes.Equal(blob, b2) {
		t.Errorf("two builds of the same tree gave different bytes")
	}

	// The blob answers the questions a guest kernel asks.
	back := mustParse(t, blob)
	uart, opts, err := back.StdoutPath()
	if err != nil || uart.Path() != "/pl011@9000000" || opts != "115200n8" {
		t.Errorf("StdoutPath() = %v, %q, %v, want /pl011@9000000, 115200n8", uart, opts, err)
	}
	ctrl, specs, err := back.Interrupts(uart)
	if err != nil || ctrl.Path() != "/intc@8000000" || !reflect.DeepEqual(specs, [][]uint32{{0, 1, 4}}) {
		t.Errorf("Interrupts(uart) = %v, %v, %v, want /intc@8000000, [[0 1 4]]", ctrl, specs, err)
	}
	if regs, err := back.Root.Child("cpus").Child("cpu@1").Reg(); err != nil || !reflect.DeepEqual(regs, []Region{{1, 0}}) {
		t.Errorf("cpu@1.Reg() = %v, %v, want [{1 0}]", regs, err)
	}
	if !reflect.DeepEqual(back.Reservations, []Reservation{{0x4ff00000, 0x100000}}) {
		t.Errorf("Reservations = %v, want [{0x4ff00000 0x100000}]", back.Reservations)
	}

	if _, err := exec.LookPath("dtc"); err != nil {
		t.Skipf("dtc not installed, golden not compiled: %v", err)
	}
	out, warn := runDTC(t, want, "-I", "dts", "-O", "dtb")
	if warn != "" {
		t.Errorf("dtc -I dts warned on %s: %s", golden, warn)
	}
	if !bytes.Equal(out, blob) {
		t.Errorf("dtc's compilation of %s differs from Bytes()", golden)
	}
	if _, warn := runDTC(t, blob, "-I", "dtb", "-O", "dts"); warn != "" {
		t.Errorf("dtc -I dtb warned on Bytes(): %s", warn)
	}
}

func TestSetReg(t *testing.T) {
	tr := New()
	bus := tr.Root.AddNode("bus").SetU32("#address-cells", 1).SetU32("#size-cells", 1)
	for _, tt := range []struct {
		name   string
		parent *Node
		regs   []Region
		want   []byte
		err    error
	}{
		{"one cell each", bus, []Region{{0x1000, 0x100}}, []byte{0, 0, 0x10, 0, 0, 0, 1, 0}, nil},
		{"default cells 2+1", tr.Root, []Region{{0x1_0000_0000, 0x10}}, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x10}, nil},
		{"address too big", bus, []Region{{0x1_0000_0000, 1}}, nil, ErrBadValue},
		{"size too big", bus, []Region{{0, 0x1_0000_0000}}, nil, ErrBadValue},
		{"no parent", nil, []Region{{0, 1}}, nil, ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := &Node{Name: "dev@0"}
			if tt.parent != nil {
				n = tt.parent.AddNode("dev@0")
				defer n.Delete()
			}
			err := n.SetReg(tt.regs...)
			if !errors.Is(err, tt.err) {
				t.Fatalf("SetReg(%v) = %v, want %v", tt.regs, err, tt.err)
			}
			if err != nil {
				return
			}
			if got := n.Prop("reg").Value; !bytes.Equal(got, tt.want) {
				t.Errorf("SetReg(%v) wrote % x, want % x", tt.regs, got, tt.want)
			}
			if got, err := n.Reg(); err != nil || !reflect.DeepEqual(got, tt.regs) {
				t.Errorf("Reg() = %v, %v, want %v", got, err, tt.regs)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		name  string
		build func(*Tree)
		want  error
	}{
		{"duplicate node", func(tr *Tree) { tr.Root.AddNode("a"); tr.Root.AddNode("a") }, ErrBadStructure},
		{"bad node name", func(tr *Tree) { tr.Root.AddNode("a b") }, ErrBadName},
		{"empty node name", func(tr *Tree) { tr.Root.AddNode("") }, ErrBadName},
		{"bad property name", func(tr *Tree) { tr.Root.SetEmpty("x/y") }, ErrBadName},
		{"property too big", func(tr *Tree) { tr.Root.Set("x", make([]byte, MaxPropertyLen+1)) }, ErrTooLarge},
		{"named root", func(tr *Tree) { tr.Root.Name = "root" }, ErrBadName},
		{"too deep", func(tr *Tree) {
			n := tr.Root
			for range MaxDepth {
				n = n.AddNode("n")
			}
		}, ErrTooDeep},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := New()
			tt.build(tr)
			if _, err := tr.Bytes(); !errors.Is(err, tt.want) {
				t.Errorf("Bytes() = %v, want %v", err, tt.want)
			}
			if err := tr.WriteDTS(&bytes.Buffer{}); !errors.Is(err, tt.want) {
				t.Errorf("WriteDTS() = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPhandle(t *testing.T) {
	tr := mustParse(t, goodBlob(t)) // uses phandles 1 (gic) and 0x40 (legacy)
	gic, _ := tr.Lookup("/interrupt-controller@1c81000")
	cpu0, _ := tr.Lookup("/cpus/cpu@0")
	cpu1, _ := tr.Lookup("/cpus/cpu@1")
	for _, tt := range []struct {
		name string
		n    *Node
		want uint32
	}{
		{"existing", gic, 1},
		{"new after highest", cpu0, 0x41},
		{"same node again", cpu0, 0x41},
		{"next new", cpu1, 0x42},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tr.Phandle(tt.n); got != tt.want {
				t.Errorf("Phandle(%s) = %#x, want %#x", tt.n.Path(), got, tt.want)
			}
			if got, err := tr.FindPhandle(tt.want); err != nil || got != tt.n {
				t.Errorf("FindPhandle(%#x) = %v, %v, want %s", tt.want, got, err, tt.n.Path())
			}
		})
	}
	if ph := New().Phandle(New().Root); ph != 1 {
		t.Errorf("Phandle() in an empty tree = %#x, want 1", ph)
	}
	// A blob that used the highest value: allocation must not wrap to 0 or
	// hand out the reserved 0xffffffff.
	top := New()
	top.Root.AddNode("a").SetU32("phandle", 0xfffffffe)
	top.Root.AddNode("b").SetU32("phandle", 1)
	if ph := top.Phandle(top.Root.AddNode("c")); ph != 2 {
		t.Errorf("Phandle() after 0xfffffffe = %#x, want 2", ph)
	}
}

func TestCopyAndDelete(t *testing.T) {
	src := mustParse(t, goodBlob(t))
	serial, err := src.Lookup("serial0")
	if err != nil {
		t.Fatal(err)
	}
	dst := buildGuest(t)
	c, err := dst.CopyNode(dst.Root, serial)
	if err != nil {
		t.Fatalf("CopyNode() = %v", err)
	}
	if c.Path() != "/serial@1c28000" || !c.IsCompatible("snps,dw-apb-uart") {
		t.Errorf("CopyNode() = %s, want /serial@1c28000 compatible with snps,dw-apb-uart", c.Path())
	}
	serial.Prop("status").Value[0] = 'X'
	if s, _ := c.String("status"); s != "okay" {
		t.Errorf("copy's status = %q after changing the source, want okay (deep copy)", s)
	}
	if _, err := dst.CopyNode(dst.Root, serial); !errors.Is(err, ErrBadStructure) {
		t.Errorf("CopyNode() twice = %v, want %v", err, ErrBadStructure)
	}
	// The source gic has phandle 1, which the guest's intc already uses.
	gic, _ := src.Alias("gic")
	before := len(dst.Root.Children())
	if _, err := dst.CopyNode(dst.Root, gic); !errors.Is(err, ErrPhandleCollision) {
		t.Errorf("CopyNode(gic) = %v, want %v", err, ErrPhandleCollision)
	}
	if after := len(dst.Root.Children()); after != before {
		t.Errorf("failed CopyNode left %d children, want %d", after, before)
	}
	out := mustBytes(t, dst)
	if _, err := mustParse(t, out).Lookup("/serial@1c28000"); err != nil {
		t.Errorf("copied node lost in Bytes(): %v", err)
	}

	other, _ := src.Lookup("/soc/serial@1c28400")
	other.Delete()
	if n, err := src.Lookup("/soc/serial@1c28400"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup(deleted) = %v, %v, want %v", n, err, ErrNotFound)
	}
	if other.Parent() != nil {
		t.Errorf("deleted node still has parent %s", other.Parent().Path())
	}
	if !src.Root.Child("legacy").DeleteProp("linux,phandle") || src.Root.Child("legacy").Has("linux,phandle") {
		t.Errorf("DeleteProp(linux,phandle) did not remove it")
	}
	mustParse(t, mustBytes(t, src))
}
