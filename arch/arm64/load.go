package arm64

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/mem"
)

// MaxDTBSize is the largest device tree the boot protocol allows
// (booting.rst: "must not exceed 2 megabytes in size").
const MaxDTBSize = 2 << 20

// dtbWindow is how far above the kernel's base the device tree may sit:
// kernels before 4.2 map only the first 512 MiB of their linear map
// early, and booting.rst asked for the DTB there.
const dtbWindow = 512 << 20

// Guest is what Load needs to know about the guest.
type Guest struct {
	// Kernel is the path of an arm64 Image (or Image.gz); Initrd of an
	// initramfs, or "".
	Kernel, Initrd string
}

// Boot is a loaded guest: where everything went.
type Boot struct {
	// KernelAddr is where the Image was loaded, and its entry point.
	KernelAddr uint64
	Image      Image
	// DTBAddr is where WriteDeviceTree puts the device tree: 2 MiB
	// aligned, in a 2 MiB block of its own (booting.rst: the kernel maps
	// it with 2 MiB blocks, which must not cover anything else special).
	DTBAddr uint64
	// InitrdAddr and InitrdSize locate the initrd (0 if none).
	InitrdAddr, InitrdSize uint64
}

// Load loads g's kernel and initrd into m (laid out by MemoryRanges).
// Errors name the file and what is wrong with it.
func Load(m *mem.Memory, g Guest) (*Boot, error) {
	regions := m.Regions()
	if len(regions) != 1 || regions[0].GPA != RAMBase {
		return nil, fmt.Errorf("guest memory is not laid out by arm64.MemoryRanges")
	}
	ramEnd := RAMBase + regions[0].Size
	f, err := os.Open(g.Kernel)
	if err != nil {
		return nil, fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	k, err := readKernel(f)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	img, err := ParseImage(k, uint64(len(k)))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: Image header: %w", g.Kernel, err)
	}
	b := &Boot{Image: img, KernelAddr: RAMBase + img.TextOffset}
	kernelEnd := b.KernelAddr + img.Size
	b.DTBAddr = alignUp(kernelEnd, align2M)
	if b.DTBAddr+MaxDTBSize > ramEnd {
		return nil, fmt.Errorf("kernel %s: image_size %d MiB does not fit in %d MiB of guest RAM with its device tree", g.Kernel, img.Size>>20, (ramEnd-RAMBase)>>20)
	}
	if b.DTBAddr+MaxDTBSize > RAMBase+dtbWindow {
		return nil, fmt.Errorf("kernel %s: image_size %d MiB leaves no room for the device tree in the first 512 MiB of RAM", g.Kernel, img.Size>>20)
	}
	dst, err := m.Slice(b.KernelAddr, uint64(len(k)))
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	copy(dst, k)
	if g.Initrd != "" {
		if err := b.loadInitrd(m, g.Initrd, b.DTBAddr+MaxDTBSize, ramEnd); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// loadInitrd puts the initrd at start. booting.rst wants it inside one
// 1 GiB aligned window of up to 32 GiB that also covers the kernel: from
// RAMBase, anything below 33 GiB is.
func (b *Boot) loadInitrd(m *mem.Memory, path string, start, ramEnd uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening initrd: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("initrd %s: %w", path, err)
	}
	size := uint64(st.Size())
	start = alignUp(start, pageSize)
	if start+size > ramEnd {
		return fmt.Errorf("initrd %s: %d MiB does not fit in guest RAM after the kernel (%d MiB free): give the guest more memory", path, size>>20, (ramEnd-start)>>20)
	}
	dst, err := m.Slice(start, size)
	if err != nil {
		return fmt.Errorf("initrd %s: %w", path, err)
	}
	if _, err := io.ReadFull(f, dst); err != nil {
		return fmt.Errorf("reading initrd %s: %w", path, err)
	}
	b.InitrdAddr, b.InitrdSize = start, size
	return nil
}

// WriteDeviceTree writes t at DTBAddr.
func (b *Boot) WriteDeviceTree(m *mem.Memory, t *dtb.Tree) error {
	blob, err := t.Bytes()
	if err != nil {
		return fmt.Errorf("device tree: %w", err)
	}
	if len(blob) > MaxDTBSize {
		return fmt.Errorf("device tree: %d bytes, larger than the boot protocol's %d", len(blob), MaxDTBSize)
	}
	return m.WriteAt(blob, b.DTBAddr)
}

// CheckKernel reads the header of the Image (or Image.gz) at path and
// says what is wrong with it, as Load would, without guest memory: a VMM
// checks its inputs before it opens /dev/kvm. Its errors do not name the
// file: the caller does.
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
	br := bufio.NewReader(f)
	var r io.Reader = br
	fileLen := uint64(st.Size())
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("gzip header: %w", err)
		}
		r, fileLen = z, 0 // the inflated length is known only once inflated
	}
	head := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the Image header: %w", err)
	}
	if _, err := ParseImage(head[:n], fileLen); err != nil {
		return fmt.Errorf("Image header: %w", err)
	}
	return nil
}
