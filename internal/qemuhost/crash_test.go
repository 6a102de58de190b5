package qemuhost

import "testing"

func TestHostCrashed(t *testing.T) {
	tests := []struct {
		name string
		res  *Result
		want bool
	}{
		{"host kernel panicked before reporting", &Result{ExitStatus: -1, Output: "[ 98.3] Kernel panic - not syncing: Fatal exception in interrupt\n"}, true},
		{"guest panicked, host reported", &Result{ExitStatus: 3, Output: "Kernel panic - not syncing: VFS\nTANDEM-HOST exit=3\n"}, false},
		{"host hung without a panic", &Result{ExitStatus: -1, Output: "[ 30.0] watchdog: BUG: soft lockup\n"}, false},
		{"no result", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostCrashed(tt.res); got != tt.want {
				t.Errorf("hostCrashed() = %v, want %v", got, tt.want)
			}
		})
	}
}
