// Package platforms holds the Board type: what a Tandem distribution must
// know about a board that the host kernel does not work out for itself.
// A board is data: a directory holding a commented board.yaml (and,
// optionally, its DTB and a blobs/ folder), read by Load at run time. The
// built-in boards are the same files (platforms/boards), embedded into
// Tandem; platforms/all lists them.
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
	"slices"
	"sort"
	"strings"
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
	Base uint64 `yaml:"base"`
	Size uint64 `yaml:"size"`
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
	// Compatible is the cpu nodes' compatible ("arm,cortex-a15"); on a
	// big.LITTLE SoC, the first cluster's.
	Compatible string `yaml:"compatible"`
	// Count is the number of cores, of every cluster.
	Count int `yaml:"count"`
	// Virtualization reports whether the cores implement the virtualization
	// extensions (EL2 / HYP mode, or VT-x/AMD-V). A board without them can
	// be a Tandem guest target, never a host.
	Virtualization bool `yaml:"virtualization"`
	// Clusters lists the core types of a big.LITTLE SoC in the cpu nodes'
	// order (Rockchip RK3399: 4× Cortex-A53, then 2× Cortex-A72); empty
	// when every core is the same.
	Clusters []Cluster `yaml:"clusters"`
}

// Cluster is one kind of core of a big.LITTLE SoC.
type Cluster struct {
	Compatible string `yaml:"compatible"`
	Count      int    `yaml:"count"`
}

// GIC describes the Arm Generic Interrupt Controller as the host sees it.
type GIC struct {
	// Version is 2 or 3 (0: no GIC, as on x86).
	Version int `yaml:"version"`
	// Compatible is the controller node's first compatible string.
	Compatible string `yaml:"compatible"`
	// Dist is the distributor (GICD), both versions.
	Dist Region `yaml:"dist"`
	// CPU is the CPU interface (GICC), GICv2 only.
	CPU Region `yaml:"cpu"`
	// Hyp is the virtual interface control (GICH), GICv2 reg entry 3: the
	// hypervisor's view of the list registers.
	Hyp Region `yaml:"hyp"`
	// VCPU is the virtual CPU interface (GICV), GICv2 reg entry 4: what KVM
	// maps into a guest as its GICC.
	VCPU Region `yaml:"vcpu"`
	// Redist is the redistributor range (GICR), GICv3 only.
	Redist Region `yaml:"redist"`
	// MaintenancePPI is the virtual interface maintenance interrupt, as the
	// PPI number in the device tree (INTID 16+n); KVM needs it.
	MaintenancePPI uint32 `yaml:"maintenance-ppi"`
	// MaintenanceNotInDTB marks a DTB whose GIC node omits the maintenance
	// interrupt although the hardware wires it (OMAP5): KVM's vgic-v2 init
	// fails without it, so the image builder must add
	// interrupts = <GIC_PPI MaintenancePPI IRQ_TYPE_LEVEL_HIGH> to the node.
	MaintenanceNotInDTB bool `yaml:"maintenance-not-in-dtb"`
	// PageStride is the distance between the two 4 KiB pages of the GICC
	// and GICV regions: 4 KiB on most boards, 64 KiB where the SoC aliases
	// each page across a 64 KiB frame (X-Gene). 0 means 4 KiB.
	PageStride uint64 `yaml:"page-stride"`
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
	Compatible string `yaml:"compatible"`
	SecurePPI  uint32 `yaml:"secure-ppi"`
	PhysPPI    uint32 `yaml:"phys-ppi"`
	VirtPPI    uint32 `yaml:"virt-ppi"`
	// HypPPI is the EL2 (hypervisor) physical timer: the host kernel's own
	// timer when it runs at EL2.
	HypPPI uint32 `yaml:"hyp-ppi"`
}

// Console is the host's serial console.
type Console struct {
	// Compatible is the UART node's compatible ("ns16550a", "arm,pl011").
	Compatible string `yaml:"compatible"`
	// Base is the UART's physical address.
	Base uint64 `yaml:"base"`
	// Baud is the line speed.
	Baud int `yaml:"baud"`
	// Linux is the kernel's name for it, for console= ("ttyS0", "ttyAMA0").
	Linux string `yaml:"linux"`
	// NotInDTB marks a DTB that names no console (no stdout-path, no
	// console= in bootargs): the boot script must pass console=Linux.
	NotInDTB bool `yaml:"not-in-dtb"`
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
	MaxVersion string `yaml:"max-version"`
	// Note explains the requirement for the check report.
	Note string `yaml:"note"`
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
	Name string `yaml:"name"`
	// File is the file the image builder writes ("u-boot-sunxi-with-spl.bin").
	File string `yaml:"file"`
	// Package is the Debian package and path it comes from, or "" when the
	// user supplies it (signed vendor blobs): in the board directory's
	// blobs/ folder, or a directory given to the image builder.
	Package string `yaml:"package"`
	// Offset is the byte offset on the media.
	Offset uint64 `yaml:"offset"`
	// MaxLen is the space reserved for it: a longer file would overwrite
	// the next blob or the first partition.
	MaxLen uint64 `yaml:"max-len"`
	// Optional blobs may be left out (the board boots without them).
	Optional bool `yaml:"optional"`
}

// Area returns the media region the blob may occupy.
func (b Blob) Area() Region { return Region{b.Offset, b.MaxLen} }

// LoadAddrs are the physical addresses the boot script loads the host
// kernel, its device tree and the initramfs to. Zero means "the firmware
// decides" (UEFI, GRUB).
type LoadAddrs struct {
	Kernel uint64 `yaml:"kernel"` // U-Boot's kernel_addr_r
	DTB    uint64 `yaml:"dtb"`    // fdt_addr_r
	Initrd uint64 `yaml:"initrd"` // ramdisk_addr_r
	// Script is where U-Boot loads boot.scr (its scriptaddr).
	Script uint64 `yaml:"script"`
}

// BootFile is a file the image builder puts into the boot partition
// besides the kernel, DTB and initramfs (MLO on OMAP, the Raspberry Pi's
// firmware and config.txt).
type BootFile struct {
	Name    string `yaml:"name"`
	Package string `yaml:"package"` // Debian package and path, or "" when the user supplies it
	// Content is the file's text when the image builder writes it itself
	// (the Raspberry Pi firmware's config.txt); Package is then "".
	Content string `yaml:"content"`
	// Optional boot files may be left out: the image is then complete for
	// everything but the first stage, which the user adds later or which
	// the board's emulation does without (ZynqMP's BOOT.BIN under QEMU's
	// -kernel boot).
	Optional bool `yaml:"optional"`
}

// Generated reports whether the image builder writes the file from
// Content rather than copying it from a package or the user.
func (f BootFile) Generated() bool { return f.Content != "" }

// Image is how Tandem lays out the board's boot media (SD card, eMMC or
// disk). The image builder reads only these fields.
type Image struct {
	// Table is the partition table kind.
	Table PartitionTable `yaml:"table"`
	// Blobs are raw bootloader blobs outside the partitions, in media order.
	Blobs []Blob `yaml:"blobs"`
	// FirstPartition is the byte offset where the first partition starts;
	// everything before it belongs to the table and the blobs.
	FirstPartition uint64 `yaml:"first-partition"`
	// BootFS is the boot partition's file system ("vfat"): the firmware or
	// U-Boot reads the kernel, DTB and boot script from it.
	BootFS string `yaml:"boot-fs"`
	// BootFiles go into the boot partition (MLO and u-boot.img on OMAP5).
	BootFiles []BootFile `yaml:"boot-files"`
	// ESP marks the boot partition as an EFI system partition (GPT type
	// C12A7328-F81F-11D2-BA4B-00A0C93EC93B) rather than a plain FAT one.
	ESP bool `yaml:"esp"`
	// BootScript is the boot script U-Boot looks for ("boot.scr"), or ""
	// when the board boots through UEFI.
	BootScript string `yaml:"boot-script"`
	// BootEFI makes the boot script start the kernel through U-Boot's
	// UEFI (bootefi) rather than booti: the kernel's EFI stub loads the
	// initramfs the command line names (initrd=) from the boot partition
	// and, when the firmware drives a display, hands the kernel its
	// framebuffer (EFI GOP), which Linux's efifb then shows as /dev/fb0.
	// arm64 boards with a boot script only.
	BootEFI bool `yaml:"boot-efi"`
	// Load are the boot script's load addresses.
	Load LoadAddrs `yaml:"load"`
	// DTB is the device tree file the boot partition carries ("" for x86).
	// A board.yaml that leaves it out carries the board's own (Board.DTB).
	DTB string `yaml:"dtb"`
}

// Board is one board profile: a board.yaml decoded by Decode, Parse or
// Load, built in (platforms/all) or a vendor's directory. Read-only once
// loaded.
type Board struct {
	// Name is the profile's unique name ("allwinner-a20-cubieboard2").
	Name string `yaml:"name"`
	// Description is one line for people.
	Description string `yaml:"description"`
	// Compatible is the root node's compatible strings this profile
	// matches, most specific first; a DTB matches when its root lists the
	// first one. Empty for boards without a device tree (x86).
	Compatible []string `yaml:"compatible"`
	// Arch is the host architecture.
	Arch Arch `yaml:"arch"`
	CPU  CPU  `yaml:"cpu"`
	// Memory is the RAM banks.
	Memory []Region `yaml:"memory"`
	// MemoryFromBootloader marks boards whose DTB has no memory node: the
	// bootloader writes it at boot (sunxi U-Boot sizes DRAM itself), so the
	// DTB check notes its absence instead of failing, and Memory may be
	// empty (an imported profile whose DRAM size is not yet known).
	MemoryFromBootloader bool    `yaml:"memory-from-bootloader"`
	GIC                  GIC     `yaml:"gic"`
	Timer                Timer   `yaml:"timer"`
	Console              Console `yaml:"console"`
	// SMP is how the host brings up the secondary cores; PSCIFromBootloader
	// marks boards whose /psci node only exists after U-Boot adds it.
	SMP                SMP  `yaml:"smp"`
	PSCIFromBootloader bool `yaml:"psci-from-bootloader"`
	// Reset is how the host resets the board, for people ("PSCI SYSTEM_RESET").
	Reset string `yaml:"reset"`
	// Denylist is compatibles never to hand to a guest, each with a reason
	// in the profile's comments. The host's own interrupt controller,
	// timer, console, memory and clock/reset/power providers are refused
	// on every board (see hostdt.Passthrough).
	Denylist []string `yaml:"denylist"`
	// HostKernel says which kernel can host KVM.
	HostKernel HostKernel `yaml:"host-kernel"`
	// HostModules are the host kernel modules, by name, the board needs
	// beyond those every host initramfs carries (images/hostinit.Modules):
	// the driver of its SD/MMC controller where Debian builds it as a
	// module. The initramfs loads them, dependencies first; a kernel that
	// has one built in skips it.
	HostModules []string `yaml:"host-modules"`
	// GuestOnly marks boards whose CPUs cannot host KVM: Tandem only builds
	// guests for them, and the check says so.
	GuestOnly bool `yaml:"guest-only"`
	// DTB is the board's device tree file: a file in the board directory
	// (what `tandem bsp import` copies there), else Debian's, relative to
	// the kernel package's DTB directory ("apm/apm-mustang.dtb"), or a path
	// under the QEMU dump directory ("qemu/virt-arm64.dtb"). DTBPath finds
	// it.
	DTB   string `yaml:"dtb"`
	Image Image  `yaml:"image"`

	// Dir is the board directory the profile was loaded from (Load), ""
	// for a built-in board: its DTB and blobs/ folder are looked for there.
	Dir string `yaml:"-" json:",omitempty"`
	// File is the board.yaml the profile was decoded from, for messages.
	File string `yaml:"-" json:",omitempty"`
	// src is File's content, to give each Problem its line.
	src []byte
}

// Errors callers branch on.
var (
	ErrUnknownBoard = errors.New("unknown board")
	ErrInvalid      = errors.New("invalid board profile")
)

// A Problem is one broken invariant of a profile, named by the board.yaml
// field it is about ("gic.hyp", "image.blobs[1]"). File and Line locate
// it in the board.yaml the profile was read from, when it was. Problems
// are ErrInvalid.
type Problem struct {
	Board string
	Field string
	Msg   string
	// Fix says what would mend it, where the message does not.
	Fix  string
	File string
	Line int // 0: the field is not in the file (left at its zero value)
}

func (p *Problem) Error() string {
	msg := p.Msg
	if p.Fix != "" {
		msg += ": " + p.Fix
	}
	if w := p.Where(); w != "" {
		return fmt.Sprintf("%s: %s: %s", w, p.Field, msg)
	}
	return fmt.Sprintf("board %q: %v: %s: %s", p.Board, ErrInvalid, p.Field, msg)
}

// Where returns the problem's place for people: "FILE:LINE", "FILE", or
// "" for a profile not read from a file.
func (p *Problem) Where() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Unwrap makes every Problem an ErrInvalid.
func (p *Problem) Unwrap() error { return ErrInvalid }

// Validate checks the profile's internal invariants (see Problems) and
// returns every broken one joined, or nil.
func (b *Board) Validate() error { return Join(b.Problems()) }

// Join returns the problems as one error (errors.Join), nil for none.
func Join(ps []*Problem) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// problems collects a board's Problems; bad adds one.
type problems struct {
	b    *Board
	list []*Problem
}

func (ps *problems) bad(field, format string, args ...any) *Problem {
	p := &Problem{Board: ps.b.Name, Field: field, Msg: fmt.Sprintf(format, args...), File: ps.b.File}
	if ps.b.src != nil {
		p.Line = lineOf(ps.b.src, field)
	}
	ps.list = append(ps.list, p)
	return p
}

// Problems checks the profile's internal invariants: a name, an
// architecture, a sane CPU count, memory banks, GIC regions and blobs that
// do not overlap, blobs that fit the partition table's free area and end
// before the first partition, load addresses inside memory. It returns
// each broken one.
func (b *Board) Problems() []*Problem {
	ps := &problems{b: b}
	if b.Name == "" {
		ps.bad("name", "no name")
	}
	switch b.Arch {
	case ARM, ARM64, X86:
	default:
		ps.bad("arch", "architecture %q, want arm, arm64 or x86_64", b.Arch)
	}
	b.validateCPU(ps)
	b.validateMemory(ps)
	if b.Arch != X86 && !b.GuestOnly && !b.GIC.HasVirt() {
		ps.bad("gic", "GICv%d profile lacks the virtualization interface (GICH, GICV, maintenance PPI) a KVM host needs", b.GIC.Version)
	}
	switch b.SMP {
	case SMPPSCI, SMPSpinTable, SMPPlatform, SMPACPI:
	default:
		ps.bad("smp", "SMP bring-up %q, want %s, %s, %s or %s", b.SMP, SMPPSCI, SMPSpinTable, SMPPlatform, SMPACPI)
	}
	b.validateImage(ps)
	return ps.list
}

func (b *Board) validateCPU(ps *problems) {
	c := b.CPU
	if c.Count <= 0 {
		ps.bad("cpu.count", "CPU count %d", c.Count)
	}
	if !c.Virtualization && !b.GuestOnly {
		ps.bad("cpu.virtualization", "CPUs without virtualization extensions, but not guest-only")
	}
	if len(c.Clusters) == 0 {
		return
	}
	n := 0
	for _, cl := range c.Clusters {
		n += cl.Count
	}
	if n != c.Count {
		ps.bad("cpu.clusters", "the clusters hold %d cores, the CPU count says %d", n, c.Count)
	}
	if c.Clusters[0].Compatible != c.Compatible {
		ps.bad("cpu.clusters", "the first cluster is %q, the CPU compatible says %q", c.Clusters[0].Compatible, c.Compatible)
	}
}

// gicFields names the GIC's regions (GIC.Regions) by their board.yaml field.
var gicFields = map[string]string{"GICD": "gic.dist", "GICC": "gic.cpu", "GICH": "gic.hyp", "GICV": "gic.vcpu", "GICR": "gic.redist"}

func (b *Board) validateMemory(ps *problems) {
	if len(b.Memory) == 0 && b.Arch != X86 && !b.MemoryFromBootloader {
		ps.bad("memory", "no memory banks")
	}
	banks := make([]span, len(b.Memory))
	for i, m := range b.Memory {
		banks[i] = span{fmt.Sprintf("memory[%d]", i), fmt.Sprintf("memory bank #%d", i), m}
		if m.Size == 0 {
			ps.bad(banks[i].field, "empty memory bank at %#x", m.Base)
		}
	}
	checkOverlaps(banks, ps)
	var gic []span
	for _, g := range b.GIC.Regions() {
		gic = append(gic, span{gicFields[g.Name], "GIC region " + g.Name, g.Region})
		for _, m := range b.Memory {
			if g.Overlaps(m) {
				ps.bad(gicFields[g.Name], "%s %v overlaps memory bank %v", g.Name, g.Region, m)
			}
		}
	}
	checkOverlaps(gic, ps)
}

func (b *Board) validateImage(ps *problems) {
	im := b.Image
	var low uint64
	switch im.Table {
	case MBR:
		low = MBRSize
	case GPT:
		low = GPTReservedEnd
	default:
		ps.bad("image.table", "partition table %q, want mbr or gpt", im.Table)
		return
	}
	if im.FirstPartition < low {
		ps.bad("image.first-partition", "first partition at %#x inside the %s area (ends %#x)", im.FirstPartition, im.Table, low)
	}
	if im.FirstPartition%Sector != 0 {
		ps.bad("image.first-partition", "first partition at %#x not sector aligned", im.FirstPartition)
	}
	blobs := make([]span, 0, len(im.Blobs))
	for i, bl := range im.Blobs {
		field := fmt.Sprintf("image.blobs[%d]", i)
		if bl.MaxLen == 0 {
			ps.bad(field+".max-len", "blob %s has no maximum length", bl.Name)
		}
		if bl.Offset%Sector != 0 {
			ps.bad(field+".offset", "blob %s at %#x not sector aligned", bl.Name, bl.Offset)
		}
		if bl.Offset < low {
			ps.bad(field+".offset", "blob %s at %#x overlaps the %s (first free byte %#x)", bl.Name, bl.Offset, im.Table, low)
		}
		if bl.Area().End() > im.FirstPartition {
			ps.bad(field, "blob %s %v runs into the first partition at %#x", bl.Name, bl.Area(), im.FirstPartition)
		}
		blobs = append(blobs, span{field, "blob " + bl.Name, bl.Area()})
	}
	checkOverlaps(blobs, ps)
	seen := map[string]bool{}
	for i, bf := range im.BootFiles {
		field := fmt.Sprintf("image.boot-files[%d]", i)
		switch {
		case bf.Name == "" || strings.Contains(bf.Name, "/") || strings.Contains(bf.Name, "\\"):
			ps.bad(field+".name", "boot file name %q: want a file name in the boot partition's root", bf.Name)
		case seen[bf.Name]:
			ps.bad(field+".name", "boot file %s listed twice", bf.Name)
		}
		seen[bf.Name] = true
		if bf.Generated() && bf.Package != "" {
			ps.bad(field, "boot file %s has both content and a package: give one", bf.Name)
		}
	}
	if im.BootFS == "" {
		ps.bad("image.boot-fs", "no boot file system")
	}
	if im.BootEFI && (im.BootScript == "" || b.Arch != ARM64) {
		ps.bad("image.boot-efi", "true on a %s board with boot script %q: bootefi starts an arm64 kernel from a U-Boot boot script; remove it or set boot-script", b.Arch, im.BootScript)
	}
	b.validateLoad(ps)
}

// validateLoad checks that each load address given lies in RAM, where the
// profile knows its banks.
func (b *Board) validateLoad(ps *problems) {
	if len(b.Memory) == 0 {
		return
	}
	l := b.Image.Load
	for _, a := range []struct {
		field string
		addr  uint64
	}{{"kernel", l.Kernel}, {"dtb", l.DTB}, {"initrd", l.Initrd}, {"script", l.Script}} {
		if a.addr == 0 {
			continue
		}
		if !slices.ContainsFunc(b.Memory, func(m Region) bool { return a.addr >= m.Base && a.addr < m.End() }) {
			ps.bad("image.load."+a.field, "%s load address %#x is in no memory bank %v", a.field, a.addr, b.Memory)
		}
	}
}

// LoadAddrsFix says where a board's load addresses come from.
const LoadAddrsFix = "set kernel/dtb/initrd/script from the board's U-Boot environment (kernel_addr_r, fdt_addr_r, ramdisk_addr_r, scriptaddr; run printenv on the board)"

// ImageProblems returns what an image for the board lacks that Validate
// does not ask of every profile: a board that boots through a U-Boot
// script needs the addresses it loads the kernel, the initramfs and the
// device tree to (an imported profile has none until its porter sets
// them).
func (b *Board) ImageProblems() []*Problem {
	if b.Image.BootScript == "" {
		return nil
	}
	ps := &problems{b: b}
	l := b.Image.Load
	var missing []string
	if l.Kernel == 0 {
		missing = append(missing, "kernel")
	}
	if l.DTB == 0 && b.Image.DTB != "" {
		missing = append(missing, "dtb")
	}
	if l.Initrd == 0 {
		missing = append(missing, "initrd")
	}
	switch {
	case l == LoadAddrs{}:
		ps.bad("image.load", "no load addresses").Fix = LoadAddrsFix
	case len(missing) > 0:
		ps.bad("image.load", "no %s load address", strings.Join(missing, ", ")).Fix = LoadAddrsFix
	}
	return ps.list
}

// span is a region named for messages and by its board.yaml field.
type span struct {
	field, name string
	Region
}

// checkOverlaps reports each pair of neighbouring regions that overlap,
// at the field of the higher one.
func checkOverlaps(rs []span, ps *problems) {
	s := append([]span(nil), rs...)
	sort.SliceStable(s, func(i, j int) bool { return s[i].Base < s[j].Base })
	for i := 1; i < len(s); i++ {
		if s[i-1].Overlaps(s[i].Region) {
			ps.bad(s[i].field, "%s %v overlaps %s %v", s[i].name, s[i].Region, s[i-1].name, s[i-1].Region)
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
