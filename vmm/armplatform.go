package vmm

import (
	"fmt"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/devices/pl011"
	"github.com/tandem-hv/tandem/hv/devices/pl031"
)

// addARMPlatformDevices puts the armvirt board's devices on an ARM
// guest's MMIO bus, the same for arm64 and 32-bit ARM guests: the PL011
// (the console, fed from the console input), the PL031 and, if the guest
// has a watchdog, the SP805.
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
	return vm.addSP805()
}
