package arm32

import (
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
)

// Hardware is everything a guest's device tree says (armvirt.Hardware;
// KASLRSeed is unused: 32-bit kernels have no KASLR).
type Hardware = armvirt.Hardware

// profile is what makes the virt board's tree a 32-bit one. The CPU is a
// Cortex-A15, the ARMv7 core whose architecture (with LPAE and the
// virtualization extensions) the AArch32 state of an ARMv8 core
// implements, and what ARMv7 KVM hosts emulate as their preferred
// target; the timer is the ARMv7 architected timer.
var profile = armvirt.Profile{
	Model:      "tandem,arm32",
	Compatible: []string{"tandem,arm32", "linux,dummy-virt"},
	CPU:        "arm,cortex-a15",
	Timer:      "arm,armv7-timer",
}

// DeviceTree generates the guest's device tree.
func DeviceTree(h Hardware) (*dtb.Tree, error) { return armvirt.DeviceTree(profile, h) }
