package i8042

import "testing"

func TestResetLine(t *testing.T) {
	tests := []struct {
		name      string
		off       uint64
		val       byte
		wantReset bool
	}{
		{"reset command on the command port", offCommand, cmdResetCPU, true},
		{"other command", offCommand, 0xaa, false},
		{"reset value on the data port", offData, cmdResetCPU, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reset := false
			c := New(func() { reset = true })
			c.Write(tt.off, []byte{tt.val})
			if reset != tt.wantReset {
				t.Errorf("reset = %v, want %v", reset, tt.wantReset)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	c := New(nil)
	b := []byte{0xff}
	c.Read(offCommand, b)
	if b[0] != statusSysFlag {
		t.Errorf("status = %#x, want %#x (no key pending, self test passed)", b[0], statusSysFlag)
	}
}
