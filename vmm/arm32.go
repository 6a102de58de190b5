package vmm

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/arch/arm32"
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
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
	abi    kvm.AArch32ABI
	gic    *armvirt.GIC
	boot   *arm32.Boot
	mpidrs []uint64
	psci   uint64
	dtb    []byte
	passed []*dtb.Node // host nodes passed through, described for the guest
}

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

func (g *arm32Guest) checkKernel(path string) error { return arm32.CheckKernel(path) }

func (g *arm32Guest) loadKernel(vm *VM) error {
	b, err := arm32.Load(vm.mem, arm32.Guest{Kernel: vm.cfg.Kernel, Initrd: vm.cfg.Initrd})
	if err != nil {
		return err
	}
	g.boot = b
	return nil
}

// setupVCPU runs once per vCPU, in order, right after it is created.
func (g *arm32Guest) setupVCPU(vm *VM, cpu *kvm.VCPU) error {
	index := len(g.mpidrs)
	mpidr, err := arm32.SetupVCPU(vm.kvm, cpu, g.abi, index, g.boot)
	if err != nil {
		return err
	}
	if index == 0 {
		g.psci = arm32.PSCIVersion(cpu, g.abi)
	}
	g.mpidrs = append(g.mpidrs, mpidr)
	return nil
}

// finishVM initialises the vGIC, which needs every vCPU, and writes the
// device tree, which lists their MPIDRs and the PSCI version KVM gave them.
func (g *arm32Guest) finishVM(vm *VM) error {
	if err := g.gic.Init(); err != nil {
		return err
	}
	seed := make([]byte, 64)
	if _, err := rand.Read(seed); err != nil {
		return fmt.Errorf("rng-seed: %w", err)
	}
	h := arm32.Hardware{
		MPIDRs:      g.mpidrs,
		MemorySize:  vm.mem.Size(),
		GIC:         g.gic.Version,
		PSCIVersion: g.psci,
		Virtio:      vm.placed,
		Passthrough: g.passed,
		Cmdline:     vm.cfg.Cmdline,
		RNGSeed:     seed,
		Watchdog:    vm.armWatchdog(),
	}
	if g.boot.InitrdSize > 0 {
		h.InitrdStart, h.InitrdEnd = g.boot.InitrdAddr, g.boot.InitrdAddr+g.boot.InitrdSize
	}
	t, err := arm32.DeviceTree(h)
	if err != nil {
		return err
	}
	if g.dtb, err = t.Bytes(); err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	return g.boot.WriteDeviceTree(vm.mem, t)
}

func (g *arm32Guest) deviceTree() []byte { return g.dtb }

func (g *arm32Guest) setPassthrough(nodes []*dtb.Node) { g.passed = nodes }
