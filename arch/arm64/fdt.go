package arm64

import (
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
)

// PSCI versions as KVM_REG_ARM_PSCI_VERSION reports them: major in bits
// 31:16, minor in 15:0.
const (
	PSCI02 = armvirt.PSCI02
	PSCI10 = armvirt.PSCI10
	PSCI11 = armvirt.PSCI11
)

// Hardware is everything a guest's device tree says (armvirt.Hardware).
type Hardware = armvirt.Hardware

// ErrNoCPUs is returned by DeviceTree for a guest without vCPUs.
var ErrNoCPUs = armvirt.ErrNoCPUs

// profile is what makes the virt board's tree an arm64 one.
var profile = armvirt.Profile{
	Model:      "tandem,arm64",
	Compatible: []string{"tandem,arm64", "linux,dummy-virt"},
	CPU:        "arm,armv8",
	Timer:      "arm,armv8-timer",
	KASLR:      true,
}

// DeviceTree generates the guest's device tree.
func DeviceTree(h Hardware) (*dtb.Tree, error) { return armvirt.DeviceTree(profile, h) }
