// Package qemu holds the QEMU virt boards: the board Tandem's CI boots
// (an emulated host with KVM inside), and a reference for every port.
//
// Their device trees come from QEMU itself (-machine dumpdtb=FILE); the
// facts below are QEMU 7.2's virt memory map (hw/arm/virt.c, base_memmap
// and the a15memmap) with -m 1024.
package qemu

import "github.com/tandem-hv/tandem/platforms"

// image is shared by both: U-Boot runs from QEMU's flash (-bios
// u-boot.bin from Debian's u-boot-qemu), so the media holds no raw blobs,
// only an MBR and the FAT partition boot.scr is read from.
// Load addresses are u-boot-qemu's (include/configs/qemu-arm.h): QEMU
// places its own DTB at the bottom of RAM, where U-Boot's fdt_addr points.
func image(dtb string) platforms.Image {
	return platforms.Image{
		Table:          platforms.MBR,
		FirstPartition: 1 << 20,
		BootFS:         "vfat",
		BootScript:     "boot.scr",
		Load:           platforms.LoadAddrs{Kernel: 0x40400000, DTB: 0x40000000, Initrd: 0x44000000, Script: 0x40200000},
		DTB:            dtb,
	}
}

// VirtARM64 is qemu-system-aarch64 -M virt,virtualization=on,gic-version=3
// -cpu max: the CPUs start at EL2, so the host kernel gets KVM (VHE).
var VirtARM64 = &platforms.Board{
	Name:        "qemu-virt-arm64",
	Description: "QEMU virt, AArch64, GICv3, virtualization=on",
	Compatible:  []string{"linux,dummy-virt"},
	Arch:        platforms.ARM64,
	// QEMU 7.2 names -cpu max "arm,cortex-a57" in the DT.
	CPU:    platforms.CPU{Compatible: "arm,cortex-a57", Count: 2, Virtualization: true},
	Memory: []platforms.Region{{Base: 0x40000000, Size: 1 << 30}},
	GIC: platforms.GIC{
		Version:    3,
		Compatible: "arm,gic-v3",
		Dist:       platforms.Region{Base: 0x08000000, Size: 0x10000},
		// 123 redistributors of 128 KiB each fit below 0x09000000.
		Redist:         platforms.Region{Base: 0x080a0000, Size: 0xf60000},
		MaintenancePPI: 9,
	},
	Timer:   platforms.Timer{Compatible: "arm,armv8-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10},
	Console: platforms.Console{Compatible: "arm,pl011", Base: 0x09000000, Baud: 115200, Linux: "ttyAMA0"},
	SMP:     platforms.SMPPSCI,
	Reset:   "PSCI SYSTEM_RESET (QEMU's built-in firmware, smc conduit at EL2)",
	// Nothing on virt is shared with the host in a way that breaks a guest.
	DTB:   "qemu/virt-arm64.dtb",
	Image: image("qemu/virt-arm64.dtb"),
}

// VirtARM32 is qemu-system-arm -M virt,virtualization=on -cpu cortex-a15:
// an ARMv7 host. KVM on it needs a ≤ 5.6 host kernel, like every ARMv7
// board; Debian's current armhf kernels have none.
var VirtARM32 = &platforms.Board{
	Name:        "qemu-virt-arm32",
	Description: "QEMU virt, ARMv7 (Cortex-A15), GICv2, virtualization=on",
	Compatible:  []string{"linux,dummy-virt"},
	Arch:        platforms.ARM,
	CPU:         platforms.CPU{Compatible: "arm,cortex-a15", Count: 2, Virtualization: true},
	Memory:      []platforms.Region{{Base: 0x40000000, Size: 1 << 30}},
	GIC: platforms.GIC{
		Version:        2,
		Compatible:     "arm,cortex-a15-gic",
		Dist:           platforms.Region{Base: 0x08000000, Size: 0x10000},
		CPU:            platforms.Region{Base: 0x08010000, Size: 0x10000},
		Hyp:            platforms.Region{Base: 0x08030000, Size: 0x10000},
		VCPU:           platforms.Region{Base: 0x08040000, Size: 0x10000},
		MaintenancePPI: 9,
	},
	Timer:      platforms.Timer{Compatible: "arm,armv7-timer", SecurePPI: 13, PhysPPI: 14, VirtPPI: 11, HypPPI: 10},
	Console:    platforms.Console{Compatible: "arm,pl011", Base: 0x09000000, Baud: 115200, Linux: "ttyAMA0"},
	SMP:        platforms.SMPPSCI,
	Reset:      "PSCI SYSTEM_RESET (QEMU's built-in firmware)",
	HostKernel: platforms.ARMv7HostKernel,
	DTB:        "qemu/virt-arm32.dtb",
	Image:      image("qemu/virt-arm32.dtb"),
}
