// Package xilinx holds the Xilinx (AMD) Zynq UltraScale+ MPSoC boards:
// the ZCU102 evaluation board (XCZU9EG, 4× Cortex-A53 at EL2 with a
// GIC-400 that has the virtualization extensions), the ZynqMP board QEMU
// emulates (-M xlnx-zcu102,virtualization=on).
//
// Every fact below is from Debian's device tree for the board
// (arch/arm64/boot/dts/xilinx/zynqmp-zcu102-rev1.0.dts and zynqmp.dtsi
// in Linux 6.1, as linux-image-arm64 ships it), unless a comment names
// another source; platforms/all's test checks them against that DTB.
package xilinx

import "github.com/tandem-hv/tandem/platforms"

// U-Boot's ZynqMP load addresses: ENV_MEM_LAYOUT_SETTINGS in
// include/configs/xilinx_zynqmp.h (mainline U-Boot and Xilinx's
// u-boot-xlnx), the kernel_addr_r, fdt_addr_r, ramdisk_addr_r and
// scriptaddr that distro boot and boot.scr use. The initramfs sits low
// (up to the kernel at 384 MiB), the DTB at 1 GiB, clear of both.
// U-Boot releases before the move to these names loaded scripts at
// 0x02000000; the current scriptaddr is 0x20000000.
var zynqmpLoad = platforms.LoadAddrs{Kernel: 0x18000000, DTB: 0x40000000, Initrd: 0x02100000, Script: 0x20000000}

// ZCU102 is the ZCU102 evaluation board, revision 1.0 (the production
// boards; rev1.1 differs only in parts of its I2C tree).
var ZCU102 = &platforms.Board{
	Name:        "zcu102",
	Description: "Xilinx ZCU102 Rev1.0, Zynq UltraScale+ XCZU9EG, 4× Cortex-A53, 4 GiB",
	Compatible:  []string{"xlnx,zynqmp-zcu102-rev1.0", "xlnx,zynqmp-zcu102", "xlnx,zynqmp"},
	Arch:        platforms.ARM64,
	// The A53s implement EL2 (ARMv8.0: no VHE), so the host kernel runs
	// KVM in its split (nVHE) mode.
	CPU: platforms.CPU{Compatible: "arm,cortex-a53", Count: 4, Virtualization: true},
	// 4 GiB of PS DDR4: 2 GiB below 4 GiB and 2 GiB at 32 GiB
	// (zynqmp-zcu102-revA.dts's memory node, which rev1.0 includes).
	Memory: []platforms.Region{{Base: 0, Size: 0x80000000}, {Base: 0x800000000, Size: 0x80000000}},
	GIC: platforms.GIC{
		Version:    2,
		Compatible: "arm,gic-400",
		Dist:       platforms.Region{Base: 0xf9010000, Size: 0x10000},
		// ZynqMP's GIC-400 aliases each 4 KiB page of its CPU and
		// virtual CPU interfaces across a 64 KiB frame, so the DT gives
		// 128 KiB to each; the host kernel finds the page pair at the
		// frame's end ("GIC: Adjusting CPU interface base to
		// 0x00000000f902f000", drivers/irqchip/irq-gic.c,
		// gic_check_eoimode), as on X-Gene.
		CPU:            platforms.Region{Base: 0xf9020000, Size: 0x20000},
		Hyp:            platforms.Region{Base: 0xf9040000, Size: 0x20000},
		VCPU:           platforms.Region{Base: 0xf9060000, Size: 0x20000},
		MaintenancePPI: 9,
		PageStride:     64 << 10,
	},
	Timer: platforms.Timer{Compatible: "arm,armv8-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10},
	// stdout-path is serial0, UART0 of the PS (the Cadence UART on the
	// first port of the board's USB-UART bridge). Its driver
	// (xilinx_uartps) is built into Debian's kernel.
	Console: platforms.Console{Compatible: "xlnx,zynqmp-uart", Base: 0xff000000, Baud: 115200, Linux: "ttyPS0"},
	// /psci (method smc) is the Arm Trusted Firmware's BL31, which the
	// FSBL loads from BOOT.BIN.
	SMP:   platforms.SMPPSCI,
	Reset: "PSCI SYSTEM_RESET (Arm Trusted Firmware, which asks the PMU firmware to reset the SoC)",
	Denylist: []string{
		// Clocks, resets, pins and power domains of the whole SoC are
		// the PMU firmware's, reached through the firmware interface
		// (EEMI over SMC to ATF) and the IPI mailbox to the PMU: both
		// belong to the host, which alone may talk to the PMU.
		"xlnx,zynqmp-firmware",
		"xlnx,zynqmp-ipi-mailbox",
		"xlnx,zynqmp-power",
		// Services of the same firmware: the eFUSE/PUF store, the
		// FPGA (PL) configuration port and the AES engine.
		"xlnx,zynqmp-nvmem-fw",
		"xlnx,zynqmp-pcap-fpga",
		"xlnx,zynqmp-aes",
		// The system MMU translates every bus master's DMA and the
		// cache-coherent interconnect joins the A53 cluster to the rest:
		// both are the host's to program.
		"arm,mmu-500",
		"arm,cci-400",
		// The DDR controller's registers (its EDAC driver) hold the
		// memory every guest lives in.
		"xlnx,zynqmp-ddrc-2.40a",
	},
	// The SD controllers (Arasan SDHCI, "xlnx,zynqmp-8.9a") have their
	// driver as a module in Debian's kernel (CONFIG_MMC_SDHCI_OF_ARASAN=m);
	// the image's data partition is on the SD card.
	HostModules: []string{"sdhci_of_arasan"},
	DTB:         "xilinx/zynqmp-zcu102-rev1.0.dtb",
	Image: platforms.Image{
		// The boot ROM reads BOOT.BIN from the first partition of an
		// MBR-partitioned SD card, which must be FAT (UG1085, Zynq
		// UltraScale+ Device TRM, "SD Boot Mode"). BOOT.BIN holds the
		// FSBL, the PMU firmware, ATF's BL31 and U-Boot, all built per
		// board with Xilinx's tools (bootgen); Debian ships none of it, so
		// the user supplies it. It is optional: the image is complete
		// without it for a run under QEMU, which loads the kernel
		// itself, and the user adds it for the board.
		Table:          platforms.MBR,
		FirstPartition: 1 << 20,
		BootFS:         "vfat",
		BootFiles:      []platforms.BootFile{{Name: "BOOT.BIN", Optional: true}},
		// U-Boot's distro boot scans mmc 0 (the SD slot, SD1 at
		// 0xff170000, aliased mmc0) for boot.scr.
		BootScript: "boot.scr",
		Load:       zynqmpLoad,
		DTB:        "xilinx/zynqmp-zcu102-rev1.0.dtb",
	},
}
