package armvirt

import (
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// TestFeaturesOffered checks that a guest gets a PMU and SVE only when
// both its config leaves them on and the host's KVM offers them, and
// which KVM_ARM_VCPU_INIT bits that sets (KVM_ARM_VCPU_PMU_V3 is bit 3,
// KVM_ARM_VCPU_SVE bit 4).
func TestFeaturesOffered(t *testing.T) {
	tests := []struct {
		name               string
		want               Features
		hostPMU, hostSVE   bool
		got                Features
		initBits, notBits0 uint32
	}{
		{"both on, host has both", Features{PMU: true, SVE: true}, true, true, Features{PMU: true, SVE: true}, 1<<3 | 1<<4, 0},
		{"both on, host has neither", Features{PMU: true, SVE: true}, false, false, Features{}, 0, 1<<3 | 1<<4},
		{"both on, host has a PMU only", Features{PMU: true, SVE: true}, true, false, Features{PMU: true}, 1 << 3, 1 << 4},
		{"both on, host has SVE only", Features{PMU: true, SVE: true}, false, true, Features{SVE: true}, 1 << 4, 1 << 3},
		{"PMU switched off", Features{SVE: true}, true, true, Features{SVE: true}, 1 << 4, 1 << 3},
		{"SVE switched off", Features{PMU: true}, true, true, Features{PMU: true}, 1 << 3, 1 << 4},
		{"both switched off", Features{}, true, true, Features{}, 0, 1<<3 | 1<<4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.want.Offered(tt.hostPMU, tt.hostSVE)
			if f != tt.got {
				t.Fatalf("Offered(%t, %t) = %+v, want %+v", tt.hostPMU, tt.hostSVE, f, tt.got)
			}
			var init kvm.VCPUInit
			init.SetFeature(kvm.ARMVCPUPSCI02)
			f.SetInit(&init)
			if init.Features[0]&tt.initBits != tt.initBits || init.Features[0]&tt.notBits0 != 0 {
				t.Errorf("SetInit: features[0] = %#x, want bits %#x set and %#x clear", init.Features[0], tt.initBits, tt.notBits0)
			}
			if init.Features[0]&(1<<kvm.ARMVCPUPSCI02) == 0 {
				t.Errorf("SetInit cleared KVM_ARM_VCPU_PSCI_0_2: features[0] = %#x", init.Features[0])
			}
		})
	}
}
