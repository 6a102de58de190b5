package qemuhost

import (
	"strings"
	"testing"
	"time"
)

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
