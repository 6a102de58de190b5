// Package devices holds what every device model shares: the interrupt
// line a device raises, where a device sits in the guest's address space
// so the architecture code can describe it (device tree or ACPI),
// rate-limited warnings about what a guest does wrong, the bounded input
// buffer of the UARTs (MaxInput, a fixed ring), and Guard, which contains
// a panic on a device's own goroutines (timers, host input) as hv/bus
// contains one on a vCPU.
//
// The models themselves live in subpackages (serial, virtio, ...). They
// see guest memory only through hv/mem and register accesses only as
// offsets from hv/bus.
package devices

// Interrupt is a device's edge-triggered line into the guest's interrupt
// controller. The VMM backs it with a KVM irqfd; Trigger may be called
// from any goroutine.
type Interrupt interface {
	Trigger() error
}

// Placement is where a memory-mapped device sits and which interrupt it
// raises: the facts a device tree node or an ACPI _CRS is made from.
type Placement struct {
	Base uint64
	Size uint64
	// IRQ is the interrupt number as the guest's controller numbers it:
	// a GSI (IOAPIC pin) on x86, an SPI number (without the 32 offset)
	// on ARM.
	IRQ uint32
}
