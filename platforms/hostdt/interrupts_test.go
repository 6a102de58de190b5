package hostdt

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
)

// tinyBoard is a made-up board as its DTB would say it: one Cortex-A7
// without reg under #address-cells = <0>, a GIC-400 whose maintenance
// interrupt is given with interrupts-extended, a second controller of
// two cells (as the BCM2836's per-core one), an architected timer and a
// UART, both on the GIC with interrupts-extended.
func tinyBoard(t *testing.T) (*dtb.Tree, map[string]*dtb.Node) {
	t.Helper()
	tr := dtb.New()
	r := tr.Root
	r.SetStrings("compatible", "test,tiny").SetU32("#address-cells", 1).SetU32("#size-cells", 1)
	cpus := r.AddNode("cpus").SetU32("#address-cells", 0).SetU32("#size-cells", 0)
	cpus.AddNode("cpu").SetString("device_type", "cpu").SetStrings("compatible", "arm,cortex-a7")
	gic := r.AddNode("interrupt-controller@1000")
	gic.SetStrings("compatible", "arm,gic-400").SetEmpty("interrupt-controller").SetU32("#interrupt-cells", 3).
		SetU32s("reg", 0x1000, 0x1000, 0x2000, 0x2000, 0x4000, 0x2000, 0x6000, 0x2000)
	intc := r.AddNode("local-intc@8000")
	intc.SetStrings("compatible", "brcm,bcm2836-l1-intc").SetEmpty("interrupt-controller").SetU32("#interrupt-cells", 2).
		SetU32s("reg", 0x8000, 0x100)
	g, l := tr.Phandle(gic), tr.Phandle(intc)
	r.SetU32("interrupt-parent", g)
	gic.SetU32s("interrupts-extended", g, gicPPI, 9, 0xf04)
	r.AddNode("timer").SetStrings("compatible", "arm,armv7-timer").
		SetU32s("interrupts-extended", g, 1, 13, 0xf08, g, 1, 14, 0xf08, g, 1, 11, 0xf08, g, 1, 10, 0xf08)
	r.AddNode("serial@10000").SetStrings("compatible", "ns16550a").SetU32s("reg", 0x10000, 0x100).
		SetU32s("interrupts-extended", g, gicSPI, 5, 4)
	r.AddNode("rtc@20000").SetStrings("compatible", "test,rtc").SetU32s("reg", 0x20000, 0x100).
		SetU32s("interrupts-extended", l, 3, 0)
	timer, _ := tr.Lookup("/timer")
	return tr, map[string]*dtb.Node{"gic": gic, "intc": intc, "timer": timer}
}

// TestReadInterrupts: interrupts-extended is read wherever interrupts
// are, and interrupts that go to another controller than the GIC are a
// fact, not an error.
func TestReadInterrupts(t *testing.T) {
	tests := []struct {
		name      string
		mutate    func(tr *dtb.Tree, n map[string]*dtb.Node)
		gic       bool     // a GIC found
		maint     bool     // with its maintenance interrupt
		onGIC     bool     // the timer on the GIC
		ppis      []uint32 // the timer's PPIs
		timerTo   string   // the timer's controller
		intc      string   // Facts.InterruptController
		note, err string
	}{
		{name: "interrupts-extended", gic: true, maint: true, onGIC: true, ppis: []uint32{13, 14, 11, 10},
			timerTo: "/interrupt-controller@1000", intc: "/interrupt-controller@1000"},
		{name: "timer on the per-core controller", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["timer"].DeleteProp("interrupts-extended")
			n["timer"].SetU32("interrupt-parent", tr.Phandle(n["intc"])).SetU32s("interrupts", 0, 4, 1, 4, 3, 4, 2, 4)
		}, gic: true, maint: true, timerTo: "/local-intc@8000", intc: "/interrupt-controller@1000",
			note: "interrupts go to /local-intc@8000 (brcm,bcm2836-l1-intc), not to an Arm GIC"},
		{name: "no GIC", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["timer"].DeleteProp("interrupts-extended")
			n["timer"].SetU32("interrupt-parent", tr.Phandle(n["intc"])).SetU32s("interrupts", 0, 4, 1, 4, 3, 4, 2, 4)
			tr.Root.SetU32("interrupt-parent", tr.Phandle(n["intc"]))
			n["gic"].Delete()
		}, timerTo: "/local-intc@8000", intc: "/local-intc@8000", note: "no Arm GIC node: interrupts go to /local-intc@8000"},
		{name: "maintenance interrupt with interrupts", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["gic"].DeleteProp("interrupts-extended")
			n["gic"].SetU32s("interrupts", gicPPI, 9, 0xf04)
		}, gic: true, maint: true, onGIC: true, ppis: []uint32{13, 14, 11, 10}, timerTo: "/interrupt-controller@1000", intc: "/interrupt-controller@1000"},
		{name: "no maintenance interrupt", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["gic"].DeleteProp("interrupts-extended")
		}, gic: true, onGIC: true, ppis: []uint32{13, 14, 11, 10}, timerTo: "/interrupt-controller@1000", intc: "/interrupt-controller@1000",
			note: "lists no maintenance interrupt"},
		{name: "GIC interrupt to another controller", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["gic"].SetU32s("interrupts-extended", tr.Phandle(n["intc"]), 9, 4)
		}, gic: true, onGIC: true, ppis: []uint32{13, 14, 11, 10}, timerTo: "/interrupt-controller@1000", intc: "/interrupt-controller@1000",
			note: "not to the GIC itself"},
		{name: "timer without interrupts", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["timer"].DeleteProp("interrupts-extended")
		}, gic: true, maint: true, intc: "/interrupt-controller@1000", note: "lists no interrupts"},
		{name: "timer with an empty interrupts-extended", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["timer"].SetU32s("interrupts-extended")
		}, gic: true, maint: true, intc: "/interrupt-controller@1000", note: "lists no interrupts"},
		{name: "timer half on the GIC", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			g, l := tr.Phandle(n["gic"]), tr.Phandle(n["intc"])
			n["timer"].SetU32s("interrupts-extended", g, 1, 13, 0xf08, l, 1, 4)
		}, err: "is not a GIC PPI"},
		{name: "timer entry short", mutate: func(tr *dtb.Tree, n map[string]*dtb.Node) {
			n["timer"].SetU32s("interrupts-extended", tr.Phandle(n["gic"]), 1, 13)
		}, err: "interrupts-extended"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, n := tinyBoard(t)
			if tt.mutate != nil {
				tt.mutate(tr, n)
			}
			f, err := Read(tr)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Read() = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Read() = %v", err)
			}
			if (f.GIC != nil) != tt.gic || (f.GIC != nil && f.GIC.HasMaintenance != tt.maint) {
				t.Errorf("GIC = %+v, want found %v, maintenance %v", f.GIC, tt.gic, tt.maint)
			}
			if f.GIC != nil && tt.maint && f.GIC.MaintenancePPI != 9 {
				t.Errorf("MaintenancePPI = %d, want 9", f.GIC.MaintenancePPI)
			}
			var to string
			if f.Timer != nil && f.Timer.Controller != nil {
				to = f.Timer.Controller.Path
			}
			if f.Timer == nil || f.Timer.OnGIC != tt.onGIC || !slices.Equal(f.Timer.PPIs, tt.ppis) || to != tt.timerTo {
				t.Errorf("Timer = %+v (to %q), want on GIC %v, PPIs %v, to %q", f.Timer, to, tt.onGIC, tt.ppis, tt.timerTo)
			}
			if got := f.InterruptController; got == nil || got.Path != tt.intc {
				t.Errorf("InterruptController = %v, want %s", got, tt.intc)
			}
			if tt.note != "" && !slices.ContainsFunc(f.Notes, func(s string) bool { return strings.Contains(s, tt.note) }) {
				t.Errorf("Notes = %q, want one containing %q", f.Notes, tt.note)
			}
			if len(f.CPUs) != 1 || f.CPUs[0].Reg != 0 || f.CPUs[0].Compatible != "arm,cortex-a7" {
				t.Errorf("CPUs = %+v, want one Cortex-A7 without reg", f.CPUs)
			}
		})
	}
}

// TestPassthroughInterruptsExtended: a device's SPI given with
// interrupts-extended is forwarded; one that goes to another controller
// is refused.
func TestPassthroughInterruptsExtended(t *testing.T) {
	tr, _ := tinyBoard(t)
	f, err := Read(tr)
	if err != nil {
		t.Fatal(err)
	}
	w := Window{Base: 0x0a000000, Size: 1 << 20, FirstSPI: 64}
	pn, err := Passthrough(tr, f, nil, []string{"/serial@10000"}, w)
	if err != nil {
		t.Fatalf("Passthrough(serial) = %v", err)
	}
	if q := pn[0].IRQs; len(q) != 1 || q[0].HostSPI != 5 || q[0].GuestSPI != 64 {
		t.Errorf("IRQs = %+v, want host SPI 5 -> guest SPI 64", q)
	}
	if pn[0].Node.Has("interrupts-extended") {
		t.Errorf("the guest node keeps interrupts-extended, which names a host phandle")
	}
	if irq, _ := pn[0].Node.U32s("interrupts"); !slices.Equal(irq, []uint32{gicSPI, 64, 4}) {
		t.Errorf("interrupts = %v, want <0 64 4>", irq)
	}
	_, err = Passthrough(tr, f, nil, []string{"/rtc@20000"}, w)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not to the GIC") {
		t.Errorf("Passthrough(rtc on another controller) = %v, want ErrRefused saying it is not on the GIC", err)
	}
}

func TestClusters(t *testing.T) {
	f := &Facts{CPUs: []CPU{{Compatible: "arm,cortex-a53"}, {Compatible: "arm,cortex-a72"}, {Compatible: "arm,cortex-a53"}}}
	want := []platforms.Cluster{{Compatible: "arm,cortex-a53", Count: 2}, {Compatible: "arm,cortex-a72", Count: 1}}
	if got := f.Clusters(); !slices.Equal(got, want) {
		t.Errorf("Clusters() = %v, want %v", got, want)
	}
	if got := ClusterString(want); got != "2× arm,cortex-a53 + 1× arm,cortex-a72" {
		t.Errorf("ClusterString() = %q", got)
	}
	if got := ClusterString(want[:1]); got != "arm,cortex-a53" {
		t.Errorf("ClusterString(one) = %q, want the compatible alone", got)
	}
	// A big.LITTLE profile must name both clusters to pass Check.
	b := &platforms.Board{CPU: platforms.CPU{Compatible: "arm,cortex-a53", Count: 3}}
	fd := findingOf(Check(b, f), "CPU compatible")
	if fd.OK {
		t.Errorf("Check of a one-cluster profile against two clusters = %v, want a mismatch", fd)
	}
	b.CPU.Clusters = want
	if fd := findingOf(Check(b, f), "CPU compatible"); !fd.OK {
		t.Errorf("Check with both clusters = %v, want OK", fd)
	}
}

func findingOf(fs []Finding, field string) Finding {
	for _, f := range fs {
		if f.Field == field {
			return f
		}
	}
	return Finding{Field: field + " (missing)"}
}
