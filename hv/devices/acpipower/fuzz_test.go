package acpipower

import (
	"testing"

	"github.com/tandem-hv/tandem/internal/devfuzz"
)

// FuzzPower drives the sleep and reset registers with any sequence of
// accesses: nothing panics, every register reads zero, and only an S5
// request with SLP_EN powers off and only ResetValue at the reset
// register resets.
func FuzzPower(f *testing.F) {
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "s5", Ops: []devfuzz.Op{devfuzz.R(SleepStatus, 1), devfuzz.W(SleepControl, 1, sleepEnable|S5SleepType<<sleepTypeShift)}},
		devfuzz.Seed{Name: "reset", Ops: []devfuzz.Op{devfuzz.W(Reset, 1, ResetValue), devfuzz.W(SleepControl, 1, 3<<sleepTypeShift|sleepEnable)}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		var offs, resets, wantOffs, wantResets int
		p := New(func() { offs++ }, func() { resets++ })
		devfuzz.Apply(p, devfuzz.Decode(data, Size), nil, func(i int, op devfuzz.Op, got uint64) {
			v := byte(op.Value)
			switch {
			case op.Kind == devfuzz.Read && got != 0:
				t.Fatalf("after %v: read %#x, want 0", op, got)
			case op.Kind != devfuzz.Write:
			case op.Off == SleepControl && v&sleepEnable != 0 && v>>sleepTypeShift&sleepTypeMask == S5SleepType:
				wantOffs++
			case op.Off == Reset && v == ResetValue:
				wantResets++
			}
			if offs != wantOffs || resets != wantResets {
				t.Fatalf("after %v: %d power-offs and %d resets, want %d and %d", op, offs, resets, wantOffs, wantResets)
			}
		})
	})
}
