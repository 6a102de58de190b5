package qemuhost

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

func TestCardSize(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{
		{0, 1}, {1, 1}, {2, 2}, {3, 4}, {64 << 20, 64 << 20}, {64<<20 + 1, 128 << 20}, {140509184, 256 << 20},
	} {
		if got := CardSize(tt.in); got != tt.want {
			t.Errorf("CardSize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestZynqMPWithoutPMU adapts Debian's ZCU102 device tree for QEMU: the
// console UART and the SD controller take a fixed clock and lose their
// power domains and pins; the board's identity, GIC, timer and every
// other node stay as they were.
func TestZynqMPWithoutPMU(t *testing.T) {
	zcu, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("..", "..", "build", "cache", "boards", "arm64", zcu.DTB)
	testenv.RequireFile(t, file, "run `make testdata`")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := dtb.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	orig := tr.Clone()
	notes, err := zynqmpWithoutPMU(tr)
	if err != nil {
		t.Fatalf("zynqmpWithoutPMU() = %v", err)
	}
	if len(notes) != 2 {
		t.Errorf("notes = %q, want one for the UART and one for the SD controller", notes)
	}
	clk, err := tr.Lookup("/qemu-fixed-clock")
	if err != nil {
		t.Fatal(err)
	}
	ph := clk.PhandleOf()
	for _, path := range []string{"/axi/serial@ff000000", "/axi/mmc@ff170000"} {
		n, err := tr.Lookup(path)
		if err != nil {
			t.Fatal(err)
		}
		clocks, _ := n.U32s("clocks")
		if !slices.Equal(clocks, []uint32{ph, ph}) {
			t.Errorf("%s clocks = %v, want the fixed clock (%d) twice", path, clocks, ph)
		}
		for _, p := range []string{"power-domains", "pinctrl-0", "pinctrl-names"} {
			if n.Has(p) {
				t.Errorf("%s still has %s", path, p)
			}
		}
	}
	// Every other node is as it was: the second UART, the first SD
	// controller, the GIC, the root.
	for _, path := range []string{"/axi/serial@ff010000", "/axi/mmc@ff160000", "/axi/interrupt-controller@f9010000", "/timer", "/cpus"} {
		a, _ := orig.Lookup(path)
		b, _ := tr.Lookup(path)
		if a == nil || b == nil || !sameProps(a, b) {
			t.Errorf("%s changed", path)
		}
	}
	if got, _ := tr.Root.Strings("compatible"); got[0] != zcu.Compatible[0] {
		t.Errorf("root compatible = %q, want the board's", got)
	}
	if _, err := tr.Bytes(); err != nil {
		t.Errorf("Bytes() = %v", err)
	}
}

func sameProps(a, b *dtb.Node) bool {
	pa, pb := a.Properties(), b.Properties()
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if pa[i].Name != pb[i].Name || !bytes.Equal(pa[i].Value, pb[i].Value) {
			return false
		}
	}
	return true
}

// TestBoardConsole: a board's run takes its image's own lines for the
// host init's markers.
func TestBoardConsole(t *testing.T) {
	c := newConsole(nil, time.Now())
	c.board = &BoardImage{Booted: "tandem init: board", Done: "reboot: Power down"}
	c.Write([]byte("[    0.0] Booting Linux\nTANDEM-HOST exit=3\n"))
	if _, ok := c.status(); ok || c.booted != 0 {
		t.Fatalf("a board's run took the harness's markers: booted %v, status %v", c.booted, ok)
	}
	c.Write([]byte("tandem init: board \"ZynqMP ZCU102 Rev1.0\" (xlnx,zynqmp-zcu102-rev1.0), profile zcu102\n"))
	if c.booted == 0 {
		t.Errorf("booted not set by %q", c.board.Booted)
	}
	c.Write([]byte("tandem init: system ended; powering off\n[   33.1] reboot: Power down\n"))
	if st, ok := c.status(); !ok || st != 0 {
		t.Errorf("status() = %d, %v; want 0, true after %q", st, ok, c.board.Done)
	}
	if !strings.Contains(c.text(), "Power down") {
		t.Errorf("text() lost the console")
	}
}
