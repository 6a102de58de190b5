// Package calxeda holds the Calxeda server SoCs: Midway (ECX-2000, 4×
// Cortex-A15), which can host KVM, and Highbank (ECX-1000, 4× Cortex-A9),
// which cannot.
//
// The ECME management engine's firmware boots U-Boot and the kernel from
// its own flash and provides PSCI; Tandem's image holds only the boot
// partition it reads.
package calxeda

import "github.com/tandem-hv/tandem/platforms"

// denylist: the ECME is reached through the PL320 IPC mailbox and the
// system registers hold the SoC's clocks and reset; both are the host's.
var denylist = []string{"arm,pl320", "calxeda,hb-sregs"}

// console is the PL011 at 0xfff36000; the DTBs name it only through
// bootargs (console=ttyAMA0), not /chosen/stdout-path.
var console = platforms.Console{Compatible: "arm,pl011", Base: 0xfff36000, Baud: 115200, Linux: "ttyAMA0"}

// image is the boot partition the firmware's U-Boot reads. Nothing is
// known of that U-Boot's address conventions, so Tandem's boot script
// sets its own, low in bank 0 and spaced as U-Boot's sunxi defaults.
var image = platforms.Image{
	Table:          platforms.MBR,
	FirstPartition: 1 << 20,
	BootFS:         "vfat",
	BootScript:     "boot.scr",
	Load:           platforms.LoadAddrs{Kernel: 0x02000000, DTB: 0x03000000, Initrd: 0x03300000, Script: 0x03100000},
}

// Midway is the ECX-2000.
var Midway = &platforms.Board{
	Name:        "calxeda-midway",
	Description: "Calxeda Midway ECX-2000, 4× Cortex-A15 (LPAE, RAM above 4 GiB)",
	Compatible:  []string{"calxeda,ecx-2000"},
	Arch:        platforms.ARM,
	CPU:         platforms.CPU{Compatible: "arm,cortex-a15", Count: 4, Virtualization: true},
	Memory: []platforms.Region{
		{Base: 0, Size: 0xff800000},
		// 12 GiB above 8 GiB: reachable only with LPAE (armmp-lpae).
		{Base: 0x200000000, Size: 0x300000000},
	},
	GIC: platforms.GIC{
		Version:        2,
		Compatible:     "arm,cortex-a15-gic",
		Dist:           platforms.Region{Base: 0xfff11000, Size: 0x1000},
		CPU:            platforms.Region{Base: 0xfff12000, Size: 0x2000},
		Hyp:            platforms.Region{Base: 0xfff14000, Size: 0x2000},
		VCPU:           platforms.Region{Base: 0xfff16000, Size: 0x2000},
		MaintenancePPI: 9,
	},
	Timer:      platforms.Timer{Compatible: "arm,cortex-a15-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10},
	Console:    console,
	SMP:        platforms.SMPPSCI,
	Reset:      "ECME hard reset over the PL320 IPC (PMU)",
	Denylist:   denylist,
	HostKernel: platforms.ARMv7HostKernel,
	DTB:        "ecx-2000.dtb",
	Image:      withDTB(image, "ecx-2000.dtb"),
}

// Highbank is the ECX-1000. Cortex-A9 has no virtualization extensions,
// and its GIC (arm,cortex-a9-gic) has no GICH/GICV: Tandem builds guests
// for it, never a host.
var Highbank = &platforms.Board{
	Name:        "calxeda-highbank",
	Description: "Calxeda Highbank ECX-1000, 4× Cortex-A9 (guest-only: no virtualization extensions)",
	Compatible:  []string{"calxeda,highbank"},
	Arch:        platforms.ARM,
	CPU:         platforms.CPU{Compatible: "arm,cortex-a9", Count: 4, Virtualization: false},
	Memory:      []platforms.Region{{Base: 0, Size: 0xff900000}},
	GIC: platforms.GIC{
		Version:    2,
		Compatible: "arm,cortex-a9-gic",
		Dist:       platforms.Region{Base: 0xfff11000, Size: 0x1000},
		CPU:        platforms.Region{Base: 0xfff10100, Size: 0x100},
	},
	// No architected timer: the Cortex-A9 private timer (TWD) instead.
	Timer:     platforms.Timer{Compatible: "arm,cortex-a9-twd-timer"},
	Console:   console,
	SMP:       platforms.SMPPSCI,
	Reset:     "ECME hard reset over the PL320 IPC (PMU)",
	Denylist:  denylist,
	GuestOnly: true,
	HostKernel: platforms.HostKernel{
		Note: "Cortex-A9 has no virtualization extensions: no kernel can host KVM here",
	},
	DTB:   "highbank.dtb",
	Image: withDTB(image, "highbank.dtb"),
}

func withDTB(im platforms.Image, dtb string) platforms.Image {
	im.DTB = dtb
	return im
}
