package x86

import (
	"errors"
	"fmt"

	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/mem"
)

// ErrNoLoadAddress: a raw x86 image was given without a load address.
// Unlike ARM boards, PCs have no address a bare-metal binary is loaded
// at by convention.
var ErrNoLoadAddress = errors.New("a raw x86_64 image needs a load address")

// identityEnd is the end of what the boot page tables map: an entry
// point beyond it would fault before its first instruction.
const identityEnd = identityGiB << 30

// LoadELF loads g's kernel, an x86_64 ELF executable, with each PT_LOAD
// segment at its physical address, writes the boot data a bzImage gets
// (zero page with the command line, initrd and e820 map; MP and ACPI
// tables; GDT and identity-mapping page tables) and sets the entry at
// e_entry: the vCPU enters it in 64-bit mode with RSI the zero page's
// address, as the 64-bit boot protocol enters a kernel. Segments may
// not overlap that boot data (BootDataRanges).
func LoadELF(m *mem.Memory, g Guest) (*Boot, error) {
	lowEnd, err := checkGuest(m, g)
	if err != nil {
		return nil, err
	}
	e, f, err := loader.OpenELF(g.Kernel, loader.X86_64)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	defer f.Close()
	if err := checkEntry(e.Entry); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	if err := e.Load(m, f, BootDataRanges(len(g.Cmdline))); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	return startBootData(m, g, e.Entry, e.Span(), lowEnd)
}

// LoadRaw loads g's kernel, a raw binary, at addr, which must be given,
// and enters it there as LoadELF enters an ELF executable.
func LoadRaw(m *mem.Memory, g Guest, addr uint64) (*Boot, error) {
	lowEnd, err := checkGuest(m, g)
	if err != nil {
		return nil, err
	}
	if err := checkRawAddr(addr); err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	span, err := loader.LoadRawFile(m, g.Kernel, addr, BootDataRanges(len(g.Cmdline)))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	return startBootData(m, g, addr, span, lowEnd)
}

// startBootData starts the zero page of an image that has no setup
// header of its own, and writes the rest of the boot data around the
// image at span.
func startBootData(m *mem.Memory, g Guest, entry uint64, span loader.Span, lowEnd uint64) (*Boot, error) {
	zp, err := m.Slice(ZeroPageAddr, pageSize)
	if err != nil {
		return nil, fmt.Errorf("zero page: %w", err)
	}
	clear(zp)
	zp[hdrTypeOfLoader] = loaderUndefined
	b := &Boot{Entry: entry, LoadAddr: span.Start}
	l := bootLimits{cmdline: cmdlineMax - 1, initrdTop: lowEnd, kernelEnd: span.End}
	if err := b.writeBootData(m, g, l); err != nil {
		return nil, err
	}
	return b, nil
}

// BootDataRanges are the guest-physical ranges the boot data of an ELF
// or raw image takes (see the memory map in layout.go), for a command
// line of cmdlineLen bytes: an image loaded over them would be
// overwritten, or overwrite what the vCPU starts with.
func BootDataRanges(cmdlineLen int) []loader.Range {
	return []loader.Range{
		{Name: "boot GDT and IDT", Start: GDTAddr, End: IDTAddr + 8},
		{Name: "zero page (boot_params)", Start: ZeroPageAddr, End: ZeroPageAddr + pageSize},
		{Name: "boot page tables", Start: PML4Addr, End: pdAddr + identityGiB*pageSize},
		{Name: "kernel command line", Start: CmdlineAddr, End: CmdlineAddr + uint64(cmdlineLen) + 1},
		{Name: "ACPI and MP tables", Start: ACPIAddr, End: biosEnd},
	}
}

// checkEntry refuses an entry point the boot page tables do not map.
func checkEntry(entry uint64) error {
	if entry >= identityEnd {
		return fmt.Errorf("%w: the entry point is at physical %#x, above the %d GiB the boot page tables map: link or load the image below 4 GiB", loader.ErrPlacement, entry, identityGiB)
	}
	return nil
}

// checkRawAddr refuses a raw image's load address: none, or one the boot
// page tables do not map.
func checkRawAddr(addr uint64) error {
	if addr == 0 {
		return fmt.Errorf("%w (load-address: in the guest file, or --load-address): there is no conventional place for one on a PC", ErrNoLoadAddress)
	}
	return checkEntry(addr)
}

// CheckELF says what is wrong with the x86_64 ELF executable at path, as
// LoadELF would for a command line of cmdlineLen bytes, without guest
// memory: its headers, its entry point, and segments over the boot data.
// Its errors do not name the file.
func CheckELF(path string, cmdlineLen int) error {
	e, f, err := loader.OpenELF(path, loader.X86_64)
	if err != nil {
		return err
	}
	f.Close()
	if err := checkEntry(e.Entry); err != nil {
		return err
	}
	return e.CheckReserved(BootDataRanges(cmdlineLen))
}

// CheckRaw says what is wrong with the raw image at path loaded at addr,
// as LoadRaw would for a command line of cmdlineLen bytes, without guest
// memory. Its errors do not name the file.
func CheckRaw(path string, addr uint64, cmdlineLen int) error {
	if err := checkRawAddr(addr); err != nil {
		return err
	}
	return loader.CheckRaw(path, addr, BootDataRanges(cmdlineLen))
}
