package vmm

import (
	"fmt"

	"github.com/tandem-hv/tandem/arch/x86"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/devices/acpipower"
	"github.com/tandem-hv/tandem/hv/devices/i8042"
	"github.com/tandem-hv/tandem/hv/devices/serial"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// x86Console is an x86 guest's command line when none is given: the
// console on COM1.
const x86Console = "console=ttyS0"

// x86Guest boots x86_64 bzImages, ELF executables and raw images (its
// format): in-kernel PIC, IOAPIC, LAPICs and PIT;
// COM1, the i8042 reset line, the ACPI power registers and (if asked)
// the WDAT's watchdog on the port bus;
// virtio-mmio devices in the 32-bit hole, described by the DSDT.
type x86Guest struct {
	format KernelFormat
	boot   *x86.Boot
}

func (g *x86Guest) memoryRanges(size uint64) []mem.Range { return x86.MemoryRanges(size) }

func (g *x86Guest) virtioSlot(i int) (devices.Placement, error) { return x86.VirtioSlot(i) }

// setupVM creates the in-kernel chips. KVM_SET_TSS_ADDR must come before
// the first vCPU exists (Intel hosts need it for real mode), and the
// irqchip before KVM_CREATE_PIT2, which wires the PIT to it.
func (g *x86Guest) setupVM(vm *VM) error {
	if err := vm.sys.Require("x86 guests", kvm.CapSetTSSAddr, kvm.CapPIT2, kvm.CapExtCPUID); err != nil {
		return err
	}
	if err := vm.kvm.SetTSSAddr(x86.TSSAddr); err != nil {
		return err
	}
	if err := vm.kvm.SetIdentityMapAddr(x86.IdentityMapAddr); err != nil {
		return err
	}
	if err := vm.kvm.CreateIRQChip(); err != nil {
		return err
	}
	return vm.kvm.CreatePIT2()
}

func (g *x86Guest) addPlatformDevices(vm *VM) error {
	irq, err := vm.newInterrupt(x86.COM1IRQ)
	if err != nil {
		return err
	}
	uart := serial.New(vm.cfg.Console.Out, irq)
	if err := vm.pio.Insert(uart, x86.COM1Port, x86.COM1Size); err != nil {
		return fmt.Errorf("COM1: %w", err)
	}
	vm.startConsoleInput(uart.Input)
	if err := vm.pio.Insert(i8042.New(func() { vm.stop(ExitReset, "i8042 reset") }), i8042.Base, i8042.Size); err != nil {
		return fmt.Errorf("i8042: %w", err)
	}
	power := acpipower.New(
		func() { vm.stop(ExitPowerOff, "ACPI S5 power-off") },
		func() { vm.stop(ExitReset, "ACPI reset") },
	)
	if err := vm.pio.Insert(power, x86.PowerPortBase, x86.PowerPortSize); err != nil {
		return fmt.Errorf("ACPI power registers: %w", err)
	}
	if err := vm.addTPM(x86.TPMBase); err != nil {
		return err
	}
	return vm.addPortWatchdog()
}

func (g *x86Guest) checkKernel(c *Config) error {
	path := c.Kernel
	switch g.format {
	case formatELF:
		return x86.CheckELF(path, len(c.cmdlineOr(x86Console)))
	case KernelRaw:
		return x86.CheckRaw(path, c.LoadAddress, len(c.cmdlineOr(x86Console)))
	}
	return x86.CheckKernel(path)
}

func (g *x86Guest) loadKernel(vm *VM) error {
	load := x86.Load
	switch g.format {
	case formatELF:
		load = x86.LoadELF
	case KernelRaw:
		load = func(m *mem.Memory, guest x86.Guest) (*x86.Boot, error) {
			return x86.LoadRaw(m, guest, vm.cfg.LoadAddress)
		}
	}
	b, err := load(vm.mem, x86.Guest{
		Kernel:     vm.cfg.Kernel,
		Initrd:     vm.cfg.Initrd,
		Cmdline:    vm.cfg.cmdlineOr(x86Console),
		CPUs:       vm.cfg.CPUs,
		VirtioMMIO: vm.placed,
		Serial:     true,
		Watchdog:   vm.x86Watchdog(),
		TPM:        vm.cfg.TPM != nil,
	})
	if err != nil {
		return err
	}
	g.boot = b
	return nil
}

func (g *x86Guest) setupVCPU(vm *VM, cpu *kvm.VCPU) error {
	return g.boot.SetupVCPU(vm.sys, cpu)
}

// finishVM has nothing to do: the x86 hardware description (ACPI, MP
// table) is written by loadKernel and does not depend on the vCPUs.
func (g *x86Guest) finishVM(vm *VM) error { return nil }
