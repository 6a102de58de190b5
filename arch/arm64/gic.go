package arm64

import (
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// The in-kernel GIC is arch/armvirt's, shared with AArch32 guests.
type (
	// GICVersion is the interrupt controller architecture a guest gets.
	GICVersion = armvirt.GICVersion
	// GIC is the guest's in-kernel interrupt controller.
	GIC = armvirt.GIC
)

// The in-kernel GICs KVM offers.
const (
	GICv2 = armvirt.GICv2
	GICv3 = armvirt.GICv3
)

// ErrNoGIC means the host's KVM can create neither a vGICv3 nor a vGICv2.
var ErrNoGIC = armvirt.ErrNoGIC

// CreateGIC creates the vGIC (armvirt.CreateGIC): a GICv3 where the host
// has one, else a GICv2; want forces a version (0: either).
func CreateGIC(vm *kvm.VM, cpus int, want GICVersion) (*GIC, error) {
	return armvirt.CreateGIC(vm, cpus, want)
}
