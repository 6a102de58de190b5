// Package x86 holds the generic x86-64 PC: any VT-x or AMD-V machine.
// Its hardware is described by ACPI, not a device tree, so the profile
// carries only what the image builder and the checks need.
package x86

import "github.com/tandem-hv/tandem/platforms"

// PC is a UEFI x86-64 PC.
var PC = &platforms.Board{
	Name:        "x86-pc",
	Description: "x86-64 PC with VT-x or AMD-V, UEFI",
	Arch:        platforms.X86,
	// The count is a floor for the checks: two cores, one per guest.
	CPU:     platforms.CPU{Compatible: "x86_64", Count: 2, Virtualization: true},
	Console: platforms.Console{Compatible: "ns16550a", Base: 0x3f8, Baud: 115200, Linux: "ttyS0"},
	SMP:     platforms.SMPACPI,
	Reset:   "ACPI reset register, else the keyboard controller (0xcf9/0x64)",
	Image: platforms.Image{
		// GRUB or systemd-boot on an EFI system partition.
		Table:          platforms.GPT,
		FirstPartition: 1 << 20,
		BootFS:         "vfat",
		ESP:            true,
	},
}
