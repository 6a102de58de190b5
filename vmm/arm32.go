package vmm

import (
	"errors"

	"github.com/tandem-hv/tandem/arch/arm32"
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// arm32Guest boots 32-bit ARM zImages, on the same virtual board as
// arm64Guest (armvirt: vGIC, timer, PL011, PL031, virtio-mmio, KVM's
// in-kernel PSCI), with vCPUs in AArch32 state. abi says how the host's
// KVM names their registers: the AArch32 view of an arm64 vCPU, or an
// ARMv7 host's own.
type arm32Guest struct {
	armState
	abi    kvm.AArch32ABI
	format KernelFormat // a zImage, an ELF executable or a raw image
	boot   *arm32Boot
}

// arm32Boot is the zImage loader's result, as the shared ARM steps see it.
type arm32Boot struct{ *arm32.Boot }

func (b arm32Boot) initrd() (uint64, uint64) { return b.InitrdAddr, b.InitrdSize }

func (g *arm32Guest) memoryRanges(size uint64) []mem.Range { return arm32.MemoryRanges(size) }

func (g *arm32Guest) virtioSlot(i int) (devices.Placement, error) { return arm32.VirtioSlot(i) }

// setupVM checks that the host can run AArch32 vCPUs, then creates the
// vGIC before any vCPU exists (as arm64Guest does). An ARMv7 host older
// than 3.14 has no KVM_CREATE_DEVICE GIC: it gets the legacy one.
func (g *arm32Guest) setupVM(vm *VM) error {
	if err := vm.sys.Require("32-bit ARM guests", kvm.CapOneReg, kvm.CapARMPSCI02); err != nil {
		return err
	}
	if err := arm32.CheckAArch32(g.abi, vm.sys.CheckExtension(kvm.CapARMEL132Bit)); err != nil {
		return err
	}
	gic, err := armvirt.CreateGIC(vm.kvm, vm.cfg.CPUs, 0)
	if errors.Is(err, armvirt.ErrNoGIC) && !g.abi.NeedsEL132Bit {
		gic, err = armvirt.CreateLegacyGICv2(vm.kvm, vm.cfg.CPUs)
	}
	if err != nil {
		return err
	}
	g.gic = gic
	vm.closers = append(vm.closers, gic)
	return nil
}

func (g *arm32Guest) addPlatformDevices(vm *VM) error { return vm.addARMPlatformDevices() }

func (g *arm32Guest) checkKernel(c *Config) error {
	path := c.Kernel
	switch g.format {
	case formatELF:
		return arm32.CheckELF(path)
	case KernelRaw:
		return loader.CheckRaw(path, c.LoadAddress, nil)
	}
	return arm32.CheckKernel(path)
}

func (g *arm32Guest) loadKernel(vm *VM) error {
	guest := arm32.Guest{Kernel: vm.cfg.Kernel, Initrd: vm.cfg.Initrd}
	var b *arm32.Boot
	var err error
	switch g.format {
	case formatELF:
		b, err = arm32.LoadELF(vm.mem, guest)
	case KernelRaw:
		b, err = arm32.LoadRaw(vm.mem, guest, vm.cfg.LoadAddress)
	default:
		b, err = arm32.Load(vm.mem, guest)
	}
	if err != nil {
		return err
	}
	g.boot = &arm32Boot{b}
	return nil
}

// setupVCPU runs once per vCPU, in order, right after it is created.
func (g *arm32Guest) setupVCPU(vm *VM, cpu *kvm.VCPU) error {
	mpidr, err := arm32.SetupVCPU(vm.kvm, cpu, g.abi, len(g.mpidrs), g.boot.Boot)
	if err != nil {
		return err
	}
	g.addVCPU(mpidr, func() uint64 { return arm32.PSCIVersion(cpu, g.abi) })
	return nil
}

// finishVM initialises the vGIC and writes the device tree (armState),
// with the guest's command line as given.
func (g *arm32Guest) finishVM(vm *VM) error {
	return g.finish(vm, g.boot, arm32.Hardware{Cmdline: vm.cfg.cmdlineOr("")}, arm32.DeviceTree)
}
