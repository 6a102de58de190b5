package serial

import (
	"testing"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/internal/devfuzz"
)

// Events of FuzzSerial.
const evInput = 0 // the host types Data

// countWriter counts the bytes written to it.
type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// FuzzSerial drives the 16550's eight ports with any sequence of reads,
// writes and host input. The device must not panic, must hold at most
// devices.MaxInput bytes of input, never write more output than the
// guest wrote bytes to THR, and keep LSR.DR and IIR true to its queue.
func FuzzSerial(f *testing.F) {
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "probe", Ops: []devfuzz.Op{
			devfuzz.W(regSCR, 1, 0xa5), devfuzz.R(regSCR, 1), devfuzz.W(regMCR, 1, mcrLoop|mcrOUT2|mcrRTS), devfuzz.R(regMSR, 1),
			devfuzz.W(regData, 1, 'x'), devfuzz.R(regLSR, 1), devfuzz.R(regData, 1), devfuzz.W(regMCR, 1, 0),
		}},
		devfuzz.Seed{Name: "interrupt-driven", Ops: []devfuzz.Op{
			devfuzz.W(regIER, 1, ierRDI|ierTHRI), devfuzz.R(regIIR, 1), devfuzz.W(regData, 1, 'h'), devfuzz.R(regIIR, 1),
			devfuzz.E(evInput, []byte("typed")), devfuzz.R(regIIR, 1), devfuzz.R(regData, 1), devfuzz.W(regIIR, 1, 0x07),
		}},
		devfuzz.Seed{Name: "divisor-latch", Ops: []devfuzz.Op{
			devfuzz.W(regLCR, 1, lcrDLAB), devfuzz.W(regData, 2, 0x0c01), devfuzz.R(regIER, 4), devfuzz.W(regLCR, 1, 3),
		}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		out := &countWriter{}
		u := New(out, nil)
		thr := 0
		ops := devfuzz.Decode(data, Size)
		devfuzz.Apply(u, ops, func(op devfuzz.Op) {
			if op.Event == evInput {
				u.Input(op.Data)
			}
		}, func(i int, op devfuzz.Op, got uint64) {
			if op.Kind == devfuzz.Write && op.Off == regData {
				thr++
			}
			u.mu.Lock()
			defer u.mu.Unlock()
			if n := u.in.Len(); n > devices.MaxInput {
				t.Fatalf("after %v: %d bytes of input held, more than %d", op, n, devices.MaxInput)
			}
			if out.n > thr {
				t.Fatalf("after %v: %d bytes of output from %d THR writes", op, out.n, thr)
			}
			if op.Kind == devfuzz.Read && op.Off == regLSR && u.lcr&lcrDLAB == 0 {
				// DR was read under the same lock as in; nothing has popped since.
				if dr := got&lsrDR != 0; dr != (u.in.Len() > 0) {
					t.Fatalf("after %v: LSR.DR = %v with %d bytes queued", op, dr, u.in.Len())
				}
			}
			if iir := u.iir(); iir&0x0f != iirNoInt && iir&0x0f != iirRDI && iir&0x0f != iirTHRI {
				t.Fatalf("after %v: IIR = %#x, not an interrupt the model raises", op, iir)
			}
		})
		if u.Failed() {
			t.Fatal("the UART failed")
		}
	})
}
