package x86

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors Load returns that callers branch on. Each is wrapped with the
// file and the field at fault.
var (
	// ErrNotBzImage: no boot flag, no "HdrS" magic, or a zImage (not
	// loaded high).
	ErrNotBzImage = errors.New("not a Linux bzImage")
	// ErrProtocolTooOld: boot protocol older than 2.12, which cannot tell
	// whether the kernel has a 64-bit entry point.
	ErrProtocolTooOld = errors.New("kernel boot protocol too old")
	// ErrNot64Bit: the kernel lacks XLF_KERNEL_64 (a 32-bit kernel).
	ErrNot64Bit = errors.New("kernel has no 64-bit entry point")
	// ErrTruncated: the file is shorter than its header says.
	ErrTruncated = errors.New("kernel image truncated")
	// ErrKernelTooLarge: the kernel, once decompressed, does not fit in
	// the guest's RAM below the 32-bit hole.
	ErrKernelTooLarge = errors.New("kernel does not fit in guest RAM")
	// ErrInitrdTooLarge: the initrd does not fit between the kernel and
	// the highest address the kernel accepts for it.
	ErrInitrdTooLarge = errors.New("initrd does not fit in guest RAM")
	// ErrCmdlineTooLong: the command line exceeds the kernel's
	// cmdline_size.
	ErrCmdlineTooLong = errors.New("kernel command line too long")
)

// Offsets of the setup header fields in a bzImage and in the zero page
// (struct setup_header inside struct boot_params; Documentation/arch/x86/boot.rst,
// "THE REAL-MODE KERNEL HEADER").
const (
	hdrSetupSects      = 0x1f1
	hdrSyssize         = 0x1f4
	hdrBootFlag        = 0x1fe
	hdrJump            = 0x200
	hdrHeader          = 0x202
	hdrVersion         = 0x206
	hdrTypeOfLoader    = 0x210
	hdrLoadflags       = 0x211
	hdrRamdiskImage    = 0x218
	hdrRamdiskSize     = 0x21c
	hdrHeapEndPtr      = 0x224
	hdrCmdLinePtr      = 0x228
	hdrInitrdAddrMax   = 0x22c
	hdrKernelAlignment = 0x230
	hdrRelocatable     = 0x234
	hdrXloadflags      = 0x236
	hdrCmdlineSize     = 0x238
	hdrPrefAddress     = 0x258
	hdrInitSize        = 0x260
	// hdrEnd bounds the header copied into the zero page: edd_mbr_sig_buffer
	// starts at 0x290 in struct boot_params.
	hdrEnd = 0x290

	bootFlag  = 0xaa55
	hdrMagic  = 0x53726448 // "HdrS"
	sectorLen = 512
	// defaultSetupSects: a setup_sects of 0 means 4 (boot.rst).
	defaultSetupSects = 4

	// minProtocol is 2.12: the first with xloadflags, the only way to
	// know that a kernel has the 64-bit entry point this loader jumps to.
	minProtocol = 0x020c

	// loadflags bits.
	loadedHigh  = 1 << 0
	canUseHeap  = 1 << 7
	xlfKernel64 = 1 << 0 // xloadflags: 64-bit entry at load address + 0x200

	// loaderUndefined is type_of_loader 0xff: a loader with no assigned ID.
	loaderUndefined = 0xff
	// heapEnd is heap_end_ptr: the end of the setup heap, relative to the
	// real-mode code, as a loader that put setup at 0x90000 would say.
	// The 64-bit entry does not run setup, but the kernel reads it.
	heapEnd = 0xfe00

	// entry64Offset is where startup_64 sits in the protected-mode kernel.
	entry64Offset = 0x200
)

// bzImage is what the loader needs from a bzImage's setup header.
type bzImage struct {
	// header is the setup header (from offset 0x1f1), copied as-is into
	// the zero page.
	header []byte
	// payloadOff and payloadLen locate the protected-mode kernel.
	payloadOff, payloadLen uint64
	version                uint16
	relocatable            bool
	kernelAlignment        uint64
	prefAddress            uint64
	initSize               uint64
	initrdAddrMax          uint64
	cmdlineSize            uint64
}

// parseBzImage checks the setup header at the start of a kernel image of
// fileSize bytes. head holds the file's first bytes: at least hdrEnd of
// them, or the whole file if it is shorter.
func parseBzImage(head []byte, fileSize int64) (*bzImage, error) {
	if len(head) < hdrHeader+4 {
		return nil, fmt.Errorf("%w: %d bytes, too short for a setup header", ErrNotBzImage, fileSize)
	}
	le := binary.LittleEndian
	if v := le.Uint16(head[hdrBootFlag:]); v != bootFlag {
		return nil, fmt.Errorf("%w: boot_flag is %#04x, want %#04x", ErrNotBzImage, v, bootFlag)
	}
	if v := le.Uint32(head[hdrHeader:]); v != hdrMagic {
		return nil, fmt.Errorf("%w: header magic is %#08x, want \"HdrS\"", ErrNotBzImage, v)
	}
	if len(head) < hdrVersion+2 {
		return nil, fmt.Errorf("%w: %d bytes, too short for a setup header", ErrTruncated, fileSize)
	}
	b := &bzImage{version: le.Uint16(head[hdrVersion:])}
	if b.version < minProtocol {
		return nil, fmt.Errorf("%w: version %d.%02d, want at least 2.12 (Linux 3.8 or later)", ErrProtocolTooOld, b.version>>8, b.version&0xff)
	}
	// The short jump at 0x200 skips the header: its target is the
	// header's end. A 2.12 header reaches at least past init_size.
	end := min(hdrHeader+int(head[hdrJump+1]), hdrEnd)
	if end < hdrInitSize+4 {
		return nil, fmt.Errorf("%w: setup header ends at %#x (jump at 0x200), before init_size", ErrNotBzImage, end)
	}
	if len(head) < end {
		return nil, fmt.Errorf("%w: %d bytes, setup header ends at %#x", ErrTruncated, fileSize, end)
	}
	if head[hdrLoadflags]&loadedHigh == 0 {
		return nil, fmt.Errorf("%w: loadflags lack LOADED_HIGH (a zImage; rebuild as bzImage)", ErrNotBzImage)
	}
	if le.Uint16(head[hdrXloadflags:])&xlfKernel64 == 0 {
		return nil, fmt.Errorf("%w: xloadflags lack XLF_KERNEL_64 (a 32-bit kernel; build with CONFIG_X86_64)", ErrNot64Bit)
	}
	b.header = append([]byte(nil), head[hdrSetupSects:end]...)
	sects := uint64(head[hdrSetupSects])
	if sects == 0 {
		sects = defaultSetupSects
	}
	b.payloadOff = (sects + 1) * sectorLen
	// syssize counts 16-byte paragraphs of the protected-mode kernel.
	b.payloadLen = uint64(le.Uint32(head[hdrSyssize:])) * 16
	if b.payloadLen == 0 {
		return nil, fmt.Errorf("%w: syssize is 0", ErrNotBzImage)
	}
	if uint64(fileSize) < b.payloadOff+b.payloadLen {
		return nil, fmt.Errorf("%w: %d bytes, but setup_sects %d and syssize %#x need %d", ErrTruncated, fileSize, head[hdrSetupSects], b.payloadLen/16, b.payloadOff+b.payloadLen)
	}
	b.relocatable = head[hdrRelocatable] != 0
	b.kernelAlignment = uint64(le.Uint32(head[hdrKernelAlignment:]))
	b.prefAddress = le.Uint64(head[hdrPrefAddress:])
	b.initSize = uint64(le.Uint32(head[hdrInitSize:]))
	b.initrdAddrMax = uint64(le.Uint32(head[hdrInitrdAddrMax:]))
	b.cmdlineSize = uint64(le.Uint32(head[hdrCmdlineSize:]))
	if b.initSize < b.payloadLen {
		// The kernel decompresses within init_size of its load address;
		// a smaller init_size than the payload is a broken header.
		return nil, fmt.Errorf("%w: init_size %#x is smaller than the %#x-byte payload", ErrNotBzImage, b.initSize, b.payloadLen)
	}
	return b, nil
}

// runAddr returns where the kernel will run from when loaded at load: a
// relocatable kernel's decompressor moves itself up to pref_address
// (LOAD_PHYSICAL_ADDR) when loaded below it, and the decompressed kernel
// then needs init_size bytes from there.
func (b *bzImage) runAddr(load uint64) uint64 {
	if b.prefAddress > load {
		return b.prefAddress
	}
	return load
}

// loadAddr picks where to load the protected-mode kernel: at
// pref_address when the kernel is relocatable and it is suitably aligned,
// saving the decompressor a copy of itself; otherwise at 1 MiB.
func (b *bzImage) loadAddr() uint64 {
	if b.relocatable && b.prefAddress >= KernelAddr && b.kernelAlignment != 0 &&
		b.kernelAlignment&(b.kernelAlignment-1) == 0 && b.prefAddress%b.kernelAlignment == 0 {
		return b.prefAddress
	}
	return KernelAddr
}
