// Package arndale holds the Insignal Arndale board (Samsung Exynos5250,
// 2× Cortex-A15): the first board KVM/ARM ran on.
package arndale

import "github.com/tandem-hv/tandem/platforms"

// SD card layout of Exynos5 boards, from U-Boot's
// include/configs/exynos5-common.h: LBA 0 is the MBR; the iROM reads the
// signed BL1 (CONFIG_SEC_FW_SIZE, 8 KiB) from sector 1, BL1 loads the SPL
// (CONFIG_BL1_SIZE, 16 KiB reserved, 14 KiB usable) from sector 17, the
// SPL loads U-Boot (CONFIG_BL2_SIZE, 512 KiB) from sector 49
// (BL2_START_OFFSET), and U-Boot keeps its environment (16 KiB) at
// sector 1073. The TrustZone software follows the environment, where
// Insignal's BSP fuses it (sector 1105, 156 KiB reserved); check the
// user's sd_fusing.sh if their BSP differs.
const (
	bl1Offset  = 1 * platforms.Sector
	splOffset  = 17 * platforms.Sector
	ubOffset   = 49 * platforms.Sector
	envOffset  = 1073 * platforms.Sector
	tzswOffset = 1105 * platforms.Sector
)

// Arndale is the Exynos5250 Arndale board.
var Arndale = &platforms.Board{
	Name:        "arndale",
	Description: "Insignal Arndale, Samsung Exynos5250, 2× Cortex-A15, 2 GiB",
	Compatible:  []string{"insignal,arndale", "samsung,exynos5250", "samsung,exynos5"},
	Arch:        platforms.ARM,
	CPU:         platforms.CPU{Compatible: "arm,cortex-a15", Count: 2, Virtualization: true},
	Memory:      []platforms.Region{{Base: 0x40000000, Size: 0x80000000}},
	GIC: platforms.GIC{
		Version:        2,
		Compatible:     "arm,gic-400",
		Dist:           platforms.Region{Base: 0x10481000, Size: 0x1000},
		CPU:            platforms.Region{Base: 0x10482000, Size: 0x2000},
		Hyp:            platforms.Region{Base: 0x10484000, Size: 0x2000},
		VCPU:           platforms.Region{Base: 0x10486000, Size: 0x2000},
		MaintenancePPI: 9,
	},
	Timer: platforms.Timer{Compatible: "arm,armv7-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10},
	// stdout-path is serial2 (ttySAC2), the UART on the base board's DB9.
	Console: platforms.Console{Compatible: "samsung,exynos4210-uart", Base: 0x12c20000, Baud: 115200, Linux: "ttySAC2"},
	// The host kernel writes the secondary's entry point into SYSRAM
	// (0x02020000, U-Boot's CONFIG_SMP_PEN_ADDR) and wakes it with an SGI.
	SMP:   platforms.SMPPlatform,
	Reset: "PMU software reset (SWRESET)",
	Denylist: []string{
		// The multi-core timer routes its interrupts badly and freezes
		// under virtualization; Xen denylists it too
		// (xen/arch/arm/platforms/exynos5.c). Guests use the arch timer.
		"samsung,exynos4210-mct",
		// The secure firmware interface is the host's (SMC calls into the
		// TrustZone software): a guest must never reach it.
		"samsung,secure-firmware",
		// The PMU holds the reset and power controls of the whole SoC.
		"samsung,exynos5250-pmu",
	},
	HostKernel: platforms.ARMv7HostKernel,
	DTB:        "exynos5250-arndale.dtb",
	Image: platforms.Image{
		Table: platforms.MBR,
		Blobs: []platforms.Blob{
			// Samsung-signed: not redistributable, the user supplies it.
			{Name: "BL1", File: "arndale-bl1.bin", Offset: bl1Offset, MaxLen: splOffset - bl1Offset},
			{Name: "SPL", File: "arndale-spl.bin", Package: "u-boot-exynos:/usr/lib/u-boot/arndale/arndale-spl.bin", Offset: splOffset, MaxLen: ubOffset - splOffset},
			{Name: "U-Boot", File: "u-boot.bin", Package: "u-boot-exynos:/usr/lib/u-boot/arndale/u-boot.bin", Offset: ubOffset, MaxLen: envOffset - ubOffset},
			// The TrustZone software comes with the user's BSP; mainline
			// U-Boot boots without it (the board then runs without a
			// secure monitor of Samsung's).
			{Name: "TZSW", File: "arndale-tzsw.bin", Offset: tzswOffset, MaxLen: 156 << 10, Optional: true},
		},
		FirstPartition: 1 << 20,
		BootFS:         "vfat",
		BootScript:     "boot.scr",
		// U-Boot's Exynos layout: kernel and DTB low in bank 0, the script
		// far above them.
		Load: platforms.LoadAddrs{Kernel: 0x42000000, DTB: 0x43000000, Initrd: 0x43300000, Script: 0x50000000},
		DTB:  "exynos5250-arndale.dtb",
	},
}
