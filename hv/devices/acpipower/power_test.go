package acpipower

import "testing"

// TestPower checks which writes power the guest off or reset it.
func TestPower(t *testing.T) {
	tests := []struct {
		name         string
		off          uint64
		data         []byte
		off1, reset1 int
	}{
		{"S5", SleepControl, []byte{S5SleepType<<2 | sleepEnable}, 1, 0},
		{"S5 type without SLP_EN", SleepControl, []byte{S5SleepType << 2}, 0, 0},
		{"S3", SleepControl, []byte{3<<2 | sleepEnable}, 0, 0},
		{"reset", Reset, []byte{ResetValue}, 0, 1},
		{"wrong reset value", Reset, []byte{ResetValue + 1}, 0, 0},
		{"status write", SleepStatus, []byte{0xff}, 0, 0},
		{"past the registers", 3, []byte{ResetValue}, 0, 0},
		{"empty write", Reset, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var off, reset int
			p := New(func() { off++ }, func() { reset++ })
			p.Write(tt.off, tt.data)
			if off != tt.off1 || reset != tt.reset1 {
				t.Errorf("Write(%d, % x): power-off %d, reset %d; want %d, %d", tt.off, tt.data, off, reset, tt.off1, tt.reset1)
			}
			got := []byte{0xaa, 0xaa}
			p.Read(SleepStatus, got)
			if got[0] != 0 || got[1] != 0 {
				t.Errorf("Read(status) = % x, want zeros", got)
			}
		})
	}
	// Nil callbacks are allowed.
	New(nil, nil).Write(Reset, []byte{ResetValue})
}
