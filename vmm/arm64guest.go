package vmm

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/tandem-hv/tandem/arch/arm64"
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/devices/flash"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// arm64Guest boots arm64 Images: an in-kernel vGIC (v3, or v2 where the
// host has only that) and architected timer, KVM's in-kernel PSCI for
// CPU_ON and power, a PL011 and a PL031 on the MMIO bus, and virtio-mmio
// devices, all described by a device tree generated for the guest.
type arm64Guest struct {
	armState
	format KernelFormat // an Image, an ELF executable or a raw image
	boot   *arm64Boot
	// features are the PMU and SVE the vCPUs get: those the config
	// leaves on that the host's KVM offers.
	features armvirt.Features
}

// arm64Boot is the arm64 loader's result, as the shared ARM steps see it.
type arm64Boot struct{ *arm64.Boot }

func (b arm64Boot) initrd() (uint64, uint64) { return b.InitrdAddr, b.InitrdSize }

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
	g.features = armvirt.HostFeatures(vm.kvm, armvirt.Features{PMU: !vm.cfg.NoPMU, SVE: !vm.cfg.NoSVE})
	g.pmu = g.features.PMU
	return nil
}

func (g *arm64Guest) addPlatformDevices(vm *VM) error { return vm.addARMPlatformDevices() }

func (g *arm64Guest) checkKernel(c *Config) error {
	path := c.Kernel
	switch g.format {
	case formatFirmware:
		return arm64.CheckFirmware(c.Firmware)
	case formatELF:
		return arm64.CheckELF(path)
	case KernelRaw:
		return loader.CheckRaw(path, c.LoadAddress, nil)
	}
	return arm64.CheckKernel(path)
}

func (g *arm64Guest) loadKernel(vm *VM) error {
	if g.format == formatFirmware {
		return g.loadFirmware(vm)
	}
	guest := arm64.Guest{Kernel: vm.cfg.Kernel, Initrd: vm.cfg.Initrd}
	var b *arm64.Boot
	var err error
	switch g.format {
	case formatELF:
		b, err = arm64.LoadELF(vm.mem, guest)
	case KernelRaw:
		b, err = arm64.LoadRaw(vm.mem, guest, vm.cfg.LoadAddress)
	default:
		b, err = arm64.Load(vm.mem, guest)
	}
	if err != nil {
		return err
	}
	g.boot = &arm64Boot{b}
	return nil
}

// loadFirmware maps both flash banks read-only at FlashBase, the
// firmware at the start of the first, and puts a flash model on the MMIO
// bus over them for the writes KVM turns into MMIO exits. The whole
// flash is in the slot, so that the firmware's reads of it (U-Boot reads
// its environment from the second bank, 256 KiB of it) never leave the
// vCPU; pages the firmware does not fill stay untouched and read as
// zeros. The flash's memory is the VMM's alone: it is not guest RAM, so
// no device can DMA into it.
func (g *arm64Guest) loadFirmware(vm *VM) error {
	if err := vm.sys.Require("firmware boot", kvm.CapReadonlyMem); err != nil {
		return err
	}
	fl, err := mem.New([]mem.Range{{GPA: armvirt.FlashBase, Size: armvirt.FlashSize}}, mem.Options{})
	if err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	vm.closers = append(vm.closers, fl)
	b, image, err := arm64.LoadFirmware(fl, vm.mem, vm.cfg.Firmware)
	if err != nil {
		return err
	}
	if err := vm.kvm.SetUserMemoryRegion(vm.nextSlot(), armvirt.FlashBase, fl.Regions()[0].Host, true); err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	if err := vm.mmio.Insert(flash.New(image, vm.warn), armvirt.FlashBase, armvirt.FlashSize); err != nil {
		return fmt.Errorf("flash: %w", err)
	}
	g.boot = &arm64Boot{b}
	return nil
}

// setupVCPU runs once per vCPU, in order, right after it is created.
func (g *arm64Guest) setupVCPU(vm *VM, cpu *kvm.VCPU) error {
	mpidr, err := arm64.SetupVCPU(vm.kvm, cpu, len(g.mpidrs), g.boot.Boot, g.features)
	if err != nil {
		return err
	}
	g.addVCPU(mpidr, func() uint64 { return arm64.PSCIVersion(cpu) })
	return nil
}

// finishVM initialises the vGIC and writes the device tree (armState):
// an arm64 guest's kernel also gets a KASLR seed, and the console's
// command line by default.
func (g *arm64Guest) finishVM(vm *VM) error {
	var kaslr [8]byte
	if _, err := rand.Read(kaslr[:]); err != nil {
		return fmt.Errorf("kaslr-seed: %w", err)
	}
	h := arm64.Hardware{Cmdline: vm.cfg.cmdlineOr("console=ttyAMA0"), KASLRSeed: binary.LittleEndian.Uint64(kaslr[:])}
	build := arm64.DeviceTree
	if g.boot.Firmware {
		build = firmwareDeviceTree
	}
	return g.finish(vm, g.boot, h, build)
}

// firmwareDeviceTree is the device tree of a guest that starts in
// firmware: the same hardware, with the tree's own block reserved, since
// the firmware keeps reading it where it lies.
func firmwareDeviceTree(h arm64.Hardware) (*dtb.Tree, error) {
	t, err := arm64.DeviceTree(h)
	if err != nil {
		return nil, err
	}
	arm64.ReserveDeviceTree(t)
	return t, nil
}

// DeviceTree returns the device tree generated for the guest (nil for
// guests described otherwise, such as x86's ACPI).
func (vm *VM) DeviceTree() []byte {
	if g, ok := vm.arch.(interface{ deviceTree() []byte }); ok {
		return g.deviceTree()
	}
	return nil
}
