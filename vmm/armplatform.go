package vmm

import (
	"crypto/rand"
	"fmt"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/devices/pl011"
	"github.com/tandem-hv/tandem/hv/devices/pl031"
	"github.com/tandem-hv/tandem/hv/devices/tpm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// addARMPlatformDevices puts the armvirt board's devices on an ARM
// guest's MMIO bus, the same for arm64 and 32-bit ARM guests: the PL011
// (the console, fed from the console input), the PL031 and, if the guest
// has them, the SP805 and the TPM.
func (vm *VM) addARMPlatformDevices() error {
	irq, err := vm.newInterrupt(armvirt.UARTSPI)
	if err != nil {
		return err
	}
	uart := pl011.New(vm.cfg.Console.Out, irq)
	if err := vm.mmio.Insert(uart, armvirt.UARTBase, armvirt.UARTSize); err != nil {
		return fmt.Errorf("PL011: %w", err)
	}
	vm.startConsoleInput(uart.Input)
	if irq, err = vm.newInterrupt(armvirt.RTCSPI); err != nil {
		return err
	}
	rtc := pl031.New(irq, nil)
	vm.closers = append(vm.closers, rtc)
	if err := vm.mmio.Insert(rtc, armvirt.RTCBase, armvirt.RTCSize); err != nil {
		return fmt.Errorf("PL031: %w", err)
	}
	if err := vm.addTPM(armvirt.TPMBase); err != nil {
		return err
	}
	return vm.addSP805()
}

// addTPM puts the TPM's TIS registers at base (where a PC has them on
// x86, armvirt.TPMBase on ARM), if the guest has a TPM.
func (vm *VM) addTPM(base uint64) error {
	if vm.cfg.TPM == nil {
		return nil
	}
	d := tpm.New(tpm.SocketBackend{Path: vm.cfg.TPM.Socket}, vm.warn)
	if err := vm.mmio.Insert(d, base, tpm.Size); err != nil {
		return fmt.Errorf("TPM: %w", err)
	}
	return nil
}

// armBoot is what both ARM loaders say of where they put things.
type armBoot interface {
	initrd() (addr, size uint64)
	WriteDeviceTree(m *mem.Memory, t *dtb.Tree) error
}

// armState is what arm64 and 32-bit ARM guests keep alike: the vGIC, each
// vCPU's MPIDR as it was set up, the PSCI version KVM gave the first
// vCPU, whether the vCPUs have a PMU, the host nodes passed through and
// the device tree written.
type armState struct {
	gic    *armvirt.GIC
	pmu    bool
	mpidrs []uint64
	psci   uint64
	dtb    []byte
	passed []*dtb.Node // host nodes passed through, described for the guest
}

// addVCPU records a vCPU set up by the arch package: its MPIDR and, for
// the first, the PSCI version it reports.
func (s *armState) addVCPU(mpidr uint64, psci func() uint64) {
	if len(s.mpidrs) == 0 {
		s.psci = psci()
	}
	s.mpidrs = append(s.mpidrs, mpidr)
}

// finish initialises the vGIC, which needs every vCPU, then the vCPUs'
// PMUs, which need the vGIC, and writes the device tree, which lists
// their MPIDRs and the PSCI version KVM gave them. h holds what differs between the guest kinds (the command line,
// the KASLR seed); build is the arch package's DeviceTree.
func (s *armState) finish(vm *VM, boot armBoot, h armvirt.Hardware, build func(armvirt.Hardware) (*dtb.Tree, error)) error {
	if err := s.gic.Init(); err != nil {
		return err
	}
	if s.pmu {
		for _, cpu := range vm.vcpus {
			if err := armvirt.InitPMU(cpu); err != nil {
				return err
			}
		}
	}
	seed := make([]byte, 64)
	if _, err := rand.Read(seed); err != nil {
		return fmt.Errorf("rng-seed: %w", err)
	}
	h.MPIDRs, h.MemorySize, h.GIC, h.PSCIVersion = s.mpidrs, vm.mem.Size(), s.gic.Version, s.psci
	h.Virtio, h.Passthrough, h.RNGSeed, h.Watchdog = vm.placed, s.passed, seed, vm.armWatchdog()
	h.TPM, h.PMU = vm.cfg.TPM != nil, s.pmu
	if addr, size := boot.initrd(); size > 0 {
		h.InitrdStart, h.InitrdEnd = addr, addr+size
	}
	t, err := build(h)
	if err != nil {
		return err
	}
	if s.dtb, err = t.Bytes(); err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	return boot.WriteDeviceTree(vm.mem, t)
}

func (s *armState) deviceTree() []byte { return s.dtb }

func (s *armState) setPassthrough(nodes []*dtb.Node) { s.passed = nodes }
