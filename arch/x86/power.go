package x86

import "github.com/tandem-hv/tandem/hv/devices/acpipower"

// The ACPI power registers (hv/devices/acpipower) sit in the port I/O
// space at PowerPortBase; the FADT points at them.
const (
	PowerPortBase = 0x600
	PowerPortSize = acpipower.Size
)
