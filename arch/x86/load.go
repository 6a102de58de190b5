package x86

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// MaxCPUs is the most vCPUs a guest can have: the MADT and MP table carry
// 8-bit APIC IDs, 255 is the broadcast ID and one more is the IOAPIC's.
const MaxCPUs = 254

// Guest is what Load needs to know about the guest.
type Guest struct {
	// Kernel is the path of a bzImage; Initrd of an initramfs, or "".
	Kernel, Initrd string
	Cmdline        string
	CPUs           int
	// VirtioMMIO are the virtio-mmio transports, described in the DSDT.
	VirtioMMIO []devices.Placement
	// Serial describes COM1 (port 0x3f8, IRQ 4) in the DSDT.
	Serial bool
	// Watchdog, when set, is described by a WDAT.
	Watchdog *Watchdog
	// TPM describes a TPM TIS at TPMBase in the DSDT.
	TPM bool
}

// Boot is a loaded guest, ready for its vCPUs to be set up.
type Boot struct {
	// Entry is the 64-bit entry point: a bzImage's load address + 0x200,
	// an ELF executable's e_entry or a raw image's load address.
	Entry uint64
	// LoadAddr is where the protected-mode kernel, or the lowest
	// segment of an ELF or raw image, was loaded.
	LoadAddr uint64
	// InitrdAddr and InitrdSize locate the initrd (0 if none).
	InitrdAddr, InitrdSize uint64
	cpus                   int

	// mu protects supported, the host's KVM_GET_SUPPORTED_CPUID, read
	// once for all vCPUs (their threads may set up concurrently).
	mu        sync.Mutex
	supported []kvm.CPUIDEntry
}

// ErrBadCPUs is returned by Load for a vCPU count outside 1..MaxCPUs.
var ErrBadCPUs = errors.New("unsupported vCPU count")

// Load loads g's kernel and initrd into m and writes everything the
// kernel reads at boot: the zero page, command line, GDT, page tables,
// MP table and ACPI tables. m must be laid out by MemoryRanges.
func Load(m *mem.Memory, g Guest) (*Boot, error) {
	lowEnd, err := checkGuest(m, g)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(g.Kernel)
	if err != nil {
		return nil, fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	b, img, err := loadKernel(m, f, st.Size(), lowEnd)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	limits := bootLimits{
		cmdline:   min(img.cmdlineSize, cmdlineMax-1),
		initrdTop: min(img.initrdAddrMax+1, lowEnd),
		kernelEnd: img.runAddr(b.LoadAddr) + img.initSize,
	}
	if err := b.writeBootData(m, g, limits); err != nil {
		return nil, err
	}
	return b, nil
}

// checkGuest checks g's vCPU count and m's layout, and returns the end
// of RAM below the 32-bit hole.
func checkGuest(m *mem.Memory, g Guest) (lowEnd uint64, err error) {
	if g.CPUs < 1 || g.CPUs > MaxCPUs {
		return 0, fmt.Errorf("%w: %d (x86 guests have 1 to %d)", ErrBadCPUs, g.CPUs, MaxCPUs)
	}
	return lowMemEnd(m)
}

// bootLimits are what the kernel allows of the boot data: the longest
// command line, the end of the highest initrd, and where the initrd may
// start (above the kernel's footprint).
type bootLimits struct {
	cmdline, initrdTop, kernelEnd uint64
}

// writeBootData writes what every x86 guest is handed beside its kernel,
// once the kernel is in place and the zero page started: the command
// line, the initrd, the e820 map, the MP and ACPI tables, and the GDT
// and page tables of the 64-bit entry.
func (b *Boot) writeBootData(m *mem.Memory, g Guest, l bootLimits) error {
	b.cpus = g.CPUs
	zp, err := m.Slice(ZeroPageAddr, pageSize)
	if err != nil {
		return fmt.Errorf("zero page: %w", err)
	}
	if err := writeCmdline(m, zp, l.cmdline, g.Cmdline); err != nil {
		return fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	if g.Initrd != "" {
		if err := b.loadInitrd(m, zp, g.Initrd, l.kernelEnd, l.initrdTop); err != nil {
			return fmt.Errorf("initrd %s: %w", g.Initrd, err)
		}
	}
	if err := writeE820(zp, m); err != nil {
		return err
	}
	if err := writeMPTable(m, g.CPUs, g.VirtioMMIO); err != nil {
		return fmt.Errorf("writing MP table: %w", err)
	}
	if err := writeACPI(m, acpiConfig{CPUs: g.CPUs, VirtioMMIO: g.VirtioMMIO, Serial: g.Serial, Watchdog: g.Watchdog, TPM: g.TPM}); err != nil {
		return fmt.Errorf("writing ACPI tables: %w", err)
	}
	binary.LittleEndian.PutUint64(zp[bpACPIRSDPAddr:], ACPIAddr)
	if err := writeGDT(m); err != nil {
		return fmt.Errorf("writing GDT: %w", err)
	}
	if err := writePageTables(m); err != nil {
		return fmt.Errorf("writing page tables: %w", err)
	}
	return nil
}

// Offsets in struct boot_params (Documentation/arch/x86/zero-page.rst).
const (
	bpACPIRSDPAddr     = 0x070
	bpExtRamdiskImage  = 0x0c0
	bpExtRamdiskSize   = 0x0c4
	bpExtCmdLinePtr    = 0x0c8
	bpE820Entries      = 0x1e8
	bpE820Table        = 0x2d0
	e820EntrySize      = 20
	e820MaxZeroPage    = 128 // E820_MAX_ENTRIES_ZEROPAGE
	e820RAM            = 1   // E820_TYPE_RAM
	e820Reserved       = 2   // E820_TYPE_RESERVED
	zeroPageHeaderBase = hdrSetupSects
)

// lowMemEnd returns the end of the RAM region at guest-physical 0.
func lowMemEnd(m *mem.Memory) (uint64, error) {
	for _, r := range m.Regions() {
		if r.GPA == 0 {
			if r.End() < biosEnd+pageSize {
				return 0, fmt.Errorf("guest RAM below 4 GiB is %d KiB: %w", r.Size>>10, ErrKernelTooLarge)
			}
			return r.End(), nil
		}
	}
	return 0, fmt.Errorf("guest RAM does not start at 0: lay it out with x86.MemoryRanges")
}

// loadKernel reads the bzImage in r (size bytes), copies its
// protected-mode kernel into m and starts the zero page with its header.
func loadKernel(m *mem.Memory, r io.ReaderAt, size int64, lowEnd uint64) (*Boot, *bzImage, error) {
	head := make([]byte, min(size, hdrEnd))
	if _, err := r.ReadAt(head, 0); err != nil {
		return nil, nil, fmt.Errorf("reading setup header: %w", err)
	}
	img, err := parseBzImage(head, size)
	if err != nil {
		return nil, nil, err
	}
	load := img.loadAddr()
	run := img.runAddr(load)
	if run+img.initSize > lowEnd || load+img.payloadLen > lowEnd {
		return nil, nil, fmt.Errorf("%w: it needs RAM up to %#x (init_size %#x from %#x) and RAM below 4 GiB ends at %#x: give the guest more memory",
			ErrKernelTooLarge, run+img.initSize, img.initSize, run, lowEnd)
	}
	dst, err := m.Slice(load, img.payloadLen)
	if err != nil {
		return nil, nil, fmt.Errorf("placing kernel at %#x: %w", load, err)
	}
	if _, err := r.ReadAt(dst, int64(img.payloadOff)); err != nil {
		return nil, nil, fmt.Errorf("reading protected-mode kernel: %w", err)
	}
	zp, err := m.Slice(ZeroPageAddr, pageSize)
	if err != nil {
		return nil, nil, fmt.Errorf("zero page: %w", err)
	}
	clear(zp)
	copy(zp[zeroPageHeaderBase:], img.header)
	zp[hdrTypeOfLoader] = loaderUndefined
	zp[hdrLoadflags] |= canUseHeap
	binary.LittleEndian.PutUint16(zp[hdrHeapEndPtr:], heapEnd)
	return &Boot{Entry: load + entry64Offset, LoadAddr: load}, img, nil
}

// writeCmdline copies the command line, NUL-terminated, to CmdlineAddr:
// at most limit bytes of it.
func writeCmdline(m *mem.Memory, zp []byte, limit uint64, cmdline string) error {
	if uint64(len(cmdline)) > limit {
		return fmt.Errorf("%w: %d bytes, the kernel's cmdline_size allows %d", ErrCmdlineTooLong, len(cmdline), limit)
	}
	if err := m.WriteAt(append([]byte(cmdline), 0), CmdlineAddr); err != nil {
		return fmt.Errorf("writing command line: %w", err)
	}
	binary.LittleEndian.PutUint32(zp[hdrCmdLinePtr:], CmdlineAddr)
	binary.LittleEndian.PutUint32(zp[bpExtCmdLinePtr:], 0)
	return nil
}

// loadInitrd places the initrd as high as it may go in low RAM: ending
// at or below top (initrd_addr_max + 1 for a bzImage), page aligned,
// above the kernel's end.
func (b *Boot) loadInitrd(m *mem.Memory, zp []byte, path string, kernelEnd, top uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := uint64(st.Size())
	if size == 0 {
		return fmt.Errorf("file is empty")
	}
	if size > top || (top-size)&^(pageSize-1) < kernelEnd {
		return fmt.Errorf("%w: %d MiB, and only %d MiB lie between the kernel's end %#x and %#x (the end of low RAM, or initrd_addr_max + 1): give the guest more memory",
			ErrInitrdTooLarge, size>>20, (top-min(top, kernelEnd))>>20, kernelEnd, top)
	}
	addr := (top - size) &^ (pageSize - 1)
	dst, err := m.Slice(addr, size)
	if err != nil {
		return fmt.Errorf("placing at %#x: %w", addr, err)
	}
	if _, err := io.ReadFull(f, dst); err != nil {
		return fmt.Errorf("reading: %w", err)
	}
	le := binary.LittleEndian
	le.PutUint32(zp[hdrRamdiskImage:], uint32(addr))
	le.PutUint32(zp[hdrRamdiskSize:], uint32(size))
	le.PutUint32(zp[bpExtRamdiskImage:], uint32(addr>>32))
	le.PutUint32(zp[bpExtRamdiskSize:], uint32(size>>32))
	b.InitrdAddr, b.InitrdSize = addr, size
	return nil
}

// e820Entry is one entry of the zero page's e820 table.
type e820Entry struct {
	Addr, Size uint64
	Type       uint32
}

// e820Map returns the guest's e820 map: every RAM region, less the BIOS
// area below 1 MiB where the ACPI and MP tables live.
func e820Map(m *mem.Memory) []e820Entry {
	var es []e820Entry
	for _, r := range m.Regions() {
		if r.GPA == 0 {
			es = append(es,
				e820Entry{0, ebdaAddr, e820RAM},
				e820Entry{ACPIAddr, biosEnd - ACPIAddr, e820Reserved},
				e820Entry{biosEnd, r.End() - biosEnd, e820RAM})
			continue
		}
		es = append(es, e820Entry{r.GPA, r.Size, e820RAM})
	}
	return es
}

func writeE820(zp []byte, m *mem.Memory) error {
	es := e820Map(m)
	if len(es) > e820MaxZeroPage {
		return fmt.Errorf("e820 map has %d entries, the zero page holds %d", len(es), e820MaxZeroPage)
	}
	le := binary.LittleEndian
	for i, e := range es {
		o := bpE820Table + i*e820EntrySize
		le.PutUint64(zp[o:], e.Addr)
		le.PutUint64(zp[o+8:], e.Size)
		le.PutUint32(zp[o+16:], e.Type)
	}
	zp[bpE820Entries] = uint8(len(es))
	return nil
}

// CheckKernel reads the setup header of the bzImage at path and says what
// is wrong with it, as Load would, without guest memory: a VMM checks its
// inputs before it opens /dev/kvm. Its errors do not name the file: the
// caller does.
func CheckKernel(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	head := make([]byte, min(st.Size(), hdrEnd))
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("reading setup header: %w", err)
	}
	if _, err := parseBzImage(head, st.Size()); err != nil {
		return err
	}
	return nil
}
