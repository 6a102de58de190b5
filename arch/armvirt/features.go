package armvirt

import (
	"fmt"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// PMUPPI is the PPI of the vCPUs' PMU overflow interrupt: the one QEMU's
// virt board uses (VIRTUAL_PMU_IRQ), so that the number is familiar. KVM
// takes it as an INTID (PPIs are INTIDs 16-31), the device tree as the
// PPI's number.
const (
	PMUPPI   = 7
	PMUIntID = 16 + PMUPPI
)

// Features are the optional vCPU features a guest gets where the host's
// KVM offers them: a PMUv3 (perf's hardware counters) and, on arm64, SVE.
type Features struct {
	PMU, SVE bool
}

// HostFeatures returns the features of want that vm's KVM offers
// (KVM_CAP_ARM_PMU_V3, KVM_CAP_ARM_SVE, asked of the VM as arm64 wants).
func HostFeatures(vm *kvm.VM, want Features) Features {
	return want.Offered(vm.CheckExtension(kvm.CapARMPMUv3) > 0, vm.CheckExtension(kvm.CapARMSVE) > 0)
}

// Offered is f without what the host lacks.
func (f Features) Offered(pmu, sve bool) Features {
	return Features{PMU: f.PMU && pmu, SVE: f.SVE && sve}
}

// SetInit sets f's feature bits in a vCPU's KVM_ARM_VCPU_INIT.
func (f Features) SetInit(init *kvm.VCPUInit) {
	if f.PMU {
		init.SetFeature(kvm.ARMVCPUPMUv3)
	}
	if f.SVE {
		init.SetFeature(kvm.ARMVCPUSVE)
	}
}

// Finalize completes what KVM_ARM_VCPU_INIT started: SVE is finalised
// with the vector lengths KVM offers by default (all the host has), before
// the vCPU's registers are touched (Documentation/virt/kvm/api.rst,
// KVM_ARM_VCPU_FINALIZE).
func (f Features) Finalize(cpu *kvm.VCPU) error {
	if f.SVE {
		return cpu.ARMVCPUFinalize(kvm.ARMVCPUSVE)
	}
	return nil
}

// InitPMU gives a vCPU's PMU its overflow interrupt and initialises it,
// which KVM allows only once the vGIC is initialised
// (Documentation/virt/kvm/devices/vcpu.rst, KVM_ARM_VCPU_PMU_V3_INIT).
// Every vCPU gets the same PPI.
func InitPMU(cpu *kvm.VCPU) error {
	if err := cpu.SetAttrInt(kvm.ARMVCPUPMUv3Ctrl, kvm.ARMVCPUPMUv3IRQ, PMUIntID); err != nil {
		return fmt.Errorf("the PMU's interrupt: %w", err)
	}
	if err := cpu.SetAttrNone(kvm.ARMVCPUPMUv3Ctrl, kvm.ARMVCPUPMUv3Init); err != nil {
		return fmt.Errorf("initialising the PMU: %w", err)
	}
	return nil
}
