package vmm

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/tandem-hv/tandem/arch/arm64"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// arm64Guest boots arm64 Images: an in-kernel vGIC (v3, or v2 where the
// host has only that) and architected timer, KVM's in-kernel PSCI for
// CPU_ON and power, a PL011 and a PL031 on the MMIO bus, and virtio-mmio
// devices, all described by a device tree generated for the guest.
type arm64Guest struct {
	gic    *arm64.GIC
	boot   *arm64.Boot
	mpidrs []uint64
	psci   uint64
	dtb    []byte
	passed []*dtb.Node // host nodes passed through, described for the guest
}

func (g *arm64Guest) memoryRanges(size uint64) []mem.Range { return arm64.MemoryRanges(size) }

func (g *arm64Guest) virtioSlot(i int) (devices.Placement, error) { return arm64.VirtioSlot(i) }

// setupVM creates the vGIC before any vCPU, so that each vCPU gets its
// GIC CPU interface (or redistributor) as it is created.
func (g *arm64Guest) setupVM(vm *VM) error {
	if err := vm.sys.Require("arm64 guests", kvm.CapOneReg, kvm.CapDeviceCtrl, kvm.CapARMPSCI02); err != nil {
		return err
	}
	gic, err := arm64.CreateGIC(vm.kvm, vm.cfg.CPUs, 0)
	if err != nil {
		return err
	}
	g.gic = gic
	vm.closers = append(vm.closers, gic)
	return nil
}

func (g *arm64Guest) addPlatformDevices(vm *VM) error { return vm.addARMPlatformDevices() }

func (g *arm64Guest) checkKernel(path string) error { return arm64.CheckKernel(path) }

func (g *arm64Guest) loadKernel(vm *VM) error {
	b, err := arm64.Load(vm.mem, arm64.Guest{Kernel: vm.cfg.Kernel, Initrd: vm.cfg.Initrd})
	if err != nil {
		return err
	}
	g.boot = b
	return nil
}

// setupVCPU runs once per vCPU, in order, right after it is created.
func (g *arm64Guest) setupVCPU(vm *VM, cpu *kvm.VCPU) error {
	index := len(g.mpidrs)
	mpidr, err := arm64.SetupVCPU(vm.kvm, cpu, index, g.boot)
	if err != nil {
		return err
	}
	if index == 0 {
		g.psci = arm64.PSCIVersion(cpu)
	}
	g.mpidrs = append(g.mpidrs, mpidr)
	return nil
}

// finishVM initialises the vGIC, which needs every vCPU, and writes the
// device tree, which lists their MPIDRs and the PSCI version KVM gave them.
func (g *arm64Guest) finishVM(vm *VM) error {
	if err := g.gic.Init(); err != nil {
		return err
	}
	var seed [64 + 8]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return fmt.Errorf("rng-seed: %w", err)
	}
	h := arm64.Hardware{
		MPIDRs:      g.mpidrs,
		MemorySize:  vm.mem.Size(),
		GIC:         g.gic.Version,
		PSCIVersion: g.psci,
		Virtio:      vm.placed,
		Passthrough: g.passed,
		Cmdline:     vm.cfg.cmdlineOr("console=ttyAMA0"),
		RNGSeed:     seed[:64],
		Watchdog:    vm.armWatchdog(),
		KASLRSeed:   binary.LittleEndian.Uint64(seed[64:]),
	}
	if g.boot.InitrdSize > 0 {
		h.InitrdStart, h.InitrdEnd = g.boot.InitrdAddr, g.boot.InitrdAddr+g.boot.InitrdSize
	}
	t, err := arm64.DeviceTree(h)
	if err != nil {
		return err
	}
	if g.dtb, err = t.Bytes(); err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	return g.boot.WriteDeviceTree(vm.mem, t)
}

// DeviceTree returns the device tree generated for the guest (nil for
// guests described otherwise, such as x86's ACPI).
func (vm *VM) DeviceTree() []byte {
	if g, ok := vm.arch.(interface{ deviceTree() []byte }); ok {
		return g.deviceTree()
	}
	return nil
}

func (g *arm64Guest) deviceTree() []byte { return g.dtb }

func (g *arm64Guest) setPassthrough(nodes []*dtb.Node) { g.passed = nodes }
