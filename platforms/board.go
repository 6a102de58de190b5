// Package platforms holds the Board type: what a Tandem distribution must
// know about a board that the host kernel does not work out for itself.
// Each family has a small package (platforms/qemu, platforms/allwinner, ...)
// with one commented Board value per board; platforms/all lists them.
//
// Under KVM the host Linux kernel brings up the cores and the interrupt
// controller, so a profile carries what a distribution needs: how to
// recognise the board from its device tree, its memory, interrupt
// controller, timer and console, how secondary cores and reset work, the
// devices never to give a guest, which host kernel can run KVM, and where
// the bootloader and partitions live on the boot media.
package platforms

import (
	"errors"
	"fmt"
	"sort"
)

// Arch is a CPU architecture as Tandem names it (matching hv/kvm.HostArch).
type Arch string

// Architectures.
const (
	ARM64 Arch = "arm64"  // AArch64 (ARMv8)
	ARM   Arch = "arm"    // AArch32 (ARMv7-A)
	X86   Arch = "x86_64" // x86-64 with VT-x or AMD-V
)

// Region is a physical address range [Base, Base+Size).
type Region struct {
	Base, Size uint64
}

// End returns the first address past the region.
func (r Region) End() uint64 { return r.Base + r.Size }

// Overlaps reports whether two regions share an address. An empty region
// overlaps nothing.
func (r Region) Overlaps(o Region) bool {
	return r.Size != 0 && o.Size != 0 && r.Base < o.End() && o.Base < r.End()
}

func (r Region) String() string { return fmt.Sprintf("[%#x, %#x)", r.Base, r.End()) }

// CPU describes the board's application cores.
type CPU struct {
	// Compatible is the cpu nodes' compatible ("arm,cortex-a15").
	Compatible string
	// Count is the number of cores.
	Count int
	// Virtualization reports whether the cores implement the virtualization
	// extensions (EL2 / HYP mode, or VT-x/AMD-V). A board without them can
	// be a Tandem guest target, never a host.
	Virtualization bool
	// Clusters lists the cores by kind where they differ (big.LITTLE:
	// RK3399 has 4× Cortex-A53 and 2× Cortex-A72). Compatible and Count
	// above stay the summary: the first cluster's compatible and the total.
	// Empty means one cluster of Count × Compatible.
	Clusters []Cluster `yaml:"clusters"`
}

// Cluster is a group of cores with one compatible.
type Cluster struct {
	Compatible string
	Count      int
}

// GIC describes the Arm Generic Interrupt Controller as the host sees it.
type GIC struct {
	// Version is 2 or 3 (0: no GIC, as on x86).
	Version int
	// Compatible is the controller node's first compatible string.
	Compatible string
	// Dist is the distributor (GICD), both versions.
	Dist Region
	// CPU is the CPU interface (GICC), GICv2 only.
	CPU Region
	// Hyp is the virtual interface control (GICH), GICv2 reg entry 3: the
	// hypervisor's view of the list registers.
	Hyp Region
	// VCPU is the virtual CPU interface (GICV), GICv2 reg entry 4: what KVM
	// maps into a guest as its GICC.
	VCPU Region
	// Redist is the redistributor range (GICR), GICv3 only.
	Redist Region
	// MaintenancePPI is the virtual interface maintenance interrupt, as the
	// PPI number in the device tree (INTID 16+n); KVM needs it.
	MaintenancePPI uint32
	// MaintenanceNotInDTB marks a DTB whose GIC node omits the maintenance
	// interrupt although the hardware wires it (OMAP5): KVM's vgic-v2 init
	// fails without it, so the image builder must add
	// interrupts = <GIC_PPI MaintenancePPI IRQ_TYPE_LEVEL_HIGH> to the node.
	MaintenanceNotInDTB bool
	// PageStride is the distance between the two 4 KiB pages of the GICC
	// and GICV regions: 4 KiB on most boards, 64 KiB where the SoC aliases
	// each page across a 64 KiB frame (X-Gene). 0 means 4 KiB.
	PageStride uint64
}

// HasVirt reports whether the profile's GIC offers what KVM needs to
// virtualize interrupts: GICv3, or GICv2 with GICH, GICV and a
// maintenance interrupt.
func (g GIC) HasVirt() bool {
	switch g.Version {
	case 3:
		return true
	case 2:
		return g.Hyp.Size != 0 && g.VCPU.Size != 0 && g.MaintenancePPI != 0
	}
	return false
}

// Regions returns the GIC's non-empty regions by name, in reg order.
func (g GIC) Regions() []NamedRegion {
	var rs []NamedRegion
	for _, r := range []NamedRegion{{"GICD", g.Dist}, {"GICC", g.CPU}, {"GICH", g.Hyp}, {"GICV", g.VCPU}, {"GICR", g.Redist}} {
		if r.Size != 0 {
			rs = append(rs, r)
		}
	}
	return rs
}

// NamedRegion is a region with a name for messages.
type NamedRegion struct {
	Name string
	Region
}

// Timer describes the Arm architected timer's per-CPU interrupts, as PPI
// numbers in the device tree's interrupts cells (INTID 16+n). The order is
// the binding's: secure physical, non-secure physical, virtual,
// hypervisor (Documentation/devicetree/bindings/timer/arm,arch_timer.yaml).
type Timer struct {
	Compatible string
	SecurePPI  uint32
	PhysPPI    uint32
	VirtPPI    uint32
	// HypPPI is the EL2 (hypervisor) physical timer: the host kernel's own
	// timer when it runs at EL2.
	HypPPI uint32
}

// Console is the host's serial console.
type Console struct {
	// Compatible is the UART node's compatible ("ns16550a", "arm,pl011").
	Compatible string
	// Base is the UART's physical address.
	Base uint64
	// Baud is the line speed.
	Baud int
	// Linux is the kernel's name for it, for console= ("ttyS0", "ttyAMA0").
	Linux string
	// NotInDTB marks a DTB that names no console (no stdout-path, no
	// console= in bootargs): the boot script must pass console=Linux.
	NotInDTB bool
}

// SMP names how the host kernel starts the secondary cores.
type SMP string

// SMP methods. "psci" and "spin-table" are the cpu nodes' enable-method
// values; the platform methods are code in the host kernel's mach-* tree.
const (
	SMPPSCI      SMP = "psci"
	SMPSpinTable SMP = "spin-table"
	// SMPPlatform: a SoC-specific method in the host kernel (SYSRAM boot
	// address and SGI on Exynos, AuxCoreBoot registers on OMAP5, the sun6i
	// CPUCFG block).
	SMPPlatform SMP = "platform"
	SMPACPI     SMP = "acpi" // ACPI MADT (x86)
)

// HostKernel says which host kernel can run KVM on the board.
type HostKernel struct {
	// MaxVersion is the newest kernel release that can host KVM ("5.6"), or
	// "" when current kernels do. Linux 5.7 removed KVM host support for
	// 32-bit ARM ("KVM: arm: Remove 32bit KVM host support"), so every
	// ARMv7 board says "5.6" (see ARMv7HostKernel).
	MaxVersion string
	// Note explains the requirement for the check report.
	Note string
}

// ARMv7HostKernel is the host-kernel requirement every ARMv7 board shares.
var ARMv7HostKernel = HostKernel{
	MaxVersion: "5.6",
	Note:       "Linux 5.7 removed KVM host support for 32-bit ARM; use a BSP kernel of 5.6 or older with CONFIG_KVM=y, CONFIG_KVM_ARM_HOST=y and CONFIG_ARM_LPAE=y",
}

// PartitionTable is the boot media's partition table kind.
type PartitionTable string

// Partition table kinds.
const (
	MBR PartitionTable = "mbr"
	GPT PartitionTable = "gpt"
)

// Sector is the boot media's logical block size.
const Sector = 512

// Reserved areas of the partition table kinds at the start of the media.
const (
	// MBRSize: the MBR is LBA 0; a raw blob may start at LBA 1.
	MBRSize = Sector
	// GPTReservedEnd: a GPT occupies LBA 0 (protective MBR), LBA 1 (header)
	// and, by default, 32 sectors of 128-byte entries (128 entries): LBA 2-33
	// (UEFI 2.10, 5.3). Raw blobs must start at or after LBA 34.
	GPTReservedEnd = 34 * Sector
	// GPTBackupSize: the backup entries and header fill the last 33 sectors.
	GPTBackupSize = 33 * Sector
)

// Blob is a raw bootloader blob written at a fixed offset on the media,
// outside any partition.
type Blob struct {
	// Name says what the blob is ("BL1", "SPL", "U-Boot").
	Name string
	// File is the file the image builder writes ("u-boot-sunxi-with-spl.bin").
	File string
	// Package is the Debian package and path it comes from, or "" when the
	// user supplies it (signed vendor blobs).
	Package string
	// Offset is the byte offset on the media.
	Offset uint64
	// MaxLen is the space reserved for it: a longer file would overwrite
	// the next blob or the first partition.
	MaxLen uint64
	// Optional blobs may be left out (the board boots without them).
	Optional bool
}

// Area returns the media region the blob may occupy.
func (b Blob) Area() Region { return Region{b.Offset, b.MaxLen} }

// LoadAddrs are the physical addresses the boot script loads the host
// kernel, its device tree and the initramfs to. Zero means "the firmware
// decides" (UEFI, GRUB).
type LoadAddrs struct {
	Kernel, DTB, Initrd uint64
	// Script is where U-Boot loads boot.scr (its scriptaddr).
	Script uint64
}

// BootFile is a file the image builder puts into the boot partition
// besides the kernel, DTB and initramfs (MLO on OMAP).
type BootFile struct {
	Name    string
	Package string // Debian package and path, or "" when the user supplies it
}

// Image is how Tandem lays out the board's boot media (SD card, eMMC or
// disk). The image builder reads only these fields.
type Image struct {
	// Table is the partition table kind.
	Table PartitionTable
	// Blobs are raw bootloader blobs outside the partitions, in media order.
	Blobs []Blob
	// FirstPartition is the byte offset where the first partition starts;
	// everything before it belongs to the table and the blobs.
	FirstPartition uint64
	// BootFS is the boot partition's file system ("vfat"): the firmware or
	// U-Boot reads the kernel, DTB and boot script from it.
	BootFS string
	// BootFiles go into the boot partition (MLO and u-boot.img on OMAP5).
	BootFiles []BootFile
	// ESP marks the boot partition as an EFI system partition (GPT type
	// C12A7328-F81F-11D2-BA4B-00A0C93EC93B) rather than a plain FAT one.
	ESP bool
	// BootScript is the boot script U-Boot looks for ("boot.scr"), or ""
	// when the board boots through UEFI.
	BootScript string
	// Load are the boot script's load addresses.
	Load LoadAddrs
	// DTB is the device tree file the boot partition carries ("" for x86).
	DTB string
}

// Board is one board profile. Values live in platforms/<family> and are
// read-only after init.
type Board struct {
	// Name is the profile's unique name ("allwinner-a20-cubieboard2").
	Name string
	// Description is one line for people.
	Description string
	// Compatible is the root node's compatible strings this profile
	// matches, most specific first; a DTB matches when its root lists the
	// first one. Empty for boards without a device tree (x86).
	Compatible []string
	// Arch is the host architecture.
	Arch Arch
	CPU  CPU
	// Memory is the RAM banks.
	Memory []Region
	// MemoryFromBootloader marks boards whose DTB has no memory node: the
	// bootloader writes it at boot (sunxi U-Boot sizes DRAM itself), so the
	// DTB check notes its absence instead of failing, and Memory may be
	// empty (an imported profile whose DRAM size is not yet known).
	MemoryFromBootloader bool
	GIC                  GIC
	Timer                Timer
	Console              Console
	// SMP is how the host brings up the secondary cores; PSCIFromBootloader
	// marks boards whose /psci node only exists after U-Boot adds it.
	SMP                SMP
	PSCIFromBootloader bool
	// Reset is how the host resets the board, for people ("PSCI SYSTEM_RESET").
	Reset string
	// Denylist is compatibles never to hand to a guest, each with a reason
	// in the profile's comments. The host's own interrupt controller,
	// timer, console, memory and clock/reset/power providers are refused
	// on every board (see hostdt.Passthrough).
	Denylist []string
	// HostKernel says which kernel can host KVM.
	HostKernel HostKernel
	// GuestOnly marks boards whose CPUs cannot host KVM: Tandem only builds
	// guests for them, and the check says so.
	GuestOnly bool
	// DTB is the board's device tree file as Debian ships it, relative to
	// the kernel package's DTB directory ("apm/apm-mustang.dtb"), or a
	// path under the QEMU dump directory ("qemu/virt-arm64.dtb").
	DTB   string
	Image Image
}

// Errors callers branch on.
var (
	ErrUnknownBoard = errors.New("unknown board")
	ErrInvalid      = errors.New("invalid board profile")
)

// Validate checks the profile's internal invariants: a name, sane CPU
// count, memory banks, GIC regions and blobs that do not overlap, blobs
// that fit the partition table's free area and end before the first
// partition. It returns every problem joined.
func (b *Board) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("board %q: %w: %s", b.Name, ErrInvalid, fmt.Sprintf(format, args...)))
	}
	if b.Name == "" {
		bad("no name")
	}
	switch b.Arch {
	case ARM, ARM64, X86:
	default:
		bad("architecture %q, want arm, arm64 or x86_64", b.Arch)
	}
	if b.CPU.Count <= 0 {
		bad("CPU count %d", b.CPU.Count)
	}
	if cs := b.CPU.Clusters; len(cs) > 0 {
		total := 0
		for _, c := range cs {
			total += c.Count
		}
		if total != b.CPU.Count || cs[0].Compatible != b.CPU.Compatible {
			bad("CPU clusters %v must add up to the CPU count %d and start with its compatible %s", cs, b.CPU.Count, b.CPU.Compatible)
		}
	}
	if !b.CPU.Virtualization && !b.GuestOnly {
		bad("CPUs without virtualization extensions but not GuestOnly")
	}
	if len(b.Memory) == 0 && b.Arch != X86 && !b.MemoryFromBootloader {
		bad("no memory banks")
	}
	checkOverlaps("memory bank", regionsOf(b.Memory), bad)
	checkOverlaps("GIC region", b.GIC.Regions(), bad)
	for _, m := range b.Memory {
		if m.Size == 0 {
			bad("empty memory bank at %#x", m.Base)
		}
		for _, g := range b.GIC.Regions() {
			if g.Overlaps(m) {
				bad("%s %v overlaps memory bank %v", g.Name, g.Region, m)
			}
		}
	}
	if b.Arch != X86 && !b.GuestOnly && !b.GIC.HasVirt() {
		bad("GICv%d profile lacks the virtualization interface (GICH, GICV, maintenance PPI) a KVM host needs", b.GIC.Version)
	}
	b.validateImage(bad)
	return errors.Join(errs...)
}

func (b *Board) validateImage(bad func(string, ...any)) {
	im := b.Image
	var low uint64
	switch im.Table {
	case MBR:
		low = MBRSize
	case GPT:
		low = GPTReservedEnd
	default:
		bad("partition table %q, want mbr or gpt", im.Table)
		return
	}
	if im.FirstPartition < low {
		bad("first partition at %#x inside the %s area (ends %#x)", im.FirstPartition, im.Table, low)
	}
	if im.FirstPartition%Sector != 0 {
		bad("first partition at %#x not sector aligned", im.FirstPartition)
	}
	named := make([]NamedRegion, 0, len(im.Blobs))
	for _, bl := range im.Blobs {
		if bl.MaxLen == 0 {
			bad("blob %s has no maximum length", bl.Name)
		}
		if bl.Offset%Sector != 0 {
			bad("blob %s at %#x not sector aligned", bl.Name, bl.Offset)
		}
		if bl.Offset < low {
			bad("blob %s at %#x overlaps the %s (first free byte %#x)", bl.Name, bl.Offset, im.Table, low)
		}
		if bl.Area().End() > im.FirstPartition {
			bad("blob %s %v runs into the first partition at %#x", bl.Name, bl.Area(), im.FirstPartition)
		}
		named = append(named, NamedRegion{bl.Name, bl.Area()})
	}
	checkOverlaps("blob", named, bad)
	if im.BootFS == "" {
		bad("no boot file system")
	}
}

func regionsOf(rs []Region) []NamedRegion {
	n := make([]NamedRegion, len(rs))
	for i, r := range rs {
		n[i] = NamedRegion{fmt.Sprintf("#%d", i), r}
	}
	return n
}

func checkOverlaps(what string, rs []NamedRegion, bad func(string, ...any)) {
	s := append([]NamedRegion(nil), rs...)
	sort.Slice(s, func(i, j int) bool { return s[i].Base < s[j].Base })
	for i := 1; i < len(s); i++ {
		if s[i-1].Overlaps(s[i].Region) {
			bad("%s %s %v overlaps %s %v", what, s[i-1].Name, s[i-1].Region, s[i].Name, s[i].Region)
		}
	}
}

// Denies reports whether the board's denylist refuses a node with the
// given compatible list, and which entry does.
func (b *Board) Denies(compatible []string) (string, bool) {
	for _, c := range compatible {
		for _, d := range b.Denylist {
			if c == d {
				return d, true
			}
		}
	}
	return "", false
}

// CanHostKVM reports whether the board can host KVM with a current
// kernel, and if not, why.
func (b *Board) CanHostKVM() (bool, string) {
	switch {
	case b.GuestOnly || !b.CPU.Virtualization:
		return false, fmt.Sprintf("%s CPUs have no virtualization extensions: the board cannot host KVM with any kernel", b.CPU.Compatible)
	case b.HostKernel.MaxVersion != "":
		return false, fmt.Sprintf("KVM host support needs a kernel ≤ %s: %s", b.HostKernel.MaxVersion, b.HostKernel.Note)
	}
	return true, ""
}
