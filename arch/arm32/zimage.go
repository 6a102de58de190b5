// Package arm32 boots 32-bit ARM Linux guests (AArch32): it loads a zImage
// by the boot protocol of Documentation/arch/arm/booting.rst into the
// virt-board layout of arch/armvirt, generates the guest's device tree,
// and puts vCPUs in the state the protocol wants, on an arm64 host whose
// CPUs implement AArch32 at EL1 or on an ARMv7 host (kvm.HostAArch32
// names the registers each calls them by).
package arm32

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The zImage header (arch/arm/boot/compressed/head.S, "start:"; the
// fields booting.rst and U-Boot's bootz read), after nine words of code:
//
//	0x24 u32 magic        0x016f2818
//	0x28 u32 start        absolute load/run address (0: position independent)
//	0x2c u32 end          end address: end - start is the zImage's length
//	0x30 u32 endian flag  0x04030201 as read by the kernel's own byte order
//	0x34 u32 0x45454545   an extension table follows (Linux 3.18+)
//	0x38 u32 table        file offset of the table
//
// The extension table is a list of ATAG-like tags, {u32 size in words,
// header included; u32 tag; data}, ended by a zero size. The tag Tandem
// reads is KRNL_SIZE (0x5a534c4b, "KLSZ"): u32 offset in the file of the
// decompressed kernel's size (a little-endian u32, not aligned), u32 the
// kernel's BSS size (arch/arm/boot/compressed/vmlinux.lds.S).
const (
	zhdrMagic     = 0x24
	zhdrStart     = 0x28
	zhdrEnd       = 0x2c
	zhdrEndian    = 0x30
	zhdrExtMagic  = 0x34
	zhdrExtTable  = 0x38
	zHeaderSize   = 0x3c
	zMagic        = 0x016f2818
	zEndianLE     = 0x04030201
	zEndianBE     = 0x01020304
	zExtMagic     = 0x45454545
	zTagKrnlSize  = 0x5a534c4b
	zMaxTableTags = 16

	// maxZImageSize bounds a zImage: Debian's armmp-lpae is 5.5 MiB.
	maxZImageSize = 64 << 20
	// maxKernelSize bounds the decompressed kernel the table announces.
	maxKernelSize = 256 << 20
)

// Errors that callers branch on.
var (
	// ErrNotZImage means the file has no zImage header.
	ErrNotZImage = errors.New("not an ARM zImage")
	// ErrBigEndian means the zImage is a big-endian (BE8) kernel.
	ErrBigEndian = errors.New("big-endian kernel")
	// ErrBadHeader means a header field holds a value Tandem refuses.
	ErrBadHeader = errors.New("bad zImage header")
)

// ZImage is a parsed zImage header.
type ZImage struct {
	// Start is the address the zImage was linked to run at (0 for a
	// position-independent one, which every multiplatform kernel is);
	// Size its length, end - start.
	Start, Size uint32
	// KernelSize and BSSSize are the decompressed kernel's size and its
	// BSS, from the extension table; 0 when the zImage has none.
	KernelSize, BSSSize uint32
}

// ParseZImage parses the header of a zImage of which b is the whole file.
// Errors name the field.
func ParseZImage(b []byte) (ZImage, error) {
	if len(b) < zhdrEndian+4 {
		return ZImage{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrNotZImage, len(b), zhdrEndian+4)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[zhdrMagic:]); m != zMagic {
		return ZImage{}, fmt.Errorf("%w: magic at %#x is %#08x, want %#08x", ErrNotZImage, zhdrMagic, m, zMagic)
	}
	switch e := le.Uint32(b[zhdrEndian:]); e {
	case zEndianLE:
	case zEndianBE:
		return ZImage{}, fmt.Errorf("%w (endianness flag at %#x is %#08x): Tandem runs little-endian guests; build the kernel without CONFIG_CPU_BIG_ENDIAN", ErrBigEndian, zhdrEndian, e)
	default:
		return ZImage{}, fmt.Errorf("%w: endianness flag at %#x is %#08x, want %#08x", ErrBadHeader, zhdrEndian, e, uint32(zEndianLE))
	}
	z := ZImage{Start: le.Uint32(b[zhdrStart:])}
	end := le.Uint32(b[zhdrEnd:])
	if end <= z.Start {
		return ZImage{}, fmt.Errorf("%w: end %#x is not after start %#x", ErrBadHeader, end, z.Start)
	}
	z.Size = end - z.Start
	if z.Size > uint32(len(b)) || z.Size > maxZImageSize {
		return ZImage{}, fmt.Errorf("%w: end - start = %#x bytes, but the file has %#x", ErrBadHeader, z.Size, len(b))
	}
	if len(b) >= zHeaderSize && le.Uint32(b[zhdrExtMagic:]) == zExtMagic {
		if err := z.parseTable(b[:z.Size], le.Uint32(b[zhdrExtTable:])); err != nil {
			return ZImage{}, err
		}
	}
	return z, nil
}

// parseTable reads the KRNL_SIZE tag of the extension table at off.
func (z *ZImage) parseTable(b []byte, off uint32) error {
	le := binary.LittleEndian
	for i := 0; i < zMaxTableTags; i++ {
		if uint64(off)+8 > uint64(len(b)) {
			return fmt.Errorf("%w: extension table tag at %#x runs past the end %#x", ErrBadHeader, off, len(b))
		}
		words, tag := le.Uint32(b[off:]), le.Uint32(b[off+4:])
		if words == 0 {
			return nil
		}
		if words < 2 || uint64(off)+4*uint64(words) > uint64(len(b)) {
			return fmt.Errorf("%w: extension table tag %#x at %#x has size %d words", ErrBadHeader, tag, off, words)
		}
		if tag == zTagKrnlSize {
			if words < 4 {
				return fmt.Errorf("%w: KRNL_SIZE tag at %#x has %d words, want 4 or more", ErrBadHeader, off, words)
			}
			p := le.Uint32(b[off+8:])
			if uint64(p)+4 > uint64(len(b)) {
				return fmt.Errorf("%w: KRNL_SIZE points at %#x, past the end %#x", ErrBadHeader, p, len(b))
			}
			z.KernelSize, z.BSSSize = le.Uint32(b[p:]), le.Uint32(b[off+12:])
			if uint64(z.KernelSize)+uint64(z.BSSSize) > maxKernelSize {
				return fmt.Errorf("%w: KRNL_SIZE says %d MiB decompressed, more than %d", ErrBadHeader, (uint64(z.KernelSize)+uint64(z.BSSSize))>>20, maxKernelSize>>20)
			}
			return nil
		}
		off += 4 * words
	}
	return fmt.Errorf("%w: extension table has more than %d tags", ErrBadHeader, zMaxTableTags)
}
