package pl011

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
)

type countIRQ struct{ n atomic.Int32 }

func (c *countIRQ) Trigger() error { c.n.Add(1); return nil }

type access struct {
	write bool
	off   uint64
	val   uint32 // written, or expected when read
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
			name:    "polled transmit, as earlycon does",
			seq:     []access{{false, regFR, frTXFE | frRXFE}, {true, regDR, 'h'}, {true, regDR, 'i'}},
			wantOut: "hi",
		},
		{
			name: "reset values",
			seq:  []access{{false, regCR, resetCR}, {false, regIFLS, resetIFLS}, {false, regIMSC, 0}, {false, regRIS, 0}},
		},
		{
			name: "line and baud registers hold their values",
			seq: []access{{true, regIBRD, 13}, {true, regFBRD, 2}, {true, regLCRH, 0x70}, {true, regCR, 0x301},
				{false, regIBRD, 13}, {false, regFBRD, 2}, {false, regLCRH, 0x70}, {false, regCR, 0x301}},
		},
		{
			name: "PrimeCell ids match amba-pl011 (0x00041011) and 0xb105f00d",
			seq: []access{{false, 0xfe0, 0x11}, {false, 0xfe4, 0x10}, {false, 0xfe8, 0x14}, {false, 0xfec, 0x00},
				{false, 0xff0, 0x0d}, {false, 0xff4, 0xf0}, {false, 0xff8, 0x05}, {false, 0xffc, 0xb1}},
		},
		{
			name: "unknown offsets read zero and ignore writes",
			seq:  []access{{true, 0x80, 0xff}, {false, 0x80, 0}, {false, 0xfe2, 0}},
		},
		{
			name:    "receive with the interrupt enabled",
			input:   "ok",
			seq:     []access{{true, regIMSC, intRX | intRT}, {false, regMIS, intRX | intRT}, {false, regFR, frTXFE}, {false, regDR, 'o'}, {false, regDR, 'k'}, {false, regFR, frTXFE | frRXFE}, {false, regMIS, 0}, {false, regDR, 0}},
			wantIRQ: 1,
		},
		{
			name:  "receive masked raises nothing; RIS still shows it",
			input: "x",
			seq:   []access{{false, regRIS, intRX | intRT}, {false, regMIS, 0}},
		},
		{
			// pl011_start_tx_pio: write a burst, then unmask TX for the rest.
			name:    "transmit interrupt: set by a write, raised on unmask, cleared by ICR",
			seq:     []access{{true, regDR, 'a'}, {false, regRIS, intTX}, {true, regIMSC, intTX}, {false, regMIS, intTX}, {true, regDR, 'b'}, {true, regICR, intTX}, {false, regMIS, 0}, {true, regDR, 'c'}},
			wantOut: "abc",
			wantIRQ: 2, // the unmask, and the write after ICR
		},
		{
			name:    "writes while TX stays set send no more edges",
			seq:     []access{{true, regIMSC, intTX}, {true, regDR, '1'}, {true, regDR, '2'}, {true, regDR, '3'}},
			wantOut: "123",
			wantIRQ: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			irq := &countIRQ{}
			u := New(&out, irq)
			u.Input([]byte(tt.input))
			for i, a := range tt.seq {
				b := make([]byte, 4)
				if a.write {
					binary.LittleEndian.PutUint32(b, a.val)
					u.Write(a.off, b)
					continue
				}
				u.Read(a.off, b)
				if got := binary.LittleEndian.Uint32(b); got != a.val {
					t.Errorf("step %d: read %#x = %#x, want %#x", i, a.off, got, a.val)
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

// TestInputWhileHandling shows the edge rule: input arriving into an
// empty FIFO interrupts again; input arriving while data still waits
// (the handler's loop will see it) does not.
func TestInputWhileHandling(t *testing.T) {
	irq := &countIRQ{}
	u := New(nil, irq)
	u.Write(regIMSC, []byte{intRX | intRT, 0, 0, 0})
	u.Input([]byte("a"))
	u.Input([]byte("b")) // FIFO not empty: no new edge
	if got := irq.n.Load(); got != 1 {
		t.Fatalf("interrupts after two inputs = %d, want 1", got)
	}
	b := make([]byte, 1)
	u.Read(regDR, b)
	u.Read(regDR, b)
	u.Input([]byte("c")) // FIFO was drained: a new edge
	if got := irq.n.Load(); got != 2 {
		t.Errorf("interrupts after drain and input = %d, want 2", got)
	}
}

func TestInputBounded(t *testing.T) {
	u := New(nil, nil)
	u.Input(make([]byte, devices.MaxInput+100))
	b := make([]byte, 4)
	u.Read(regFR, b)
	if b[0]&frRXFF == 0 {
		t.Errorf("FR = %#x after %d bytes of input, want RXFF", b[0], devices.MaxInput+100)
	}
	if u.in.Len() != devices.MaxInput {
		t.Errorf("buffered %d bytes, want %d", u.in.Len(), devices.MaxInput)
	}
}
