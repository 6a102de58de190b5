package arm64

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// imageHeader mirrors the arm64 Image header
// (Documentation/arch/arm64/booting.rst, "Call the kernel image"):
//
//	u32 code0;  u32 code1;   executable code
//	u64 text_offset;         Image load offset, little endian
//	u64 image_size;          effective Image size, little endian
//	u64 flags;               kernel flags, little endian
//	u64 res2, res3, res4;    reserved
//	u32 magic;               "ARM\x64"
//	u32 res5;                reserved (PE COFF offset for the EFI stub)
const (
	hdrTextOffset = 8
	hdrImageSize  = 16
	hdrFlags      = 24
	hdrMagic      = 56
	// HeaderSize is the length of the Image header.
	HeaderSize = 64

	imageMagic = "ARM\x64"

	// Flags (booting.rst): bit 0 kernel endianness (1: big-endian), bits
	// 1-2 kernel page size (0 unspecified, 1 4K, 2 16K, 3 64K), bit 3
	// physical placement (0: 2 MiB aligned base as close as possible to
	// the base of DRAM; 1: anywhere in physical memory). Bits 4-63 are
	// reserved.
	flagBigEndian    = 1 << 0
	flagPageSizeMask = 3 << 1
	flagPageShift    = 1
	flagPlacement    = 1 << 3
	flagsKnown       = flagBigEndian | flagPageSizeMask | flagPlacement

	// legacyTextOffset is what booting.rst says to assume when
	// image_size is zero (kernels before 3.17).
	legacyTextOffset = 0x80000

	// maxKernelSize bounds an Image (after decompression): Debian's is
	// about 30 MiB, with BSS about 40.
	maxKernelSize = 256 << 20
)

// Errors that callers branch on.
var (
	// ErrNotImage means the file has no arm64 Image header.
	ErrNotImage = errors.New("not an arm64 Image")
	// ErrBigEndian means the Image is a big-endian kernel.
	ErrBigEndian = errors.New("big-endian kernel")
	// ErrBadHeader means a header field holds a value Tandem refuses.
	ErrBadHeader = errors.New("bad Image header")
)

// Image is a parsed arm64 Image header.
type Image struct {
	// TextOffset is the offset from a 2 MiB aligned base at which the
	// Image must be loaded.
	TextOffset uint64
	// Size is the effective Image size: the memory from the load address
	// the kernel uses before it relocates or sets up its own (BSS
	// included). At least the file's length.
	Size uint64
	// PageSize is the kernel's page size in bytes, 0 if unspecified.
	PageSize uint64
	// Anywhere says the 2 MiB aligned base may be anywhere in RAM (flags
	// bit 3), not only as close as possible to its start.
	Anywhere bool
}

// ParseImage parses the header at the start of an uncompressed Image.
// fileLen is the Image's length. Errors name the field.
func ParseImage(b []byte, fileLen uint64) (Image, error) {
	if len(b) < HeaderSize {
		return Image{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrNotImage, len(b), HeaderSize)
	}
	if string(b[hdrMagic:hdrMagic+4]) != imageMagic {
		return Image{}, fmt.Errorf("%w: magic at %#x is %q, want %q", ErrNotImage, hdrMagic, b[hdrMagic:hdrMagic+4], imageMagic)
	}
	le := binary.LittleEndian
	img := Image{
		TextOffset: le.Uint64(b[hdrTextOffset:]),
		Size:       le.Uint64(b[hdrImageSize:]),
	}
	flags := le.Uint64(b[hdrFlags:])
	if img.Size == 0 {
		// A kernel older than 3.17: flags were not defined yet either.
		img.TextOffset, flags = legacyTextOffset, 0
	}
	if flags&flagBigEndian != 0 {
		return Image{}, fmt.Errorf("%w (flags bit 0 set): Tandem runs little-endian guests; build the kernel without CONFIG_CPU_BIG_ENDIAN", ErrBigEndian)
	}
	if unknown := flags &^ flagsKnown; unknown != 0 {
		return Image{}, fmt.Errorf("%w: flags %#x has reserved bits %#x set", ErrBadHeader, flags, unknown)
	}
	if ps := flags & flagPageSizeMask >> flagPageShift; ps != 0 {
		img.PageSize = 1 << (10 + 2*ps) // 4K, 16K, 64K
	}
	img.Anywhere = flags&flagPlacement != 0
	if img.TextOffset >= align2M || img.TextOffset%pageSize != 0 {
		return Image{}, fmt.Errorf("%w: text_offset %#x is not a page-aligned offset inside a 2 MiB block", ErrBadHeader, img.TextOffset)
	}
	if img.Size > maxKernelSize {
		return Image{}, fmt.Errorf("%w: image_size %#x is larger than %d MiB", ErrBadHeader, img.Size, maxKernelSize>>20)
	}
	img.Size = max(img.Size, fileLen)
	return img, nil
}
