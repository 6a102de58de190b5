// Package omap5 holds the TI OMAP5432 uEVM (2× Cortex-A15).
package omap5

import "github.com/tandem-hv/tandem/platforms"

// UEVM is the OMAP5 uEVM.
var UEVM = &platforms.Board{
	Name:        "omap5-uevm",
	Description: "TI OMAP5432 uEVM, 2× Cortex-A15, 2 GiB",
	Compatible:  []string{"ti,omap5-uevm", "ti,omap5"},
	Arch:        platforms.ARM,
	CPU:         platforms.CPU{Compatible: "arm,cortex-a15", Count: 2, Virtualization: true},
	// 2 GiB at 0x80000000, less the 16 MiB the DTB leaves to the firmware.
	Memory: []platforms.Region{{Base: 0x80000000, Size: 0x7f000000}},
	GIC: platforms.GIC{
		Version:        2,
		Compatible:     "arm,cortex-a15-gic",
		Dist:           platforms.Region{Base: 0x48211000, Size: 0x1000},
		CPU:            platforms.Region{Base: 0x48212000, Size: 0x2000},
		Hyp:            platforms.Region{Base: 0x48214000, Size: 0x2000},
		VCPU:           platforms.Region{Base: 0x48216000, Size: 0x2000},
		MaintenancePPI: 9,
		// omap5.dtsi gives the GIC no interrupts property, so the kernel's
		// vgic finds no maintenance interrupt; the image builder adds it.
		MaintenanceNotInDTB: true,
	},
	// The realtime counter feeding the arch timer must be programmed by the
	// host kernel (mach-omap2/timer.c, realtime_counter_init) before CNTFRQ
	// is right; the guests then inherit a correct virtual counter.
	Timer: platforms.Timer{Compatible: "arm,armv7-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10},
	// UART3 (ttyS2) at 0x48020000 is the uEVM's USB-serial console.
	Console: platforms.Console{Compatible: "ti,omap4-uart", Base: 0x48020000, Baud: 115200, Linux: "ttyS2"},
	// The host kernel starts CPU1 through the WakeupGen AuxCoreBoot
	// registers (mach-omap2/omap-smp.c).
	SMP:   platforms.SMPPlatform,
	Reset: "PRM global warm reset (PRM_RSTCTRL)",
	Denylist: []string{
		// Power, reset and clock management and the wakeup generator
		// belong to the host: a guest touching them could stop the SoC.
		"ti,omap5-prm",
		"ti,omap-prm-inst",
		"ti,omap5-scrm",
		"ti,omap5-wugen-mpu",
		"ti,omap-counter32k",
	},
	HostKernel: platforms.ARMv7HostKernel,
	DTB:        "omap5-uevm.dtb",
	Image: platforms.Image{
		Table: platforms.MBR,
		// The boot ROM loads MLO from the first FAT partition, so there are
		// no raw blobs; Debian has no omap5_uevm U-Boot build.
		FirstPartition: 1 << 20,
		BootFS:         "vfat",
		BootFiles:      []platforms.BootFile{{Name: "MLO"}, {Name: "u-boot.img"}},
		BootScript:     "boot.scr",
		// U-Boot's TI defaults (include/configs/ti_armv7_common.h).
		Load: platforms.LoadAddrs{Kernel: 0x82000000, DTB: 0x88000000, Initrd: 0x88080000, Script: 0x80000000},
		DTB:  "omap5-uevm.dtb",
	},
}
