package arm32

import (
	"errors"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// TestCheckAArch32 decides from KVM_CHECK_EXTENSION(KVM_CAP_ARM_EL1_32BIT)
// whether a host can give a guest 32-bit vCPUs.
func TestCheckAArch32(t *testing.T) {
	tests := []struct {
		name    string
		abi     kvm.AArch32ABI
		cap     int
		wantErr error
	}{
		{"arm64, AArch32 EL1", kvm.AArch32OnARM64, 1, nil},
		{"arm64, 64-bit-only cores", kvm.AArch32OnARM64, 0, ErrNoAArch32EL1},
		{"arm64, check failed", kvm.AArch32OnARM64, -1, ErrNoAArch32EL1},
		{"ARMv7 (no such capability)", kvm.AArch32OnARMv7, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckAArch32(tt.abi, tt.cap); !errors.Is(err, tt.wantErr) {
				t.Errorf("CheckAArch32(%s, %d) = %v, want %v", tt.abi.Host, tt.cap, err, tt.wantErr)
			}
		})
	}
	if !strings.Contains(ErrNoAArch32EL1.Error(), "KVM_CAP_ARM_EL1_32BIT") {
		t.Errorf("ErrNoAArch32EL1 = %q, want it to name KVM_CAP_ARM_EL1_32BIT", ErrNoAArch32EL1)
	}
}

// TestBootCPSR pins the boot protocol's CPSR: SVC mode, A, I and F
// masked, ARM state (booting.rst, "CPU mode").
func TestBootCPSR(t *testing.T) {
	if bootCPSR != 0x1d3 || bootCPSR&kvm.CPSRT != 0 {
		t.Errorf("bootCPSR = %#x, want 0x1d3 (SVC, AIF masked, Thumb clear)", bootCPSR)
	}
}
