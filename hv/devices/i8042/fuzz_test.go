package i8042

import (
	"testing"

	"github.com/tandem-hv/tandem/internal/devfuzz"
)

// FuzzI8042 drives the controller's ports with any sequence of accesses:
// it must not panic, and it resets the CPU exactly once for each byte
// 0xfe written to the command port, for nothing else.
func FuzzI8042(f *testing.F) {
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "reboot-k", Ops: []devfuzz.Op{devfuzz.R(offCommand, 1), devfuzz.W(offCommand, 1, cmdResetCPU)}},
		devfuzz.Seed{Name: "probe", Ops: []devfuzz.Op{devfuzz.R(offData, 1), devfuzz.W(offData, 1, 0xfe), devfuzz.W(offCommand, 1, 0xaa), devfuzz.R(offCommand, 1)}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		resets, want := 0, 0
		c := New(func() { resets++ })
		devfuzz.Apply(c, devfuzz.Decode(data, Size), nil, func(i int, op devfuzz.Op, got uint64) {
			if op.Kind == devfuzz.Write && op.Off == offCommand && byte(op.Value) == cmdResetCPU {
				want++
			}
			if resets != want {
				t.Fatalf("after %v: %d resets, want %d", op, resets, want)
			}
			if op.Kind == devfuzz.Read && got>>8 != 0 {
				t.Fatalf("after %v: read %#x, more than the status byte", op, got)
			}
		})
	})
}
