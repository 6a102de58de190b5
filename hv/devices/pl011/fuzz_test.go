package pl011

import (
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/internal/devfuzz"
)

const evInput = 0 // the host types Data

type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// FuzzPL011 drives the PL011's 4 KiB window with any sequence of reads,
// writes and host input. The device must not panic, hold at most
// devices.MaxInput bytes of input, write no more output than the guest
// wrote to UARTDR, and keep UARTMIS = UARTRIS & UARTIMSC and UARTFR's
// FIFO flags true to its queue.
func FuzzPL011(f *testing.F) {
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "linux-probe", Ops: []devfuzz.Op{
			devfuzz.R(0xfe0, 4), devfuzz.R(0xfe4, 4), devfuzz.R(0xff0, 4), devfuzz.W(regCR, 4, 0), devfuzz.W(regIBRD, 4, 13),
			devfuzz.W(regLCRH, 4, 0x70), devfuzz.W(regCR, 4, 0x301), devfuzz.W(regIMSC, 4, intRX|intRT|intTX),
			devfuzz.W(regDR, 4, 'a'), devfuzz.R(regMIS, 4), devfuzz.W(regICR, 4, 0x7ff), devfuzz.R(regFR, 4),
		}},
		devfuzz.Seed{Name: "receive", Ops: []devfuzz.Op{
			devfuzz.W(regIMSC, 4, intRX), devfuzz.E(evInput, []byte("hello")), devfuzz.R(regMIS, 4), devfuzz.R(regDR, 4),
			devfuzz.R(regDR, 1), devfuzz.R(regFR, 2), devfuzz.R(regRIS, 8),
		}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := &countWriter{}
		u := New(out, nil)
		dr := 0
		devfuzz.Apply(u, devfuzz.Decode(data, Size), func(op devfuzz.Op) {
			if op.Event == evInput {
				u.Input(op.Data)
			}
		}, func(i int, op devfuzz.Op, got uint64) {
			if op.Kind == devfuzz.Write && op.Off == regDR {
				dr++
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			n := u.in.Len()
			if n > devices.MaxInput {
				t.Fatalf("after %v: %d bytes of input held, more than %d", op, n, devices.MaxInput)
			}
			if out.n > dr {
				t.Fatalf("after %v: %d bytes of output from %d UARTDR writes", op, out.n, dr)
			}
			if op.Kind == devfuzz.Read && op.Size >= 4 {
				switch op.Off {
				case regMIS:
					if uint32(got) != u.ris()&u.imsc {
						t.Fatalf("after %v: MIS = %#x, want RIS %#x & IMSC %#x", op, got, u.ris(), u.imsc)
					}
				case regFR:
					if rxfe := got&frRXFE != 0; rxfe != (n == 0) {
						t.Fatalf("after %v: FR.RXFE = %v with %d bytes queued", op, rxfe, n)
					}
				}
			}
		})
		if u.Failed() {
			t.Fatal("the UART failed")
		}
	})
}
