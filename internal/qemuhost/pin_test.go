package qemuhost

import "testing"

func TestVCPUIndex(t *testing.T) {
	tests := []struct {
		comm string
		n    int
		ok   bool
	}{
		{"CPU 0/TCG", 0, true},
		{"CPU 3/KVM", 3, true},
		{"CPU 12/TCG", 12, true},
		{"qemu-system-x86", 0, false},
		{"call_rcu", 0, false},
		{"CPU x/TCG", 0, false},
		{"CPU 1", 0, false},
		{"CPU -1/TCG", 0, false},
	}
	for _, tt := range tests {
		n, ok := vcpuIndex(tt.comm)
		if ok != tt.ok || ok && n != tt.n {
			t.Errorf("vcpuIndex(%q) = %d, %v; want %d, %v", tt.comm, n, ok, tt.n, tt.ok)
		}
	}
}
