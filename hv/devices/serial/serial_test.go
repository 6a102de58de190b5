package serial

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
)

type countIRQ struct{ n atomic.Int32 }

func (c *countIRQ) Trigger() error { c.n.Add(1); return nil }

type access struct {
	write bool
	off   uint64
	val   uint8 // written, or expected when read
}

func TestUART(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		seq     []access
		wantOut string
		wantIRQ int32
	}{
		{
			name:    "polled transmit",
			seq:     []access{{false, regLSR, lsrTHRE | lsrTEMT}, {true, regData, 'h'}, {true, regData, 'i'}},
			wantOut: "hi",
		},
		{
			// The 8250 probe: scratch register holds a value.
			name: "scratch register",
			seq:  []access{{true, regSCR, 0xa5}, {false, regSCR, 0xa5}, {true, regSCR, 0x5a}, {false, regSCR, 0x5a}},
		},
		{
			// Linux's autoconfig: MCR = LOOP|OUT2|RTS must read MSR = DCD|CTS.
			name: "loopback modem lines",
			seq:  []access{{true, regMCR, mcrLoop | mcrOUT2 | mcrRTS}, {false, regMSR, msrDCD | msrCTS}},
		},
		{
			name:    "loopback data stays inside",
			seq:     []access{{true, regMCR, mcrLoop}, {true, regData, 'x'}, {false, regLSR, lsrTHRE | lsrTEMT | lsrDR}, {false, regData, 'x'}},
			wantOut: "",
		},
		{
			name: "divisor latch",
			seq: []access{{true, regLCR, lcrDLAB}, {true, regData, 1}, {true, regIER, 0}, {false, regData, 1},
				{true, regLCR, 0x03}, {false, regLCR, 0x03}},
		},
		{
			name:    "enabling THRI raises an interrupt and IIR reports it once",
			seq:     []access{{true, regIER, ierTHRI}, {false, regIIR, iirTHRI}, {false, regIIR, iirNoInt}},
			wantIRQ: 1,
		},
		{
			name:    "interrupt-driven transmit",
			seq:     []access{{true, regIER, ierTHRI}, {false, regIIR, iirTHRI}, {true, regData, 'a'}, {false, regIIR, iirTHRI}},
			wantOut: "a",
			wantIRQ: 2,
		},
		{
			name:    "receive",
			input:   "ok",
			seq:     []access{{true, regIER, ierRDI}, {false, regIIR, iirRDI}, {false, regData, 'o'}, {false, regData, 'k'}, {false, regLSR, lsrTHRE | lsrTEMT}, {false, regIIR, iirNoInt}},
			wantIRQ: 1,
		},
		{
			name: "FIFO bits in IIR",
			seq:  []access{{true, regIIR, fcrEnableFIFO}, {false, regIIR, iirNoInt | iirFIFO}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			irq := &countIRQ{}
			u := New(&out, irq)
			u.Input([]byte(tt.input))
			for i, a := range tt.seq {
				b := []byte{a.val}
				if a.write {
					u.Write(a.off, b)
					continue
				}
				u.Read(a.off, b)
				if b[0] != a.val {
					t.Errorf("step %d: read reg %d = %#x, want %#x", i, a.off, b[0], a.val)
				}
			}
			if got := out.String(); got != tt.wantOut {
				t.Errorf("output = %q, want %q", got, tt.wantOut)
			}
			if got := irq.n.Load(); got != tt.wantIRQ {
				t.Errorf("interrupts = %d, want %d", got, tt.wantIRQ)
			}
		})
	}
}

func TestInputBounded(t *testing.T) {
	u := New(nil, nil)
	u.Input(make([]byte, devices.MaxInput+100))
	u.Input([]byte("more"))
	if u.in.Len() != devices.MaxInput {
		t.Errorf("buffered input = %d bytes, want the cap %d", u.in.Len(), devices.MaxInput)
	}
}

// TestLoopbackBounded is the regression test for a guest that sets
// MCR.LOOP and writes THR without reading: every byte came back as input
// with no cap (a probe buffered 262,144 bytes). Now the loopback path
// shares the 64 KiB cap of Input, and the overflow shows as LSR.OE.
func TestLoopbackBounded(t *testing.T) {
	u := New(nil, nil)
	b := []byte{mcrLoop}
	u.Write(regMCR, b)
	const writes = 4 * devices.MaxInput
	for i := 0; i < writes; i++ {
		u.Write(regData, []byte{byte(i)})
	}
	if u.in.Len() != devices.MaxInput {
		t.Errorf("buffered %d bytes after %d loopback writes, want the cap %d", u.in.Len(), writes, devices.MaxInput)
	}
	u.Read(regLSR, b)
	if want := uint8(lsrDR | lsrOE | lsrTHRE | lsrTEMT); b[0] != want {
		t.Errorf("LSR = %#x after the overflow, want %#x (DR, OE)", b[0], want)
	}
	u.Read(regLSR, b)
	if b[0]&lsrOE != 0 {
		t.Errorf("LSR = %#x on a second read, want OE cleared", b[0])
	}
	// The first MaxInput bytes are kept, in order.
	for i := 0; i < 3; i++ {
		u.Read(regData, b)
		if b[0] != byte(i) {
			t.Fatalf("RBR read %d = %#x, want %#x", i, b[0], byte(i))
		}
	}
}
