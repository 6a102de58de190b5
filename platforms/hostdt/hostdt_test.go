package hostdt

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

// cubieboard2 is the built-in profile of the A20 board a20 reads.
var cubieboard2, _ = all.Lookup("cubieboard2")

func a20(t *testing.T) (*Facts, *dtb.Tree) {
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "..", "build", "cache", "boards", "armhf", "sun7i-a20-cubieboard2.dtb")
	testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
	f, tr, err := ReadFile(p)
	if err != nil {
		t.Fatalf("ReadFile() = %v", err)
	}
	return f, tr
}

func TestPassthrough(t *testing.T) {
	f, tr := a20(t)
	w := Window{Base: 0x0a000000, Size: 1 << 20, FirstSPI: 64}
	pn, err := Passthrough(tr, f, cubieboard2, []string{"/soc/spi@1c05000"}, w)
	if err != nil {
		t.Fatalf("Passthrough(spi) = %v", err)
	}
	got := pn[0]
	if m := got.MMIO[0]; m.Host.Base != 0x1c05000 || m.Guest.Base != 0x0a000000 || m.Guest.Size != 0x1000 {
		t.Errorf("MMIO = %+v, want host 0x1c05000 -> guest 0xa000000, 0x1000 bytes", m)
	}
	if q := got.IRQs[0]; q.HostSPI != 10 || q.GuestSPI != 64 {
		t.Errorf("IRQs = %+v, want host SPI 10 -> guest SPI 64", q)
	}
	if irq, _ := got.Node.U32s("interrupts"); len(irq) != 3 || irq[1] != 64 {
		t.Errorf("interrupts = %v, want <0 64 4>", irq)
	}
	if got.Node.Has("clocks") || got.Node.Has("dmas") {
		t.Errorf("host phandle properties kept: dropped %v", got.Dropped)
	}
	if got.Node.Name != "spi@a000000" {
		t.Errorf("Node.Name = %q, want spi@a000000 (the guest address)", got.Node.Name)
	}
	if s, _ := got.Node.String("status"); s != "okay" {
		t.Errorf("status = %q, want okay", s)
	}

	refused := []struct{ path, want string }{
		{"/soc/serial@1c28000", "denylists"},
		{"/soc/interrupt-controller@1c81000", "interrupt controller"},
		{"/timer", "timer"},
		{"/cpus/cpu@0", "cpu"},
		{"/soc/clock@1c20000", "provides"},
		{"/soc/pinctrl@1c20800", "provides"},
		// The CAN controller shares its page with an enabled I2C controller.
		{"/soc/can@1c2bc00", "share the 4 KiB page"},
		{"/nope", "no node"},
	}
	for _, tt := range refused {
		_, err := Passthrough(tr, f, cubieboard2, []string{tt.path}, w)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Passthrough(%s) = %v, want an error containing %q", tt.path, err, tt.want)
		}
		if err != nil && tt.want != "no node" && !errors.Is(err, ErrRefused) {
			t.Errorf("Passthrough(%s) = %v, want ErrRefused", tt.path, err)
		}
	}
	if _, err := Passthrough(tr, f, cubieboard2, []string{"/soc/spi@1c05000"}, Window{Base: 0x0a000000, Size: 0x800}); err == nil {
		t.Errorf("Passthrough into a too small window = nil error")
	}
}

// TestReadCorrupt breaks one part of a real DTB at a time: Read reports
// the node, never panics.
func TestReadCorrupt(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(tr *dtb.Tree)
		want   string
	}{
		{"no root compatible", func(tr *dtb.Tree) { tr.Root.DeleteProp("compatible") }, "not a board device tree"},
		{"GIC reg odd length", func(tr *dtb.Tree) {
			n, _ := tr.Lookup("/soc/interrupt-controller@1c81000")
			n.Set("reg", []byte{1, 2, 3})
		}, "interrupt-controller@1c81000"},
		{"timer SPI", func(tr *dtb.Tree) {
			n, _ := tr.Lookup("/timer")
			n.SetU32s("interrupts", 0, 13, 4)
		}, "not a GIC PPI"},
		{"cpu reg not cells", func(tr *dtb.Tree) {
			n, _ := tr.Lookup("/cpus/cpu@0")
			n.Set("reg", []byte{1})
		}, "cpu@0"},
		{"bad ranges", func(tr *dtb.Tree) {
			n, _ := tr.Lookup("/soc")
			n.SetU32s("ranges", 1, 2)
		}, "ranges"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, tr := a20(t)
			tt.mutate(tr)
			_, err := Read(tr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
