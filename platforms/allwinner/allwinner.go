// Package allwinner holds the Allwinner boards: the A20 (sun7i, 2×
// Cortex-A7, GIC-400) Cubieboard2 and Banana Pi, and the A31 (sun6i, 4×
// Cortex-A7) Hummingbird.
//
// Their DTBs carry no memory node and no /psci node: sunxi U-Boot sizes
// DRAM and adds both at boot (its PSCI firmware, arch/arm/cpu/armv7/sunxi/
// psci.c, also switches the cores to HYP mode for KVM).
package allwinner

import "github.com/tandem-hv/tandem/platforms"

// gic is the GIC-400 of both SoCs.
var gic = platforms.GIC{
	Version:        2,
	Compatible:     "arm,gic-400",
	Dist:           platforms.Region{Base: 0x01c81000, Size: 0x1000},
	CPU:            platforms.Region{Base: 0x01c82000, Size: 0x2000},
	Hyp:            platforms.Region{Base: 0x01c84000, Size: 0x2000},
	VCPU:           platforms.Region{Base: 0x01c86000, Size: 0x2000},
	MaintenancePPI: 9,
}

var timer = platforms.Timer{Compatible: "arm,armv7-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10}

// console is UART0 (ttyS0), 1 KiB at 0x01c28000.
var console = platforms.Console{Compatible: "snps,dw-apb-uart", Base: 0x01c28000, Baud: 115200, Linux: "ttyS0"}

// denylist holds what no sunxi guest may have.
var denylist = []string{
	// The eight UARTs are 1 KiB apart, four to a 4 KiB page, with the
	// host console among them: a guest mapping one would map the host's.
	"snps,dw-apb-uart",
	// The watchdog is the board's reset.
	"allwinner,sun4i-a10-wdt",
	"allwinner,sun6i-a31-wdt",
}

// SD card layout (linux-sunxi.org/Bootable_SD_card): the boot ROM reads
// the SPL from 8 KiB; u-boot-sunxi-with-spl.bin (SPL + U-Boot) may fill
// everything up to 1 MiB, where the first partition starts.
const (
	splOffset      = 8 << 10
	firstPartition = 1 << 20
)

// sunxiLoad are U-Boot's sunxi defaults for DRAM at 0x40000000
// (include/configs/sunxi-common.h: KERNEL_ADDR_R, FDT_ADDR_R,
// RAMDISK_ADDR_R, SCRIPT_ADDR_R).
var sunxiLoad = platforms.LoadAddrs{Kernel: 0x42000000, DTB: 0x43000000, Initrd: 0x43300000, Script: 0x43100000}

// a20Image lays out an A20 card with Debian's u-boot-sunxi build for the
// given U-Boot board directory.
func a20Image(ubootBoard, dtb string) platforms.Image {
	return platforms.Image{
		Table: platforms.MBR,
		Blobs: []platforms.Blob{{
			Name: "SPL+U-Boot", File: "u-boot-sunxi-with-spl.bin",
			Package: "u-boot-sunxi:/usr/lib/u-boot/" + ubootBoard + "/u-boot-sunxi-with-spl.bin",
			Offset:  splOffset, MaxLen: firstPartition - splOffset,
		}},
		FirstPartition: firstPartition,
		BootFS:         "vfat",
		BootScript:     "boot.scr",
		Load:           sunxiLoad,
		DTB:            dtb,
	}
}

// a20Board is an A20 board: every A20 board here shares the SoC's memory
// map, GIC, timer, console and denylist, and differs only in its name,
// its vendor compatible, its U-Boot build and its DTB.
func a20Board(name, description, compatible, ubootDir, dtb string) *platforms.Board {
	return &platforms.Board{
		Name:                 name,
		Description:          description,
		Compatible:           []string{compatible, "allwinner,sun7i-a20"},
		Arch:                 platforms.ARM,
		CPU:                  platforms.CPU{Compatible: "arm,cortex-a7", Count: 2, Virtualization: true},
		Memory:               []platforms.Region{{Base: 0x40000000, Size: 1 << 30}},
		MemoryFromBootloader: true,
		GIC:                  gic,
		Timer:                timer,
		Console:              console,
		SMP:                  platforms.SMPPSCI,
		PSCIFromBootloader:   true,
		Reset:                "watchdog (sun4i-a10-wdt)",
		Denylist:             denylist,
		HostKernel:           platforms.ARMv7HostKernel,
		DTB:                  dtb,
		Image:                a20Image(ubootDir, dtb),
	}
}

// Cubieboard2 is the Cubietech Cubieboard2 (A20, 1 GiB).
var Cubieboard2 = a20Board("cubieboard2", "Cubietech Cubieboard2, Allwinner A20, 2× Cortex-A7, 1 GiB",
	"cubietech,cubieboard2", "Cubieboard2", "sun7i-a20-cubieboard2.dtb")

// BananaPi is the LeMaker Banana Pi (A20, 1 GiB, gigabit Ethernet).
var BananaPi = a20Board("bananapi", "LeMaker Banana Pi, Allwinner A20, 2× Cortex-A7, 1 GiB",
	"lemaker,bananapi", "Bananapi", "sun7i-a20-bananapi.dtb")

// A31Hummingbird is the Merrii A31 Hummingbird (A31, 1 GiB). Its DTB names
// the kernel's sun6i SMP code (enable-method "allwinner,sun6i-a31");
// U-Boot's PSCI replaces it when U-Boot is built with it.
var A31Hummingbird = &platforms.Board{
	Name:                 "a31-hummingbird",
	Description:          "Merrii A31 Hummingbird, Allwinner A31, 4× Cortex-A7, 1 GiB",
	Compatible:           []string{"merrii,a31-hummingbird", "allwinner,sun6i-a31"},
	Arch:                 platforms.ARM,
	CPU:                  platforms.CPU{Compatible: "arm,cortex-a7", Count: 4, Virtualization: true},
	Memory:               []platforms.Region{{Base: 0x40000000, Size: 1 << 30}},
	MemoryFromBootloader: true,
	GIC:                  gic,
	Timer:                timer,
	Console:              console,
	SMP:                  platforms.SMPPlatform,
	Reset:                "watchdog (sun6i-a31-wdt)",
	Denylist:             denylist,
	HostKernel:           platforms.ARMv7HostKernel,
	DTB:                  "sun6i-a31-hummingbird.dtb",
	Image: platforms.Image{
		Table: platforms.MBR,
		// Same card layout as the A20; Debian builds no A31 U-Boot, so the
		// blob comes from the user's BSP.
		Blobs: []platforms.Blob{{
			Name: "SPL+U-Boot", File: "u-boot-sunxi-with-spl.bin",
			Offset: splOffset, MaxLen: firstPartition - splOffset,
		}},
		FirstPartition: firstPartition,
		BootFS:         "vfat",
		BootScript:     "boot.scr",
		Load:           sunxiLoad,
		DTB:            "sun6i-a31-hummingbird.dtb",
	},
}
