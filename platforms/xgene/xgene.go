// Package xgene holds the Applied Micro X-Gene 1 (Storm) Mustang board:
// 8 ARMv8 cores ("apm,potenza"), the first arm64 server KVM ran on.
package xgene

import "github.com/tandem-hv/tandem/platforms"

// Mustang is the APM X-Gene Mustang evaluation board.
var Mustang = &platforms.Board{
	Name:        "xgene-mustang",
	Description: "APM X-Gene Mustang, X-Gene 1 Storm, 8× ARMv8",
	Compatible:  []string{"apm,mustang", "apm,xgene-storm"},
	Arch:        platforms.ARM64,
	CPU:         platforms.CPU{Compatible: "apm,potenza", Count: 8, Virtualization: true},
	// The DTB's bank; the firmware rewrites /memory with the DIMMs found.
	Memory: []platforms.Region{{Base: 0x100000000, Size: 0x80000000}},
	GIC: platforms.GIC{
		Version:    2,
		Compatible: "arm,cortex-a15-gic",
		// The DT's GICD is the one old firmware exposes, the secure alias;
		// a host that misbehaves on it needs firmware that fixes the DT.
		Dist: platforms.Region{Base: 0x78010000, Size: 0x1000},
		// X-Gene aliases each 4 KiB GIC page across a 64 KiB frame, so the
		// GICC/GICV second page is 64 KiB after the first: the DT lists
		// only the first 4 KiB of GICC, and KVM's vgic-v2 must map GICV
		// with the 64 KiB stride (it checks the alignment at init).
		CPU:            platforms.Region{Base: 0x78020000, Size: 0x1000},
		Hyp:            platforms.Region{Base: 0x78040000, Size: 0x2000},
		VCPU:           platforms.Region{Base: 0x78060000, Size: 0x2000},
		MaintenancePPI: 9,
		PageStride:     64 << 10,
	},
	// X-Gene wires the timers to non-standard PPIs: secure 0, physical
	// 13, virtual 14, hypervisor 15 (INTIDs 16, 29, 30, 31).
	Timer: platforms.Timer{Compatible: "arm,armv8-timer", SecurePPI: 0, PhysPPI: 13, VirtPPI: 14, HypPPI: 15},
	// The DTB names no console; the firmware passes console=ttyS0.
	Console: platforms.Console{Compatible: "ns16550a", Base: 0x1c020000, Baud: 115200, Linux: "ttyS0", NotInDTB: true},
	// The Debian DTB says spin-table (cpu-release-addr); later UEFI
	// firmware provides PSCI and patches the DT. Either works for KVM.
	SMP:   platforms.SMPSpinTable,
	Reset: "fixed reset register (syscon-reboot on the SCU, offset 0x14)",
	Denylist: []string{
		// The SoC control unit, the coherent switch and the memory
		// controller bridges hold clocks, resets and DRAM setup.
		"apm,xgene-scu",
		"apm,xgene-csw",
		"apm,xgene-mcb",
		"apm,xgene-efuse",
		// The SLIMpro management processor's mailbox is the host's.
		"apm,xgene-slimpro-mbox",
		"syscon-reboot",
		"syscon-poweroff",
	},
	DTB: "apm/apm-mustang.dtb",
	Image: platforms.Image{
		// UEFI or U-Boot boot from SPI flash; the media holds a GPT and an
		// EFI system partition with GRUB, which loads the kernel.
		Table:          platforms.GPT,
		FirstPartition: 1 << 20,
		BootFS:         "vfat",
		ESP:            true,
		DTB:            "apm/apm-mustang.dtb",
	},
}
