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
	// KernelAddr is the entry point: where the Image was loaded, an ELF
	// executable's e_entry, or a raw image's load address.
	KernelAddr uint64
	// Image is the Image header (zero for an ELF or raw image).
	Image Image
	// DTBAddr is where WriteDeviceTree puts the device tree: 2 MiB
	// aligned, in a 2 MiB block of its own (booting.rst: the kernel maps
	// it with 2 MiB blocks, which must not cover anything else special).
	DTBAddr uint64
	// InitrdAddr and InitrdSize locate the initrd (0 if none).
	InitrdAddr, InitrdSize uint64
	// Firmware says the vCPU starts in firmware (LoadFirmware) at
	// KernelAddr, which loads the kernel itself.
	Firmware bool
}

// Load loads g's kernel and initrd into m (laid out by MemoryRanges).
// Errors name the file and what is wrong with it.
//
// The Image goes straight from the file, or from the inflater for an
// Image.gz, into guest RAM at its load address: the VMM never holds a copy
// of it on its heap. A 30-40 MiB kernel read whole and then copied would
// double its size in the VMM's resident memory for as long as the garbage
// collector kept it, and cost a second pass over it.
func Load(m *mem.Memory, g Guest) (*Boot, error) {
	ramEnd, err := ramEndOf(m)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(g.Kernel)
	if err != nil {
		return nil, fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	b, err := loadImage(m, f, ramEnd)
	if err != nil {
		return nil, fmt.Errorf("kernel %s: %w", g.Kernel, err)
	}
	if g.Initrd != "" {
		if err := b.loadInitrd(m, g.Initrd, b.DTBAddr+MaxDTBSize, ramEnd); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// loadImage streams the Image in f into guest RAM (below ramEnd) and
// places the device tree after it. Its errors do not name the file.
func loadImage(m *mem.Memory, f *os.File, ramEnd uint64) (*Boot, error) {
	r, fileLen, err := kernelReader(f)
	if err != nil {
		return nil, err
	}
	head := make([]byte, HeaderSize)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the Image header: %w", err)
	}
	img, err := ParseImage(head[:n], fileLen)
	if err != nil {
		return nil, fmt.Errorf("Image header: %w", err)
	}
	b := &Boot{KernelAddr: RAMBase + img.TextOffset}
	// The room the Image may take: to the end of RAM, and no more than
	// any kernel is. An Image.gz's inflated length is known only once
	// inflated, so it is read into that room and measured there.
	room := min(ramEnd-min(ramEnd, b.KernelAddr), maxKernelSize)
	if fileLen > room {
		return nil, fmt.Errorf("%d MiB does not fit in %d MiB of guest RAM: give the guest more memory", fileLen>>20, (ramEnd-RAMBase)>>20)
	}
	dst, err := m.Slice(b.KernelAddr, room)
	if err != nil {
		return nil, err
	}
	copy(dst, head[:n])
	body, err := io.ReadFull(r, dst[n:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the Image: %w", err)
	}
	size := uint64(n + body)
	if size == room {
		if k, _ := r.Read(make([]byte, 1)); k > 0 {
			return nil, fmt.Errorf("%w: the inflated Image is larger than %d MiB, or than guest RAM", ErrBadHeader, room>>20)
		}
	}
	img.Size = max(img.Size, size)
	b.Image = img
	kernelEnd := b.KernelAddr + img.Size
	b.DTBAddr = alignUp(kernelEnd, align2M)
	if b.DTBAddr+MaxDTBSize > ramEnd {
		return nil, fmt.Errorf("image_size %d MiB does not fit in %d MiB of guest RAM with its device tree", img.Size>>20, (ramEnd-RAMBase)>>20)
	}
	if b.DTBAddr+MaxDTBSize > RAMBase+dtbWindow {
		return nil, fmt.Errorf("image_size %d MiB leaves no room for the device tree in the first 512 MiB of RAM", img.Size>>20)
	}
	return b, nil
}

// kernelReader reads an Image file's content: the file itself, or for an
// Image.gz (gzip's magic first) the inflated stream. fileLen is the
// Image's length where it is known without inflating, else 0.
func kernelReader(f *os.File) (r io.Reader, fileLen uint64, err error) {
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("gzip header: %w", err)
		}
		return z, 0, nil
	}
	return br, uint64(st.Size()), nil
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
	r, fileLen, err := kernelReader(f)
	if err != nil {
		return err
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
