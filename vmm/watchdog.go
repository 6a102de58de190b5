package vmm

import (
	"fmt"
	"time"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/arch/x86"
	"github.com/tandem-hv/tandem/hv/devices/watchdog"
)

// Watchdog gives the guest a watchdog timer: an SP805 on ARM guests, the
// port watchdog an ACPI WDAT describes on x86 guests. When the guest
// stops pinging it, the VM ends with ExitWatchdog.
type Watchdog struct {
	// Timeout is the timeout the guest's driver starts with (the device
	// tree's timeout-sec; the WDAT's Max Count). Whole seconds.
	Timeout time.Duration
	// Boot, when above 0, starts the watchdog at power-on with this long
	// until it fires, as firmware that arms it would: a guest that does
	// not take it over in time (its kernel loads the driver, which keeps
	// it running) ends as if it had stopped pinging.
	Boot time.Duration
}

// Watchdog timeouts: whole seconds, as both drivers count.
const (
	MinWatchdogTimeout = time.Second
	MaxWatchdogTimeout = time.Hour
)

func (w *Watchdog) validate() error {
	if w.Timeout < MinWatchdogTimeout || w.Timeout > MaxWatchdogTimeout || w.Timeout%time.Second != 0 {
		return fmt.Errorf("watchdog timeout %v: want whole seconds from %v to %v", w.Timeout, MinWatchdogTimeout, MaxWatchdogTimeout)
	}
	if w.Boot < 0 || w.Boot > MaxWatchdogTimeout {
		return fmt.Errorf("watchdog boot grace %v: want 0 (off) up to %v", w.Boot, MaxWatchdogTimeout)
	}
	return nil
}

// watchdogExpired ends the guest: it stopped pinging its watchdog.
func (vm *VM) watchdogExpired() {
	w := vm.cfg.Watchdog
	why := fmt.Sprintf("watchdog expired: no ping in time (the guest's timeout, %v by default)", w.Timeout)
	if w.Boot > 0 {
		why = fmt.Sprintf("watchdog expired: no ping in time (the guest's timeout, %v by default, or the %v boot grace if its driver never took the watchdog over)", w.Timeout, w.Boot)
	}
	vm.warn.Printf("%s: %s: ending the guest", vm.name(), why)
	vm.stop(ExitWatchdog, why)
}

func (vm *VM) name() string {
	if vm.cfg.Name == "" {
		return "guest"
	}
	return vm.cfg.Name
}

// addSP805 puts an SP805 on an ARM guest's MMIO bus, if it has a watchdog.
func (vm *VM) addSP805() error {
	w := vm.cfg.Watchdog
	if w == nil {
		return nil
	}
	irq, err := vm.newInterrupt(armvirt.WatchdogSPI)
	if err != nil {
		return err
	}
	d := watchdog.NewSP805(watchdog.SP805Config{Rate: armvirt.WatchdogClockHz, IRQ: irq, Expired: vm.watchdogExpired, Boot: w.Boot})
	vm.closers = append(vm.closers, d)
	if err := vm.mmio.Insert(d, armvirt.WatchdogBase, armvirt.WatchdogSize); err != nil {
		return fmt.Errorf("SP805: %w", err)
	}
	return nil
}

// armWatchdog is the device tree's description of the SP805, or nil.
func (vm *VM) armWatchdog() *armvirt.Watchdog {
	if w := vm.cfg.Watchdog; w != nil {
		return &armvirt.Watchdog{TimeoutSec: uint32(w.Timeout / time.Second)}
	}
	return nil
}

// addPortWatchdog puts the port watchdog on an x86 guest's port bus, if
// it has a watchdog.
func (vm *VM) addPortWatchdog() error {
	w := vm.x86Watchdog()
	if w == nil {
		return nil
	}
	d := watchdog.NewPort(watchdog.PortConfig{
		Period: x86.WatchdogPeriod, MinCount: w.MinCount, MaxCount: w.MaxCount,
		Expired: vm.watchdogExpired, Boot: vm.cfg.Watchdog.Boot,
	})
	vm.closers = append(vm.closers, d)
	if err := vm.pio.Insert(d, x86.WatchdogPortBase, watchdog.PortSize); err != nil {
		return fmt.Errorf("watchdog ports: %w", err)
	}
	return nil
}

// x86Watchdog is the WDAT's description of the port watchdog, or nil.
func (vm *VM) x86Watchdog() *x86.Watchdog {
	if w := vm.cfg.Watchdog; w != nil {
		return &x86.Watchdog{MinCount: 1, MaxCount: x86.WatchdogCounts(w.Timeout)}
	}
	return nil
}
