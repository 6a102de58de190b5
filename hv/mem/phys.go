package mem

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DevMem is the character device of host physical memory (mem(4)).
const DevMem = "/dev/mem"

// ErrDevMemRefused is returned when /dev/mem will not map a range.
var ErrDevMemRefused = errors.New("/dev/mem refuses the range")

// Phys is host physical memory mapped into the VMM: a device's registers
// passed through to a guest.
type Phys struct {
	// Base is the host physical address of Host[0].
	Base uint64
	// Host is the mapping; len(Host) is a multiple of the page size.
	Host []byte
}

// MapPhys maps the host physical range [base, base+size) from devMem
// (DevMem; tests give a file), shared and uncached. base and size must be
// page aligned.
//
// Linux maps /dev/mem with remap_pfn_range, so the mapping is VM_IO |
// VM_PFNMAP; for a range outside system RAM the pages are
// pgprot_noncached (arch/arm64/mm/mmu.c, phys_mem_access_prot), and
// O_SYNC asks for uncached pages everywhere (drivers/char/mem.c). With
// CONFIG_IO_STRICT_DEVMEM the kernel refuses (EPERM) a range a driver
// holds busy (kernel/resource.c, iomem_is_exclusive): the device's host
// driver must be unbound first.
func MapPhys(devMem string, base, size uint64) (*Phys, error) {
	page := uint64(unix.Getpagesize())
	if size == 0 || base%page != 0 || size%page != 0 || base+size < base {
		return nil, fmt.Errorf("host physical range %#x+%#x: must be non-empty and %d-byte aligned", base, size, page)
	}
	f, err := os.OpenFile(devMem, os.O_RDWR|unix.O_SYNC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s (run as root; the kernel needs CONFIG_DEVMEM): %w", devMem, err)
	}
	// The mapping outlives the descriptor.
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), int64(base), int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if errors.Is(err, unix.EPERM) {
		return nil, fmt.Errorf("mapping host physical %#x+%#x from %s: %w: a host driver holds it busy (unbind it), or it is RAM or a range the kernel keeps exclusive", base, size, devMem, ErrDevMemRefused)
	}
	if err != nil {
		return nil, fmt.Errorf("mapping host physical %#x+%#x from %s: %w", base, size, devMem, err)
	}
	return &Phys{Base: base, Host: b}, nil
}

// Close unmaps the range.
func (p *Phys) Close() error {
	if p.Host == nil {
		return nil
	}
	err := unix.Munmap(p.Host)
	p.Host = nil
	return err
}
