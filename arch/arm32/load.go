package arm32

import (
	"fmt"
	"io"
	"os"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/mem"
)

// Guest is what Load needs to know about the guest.
type Guest struct {
	// Kernel is the path of a zImage; Initrd of an initramfs, or "".
	Kernel, Initrd string
}

// Boot is a loaded guest: where everything went.
type Boot struct {
	// KernelAddr is the entry point: where the zImage was loaded, an ELF
	// executable's e_entry, or a raw image's load address.
	KernelAddr uint64
	// Thumb starts the boot vCPU in Thumb state (an ELF entry point
	// with bit 0 set).
	Thumb bool
	// ZImage is the zImage's header (zero for an ELF or raw image).
	ZImage ZImage
	// DTBAddr is where WriteDeviceTree puts the device tree.
	DTBAddr uint64
	// InitrdAddr and InitrdSize locate the initrd (0 if none).
	InitrdAddr, InitrdSize uint64
}

// decompressFootprint is how far above RAMBase the decompressor may
// write: the kernel inflated at ZImageOffset with its BSS, then the
// zImage relocated above it with its 64 KiB heap and stack, rounded up
// with a MiB to spare. Without the extension table (kernels before 3.18)
// the inflated size is unknown and the footprint is SafeOffset.
func decompressFootprint(z ZImage) uint64 {
	if z.KernelSize == 0 {
		return SafeOffset
	}
	end := uint64(ZImageOffset) + uint64(z.KernelSize) + uint64(z.BSSSize) + uint64(z.Size) + 64<<10
	return alignUp(end, align1M) + align1M
}

// dtbOffset places the device tree: at SafeOffset where RAM allows, else
// (a small guest) just above the decompressor's footprint.
func dtbOffset(z ZImage, ramSize, initrdSize uint64) (uint64, error) {
	need := MaxDTBSize + alignUp(initrdSize, pageSize)
	if SafeOffset+need <= ramSize {
		return SafeOffset, nil
	}
	off := decompressFootprint(z)
	if off+need > ramSize {
		return 0, fmt.Errorf("%d MiB of guest RAM is too small: the kernel decompresses into the first %d MiB, and the device tree and initrd need %d MiB above that: give the guest at least %d MiB", ramSize>>20, off>>20, alignUp(need, align1M)>>20, alignUp(SafeOffset+need, align1M)>>20)
	}
	return off, nil
}

// Load loads g's zImage and initrd into m (laid out by MemoryRanges).
// Errors name the file and what is wrong with it.
func Load(m *mem.Memory, g Guest) (*Boot, error) {
	ramEnd, err := ramEndOf(m)
	if err != nil {
		return nil, err
	}
	ramSize := ramEnd - RAMBase
	// The zImage is read straight into guest RAM at its load address and
	// parsed there: the VMM holds no copy of it on its heap.
	k, err := readInto(m, RAMBase+ZImageOffset, ramSize-ZImageOffset, g.Kernel)
	if err != nil {
		return nil, err
	}
	z, err := ParseZImage(k)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: zImage header: %w", g.Kernel, err)
	}
	initrdSize, err := fileSize(g.Initrd)
	if err != nil {
		return nil, err
	}
	off, err := dtbOffset(z, ramSize, initrdSize)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	// The zImage was read whole: the appended-DTB and padding past end
	// are the decompressor's business, not the loader's.
	b := &Boot{ZImage: z, KernelAddr: RAMBase + ZImageOffset, DTBAddr: RAMBase + off}
	if err := b.loadInitrd(m, g.Initrd, b.DTBAddr+MaxDTBSize, initrdSize); err != nil {
		return nil, err
	}
	return b, nil
}

// fileSize is the size of the initrd at path, 0 for none.
func fileSize(path string) (uint64, error) {
	if path == "" {
		return 0, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("initrd: %w", err)
	}
	return uint64(st.Size()), nil
}

// loadInitrd reads the initrd at path (size bytes; none if path is
// empty) into guest RAM at start.
func (b *Boot) loadInitrd(m *mem.Memory, path string, start, size uint64) error {
	if path == "" {
		return nil
	}
	dst, err := m.Slice(start, size)
	if err != nil {
		return fmt.Errorf("initrd %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening initrd: %w", err)
	}
	defer f.Close()
	if _, err := io.ReadFull(f, dst); err != nil {
		return fmt.Errorf("reading initrd %s: %w", path, err)
	}
	b.InitrdAddr, b.InitrdSize = start, size
	return nil
}

// readInto reads the zImage at path into guest RAM at gpa, where room
// bytes are free, and returns it there. A zImage larger than room or than
// maxZImageSize is refused.
func readInto(m *mem.Memory, gpa, room uint64, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", path, err)
	}
	size := uint64(st.Size())
	if size > maxZImageSize {
		return nil, fmt.Errorf("kernel %s: larger than %d MiB", path, maxZImageSize>>20)
	}
	if size > room {
		return nil, fmt.Errorf("kernel %s: %d MiB does not fit in guest RAM: give the guest more memory", path, size>>20)
	}
	dst, err := m.Slice(gpa, size)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", path, err)
	}
	if _, err := io.ReadFull(f, dst); err != nil {
		return nil, fmt.Errorf("reading kernel %s: %w", path, err)
	}
	return dst, nil
}

// readFile reads at most limit bytes of a file, or says it is larger.
func readFile(path, what string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s: larger than %d MiB", what, path, limit>>20)
	}
	return b, nil
}

// WriteDeviceTree writes t at DTBAddr.
func (b *Boot) WriteDeviceTree(m *mem.Memory, t *dtb.Tree) error {
	blob, err := t.Bytes()
	if err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	if len(blob) > MaxDTBSize {
		return fmt.Errorf("device tree: %d bytes, larger than the %d Tandem reserves", len(blob), MaxDTBSize)
	}
	return m.WriteAt(blob, b.DTBAddr)
}

// CheckKernel reads the zImage at path and says what is wrong with it, as
// Load would, without guest memory: a VMM checks its inputs before it
// opens /dev/kvm. Its errors do not name the file: the caller does.
func CheckKernel(path string) error {
	k, err := readFile(path, "kernel", maxZImageSize)
	if err != nil {
		return err
	}
	if _, err := ParseZImage(k); err != nil {
		return fmt.Errorf("zImage header: %w", err)
	}
	return nil
}
