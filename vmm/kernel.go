package vmm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/fsx"
)

// GuestArch is the architecture a guest kernel is built for.
type GuestArch string

// Guest architectures Tandem recognises from a kernel's header.
const (
	ArchX86_64  GuestArch = "x86_64"  // bzImage
	ArchARM64   GuestArch = "arm64"   // arm64 Image
	ArchAArch32 GuestArch = "aarch32" // ARM zImage
)

// ErrUnknownKernel means the file is none of bzImage, arm64 Image,
// zImage or ELF executable.
var ErrUnknownKernel = errors.New("not a bzImage, arm64 Image, zImage or ELF executable (a raw binary needs kernel-format raw)")

// KernelFormat is how a guest's kernel file is read: Config.KernelFormat
// (`--kernel-format`, `kernel-format:`) says it where no header can, and
// detection names the formats it finds.
type KernelFormat string

// Kernel formats. A user chooses between KernelAuto and the raw ones;
// the others are what detection finds.
const (
	// KernelAuto reads the format and architecture from the file's
	// header: a bzImage, arm64 Image, zImage or ELF executable.
	KernelAuto KernelFormat = "auto"
	// KernelRaw is a raw binary for the host's own architecture, loaded
	// as-is at Config.LoadAddress and entered there.
	KernelRaw KernelFormat = "raw"
	// KernelRawAArch32 is a raw 32-bit ARM binary on an arm64 host.
	KernelRawAArch32 KernelFormat = "raw-aarch32"

	formatBzImage KernelFormat = "bzImage"
	formatImage   KernelFormat = "Image"
	formatZImage  KernelFormat = "zImage"
	formatELF     KernelFormat = "ELF"
	// formatFirmware is Config.Firmware's: an arm64 guest's firmware.
	formatFirmware KernelFormat = "firmware"
)

// ParseKernelFormat reads a kernel format as a user gives it: "" (or
// auto), raw or raw-aarch32.
func ParseKernelFormat(s string) (KernelFormat, error) {
	switch f := KernelFormat(s); f {
	case "", KernelAuto:
		return KernelAuto, nil
	case KernelRaw, KernelRawAArch32:
		return f, nil
	}
	return "", fmt.Errorf("%q: want auto (read from the file's header), raw (a binary for the host's architecture, loaded as-is) or raw-aarch32 (a 32-bit ARM binary on an arm64 host)", s)
}

// raw says whether f is one of the raw formats.
func (f KernelFormat) raw() bool { return f == KernelRaw || f == KernelRawAArch32 }

// kernelFile is a guest kernel as Check found it: the architecture it is
// for and the format its loader reads.
type kernelFile struct {
	arch   GuestArch
	format KernelFormat
}

// kernelFile finds the architecture and format of the guest's kernel:
// from its header, or for a raw image from KernelFormat and the host.
// A raw image must not be empty, and on x86 needs a load address.
func (c *Config) kernelFile(host string) (kernelFile, error) {
	if c.Firmware != "" {
		return kernelFile{ArchARM64, formatFirmware}, nil
	}
	if !c.KernelFormat.raw() {
		return detectKernelFile(c.Kernel)
	}
	a, err := rawArch(c.KernelFormat, host)
	if err != nil {
		return kernelFile{}, err
	}
	return kernelFile{a, KernelRaw}, nil
}

// rawArch is the architecture of a raw image of format f on a host of
// architecture host (kvm.HostArch): the host's own, or AArch32.
func rawArch(f KernelFormat, host string) (GuestArch, error) {
	if f == KernelRawAArch32 {
		return ArchAArch32, nil
	}
	switch host {
	case "x86_64":
		return ArchX86_64, nil
	case "arm64":
		return ArchARM64, nil
	case "arm":
		return ArchAArch32, nil
	}
	return "", fmt.Errorf("raw images run on x86_64, arm64 and ARMv7 hosts, not on %s", host)
}

// Magic numbers that identify each kernel format.
const (
	// bzImage: "HdrS" at 0x202 (Documentation/arch/x86/boot.rst).
	bzMagicOff = 0x202
	bzMagic    = "HdrS"
	// arm64 Image: "ARM\x64" at 0x38 (Documentation/arch/arm64/booting.rst).
	arm64MagicOff = 0x38
	arm64Magic    = "ARM\x64"
	// zImage: 0x016f2818 at 0x24 (arch/arm/boot/compressed/head.S).
	zMagicOff = 0x24
	zMagic    = 0x016f2818

	kernelProbeLen = 0x210
)

// DetectKernel reads a kernel's header and says which architecture it is for.
func DetectKernel(path string) (GuestArch, error) {
	k, err := detectKernelFile(path)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", path, err)
	}
	return k.arch, nil
}

// detectKernelFile is DetectKernel with errors that do not name the file.
func detectKernelFile(path string) (kernelFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return kernelFile{}, fsx.UnwrapPathError(err)
	}
	defer f.Close()
	head := make([]byte, kernelProbeLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return kernelFile{}, fmt.Errorf("reading header: %w", err)
	}
	return detectKernel(head[:n])
}

// elfArch is the guest architecture of each ELF target.
var elfArch = map[loader.Target]GuestArch{
	loader.X86_64:  ArchX86_64,
	loader.ARM64:   ArchARM64,
	loader.AArch32: ArchAArch32,
}

func detectKernel(head []byte) (kernelFile, error) {
	switch t, err := loader.Identify(head); {
	case err == nil:
		return kernelFile{elfArch[t], formatELF}, nil
	case !errors.Is(err, loader.ErrNotELF):
		return kernelFile{}, err
	}
	switch {
	case len(head) >= bzMagicOff+4 && string(head[bzMagicOff:bzMagicOff+4]) == bzMagic:
		return kernelFile{ArchX86_64, formatBzImage}, nil
	case len(head) >= arm64MagicOff+4 && bytes.Equal(head[arm64MagicOff:arm64MagicOff+4], []byte(arm64Magic)):
		return kernelFile{ArchARM64, formatImage}, nil
	case len(head) >= zMagicOff+4 && binary.LittleEndian.Uint32(head[zMagicOff:]) == zMagic:
		return kernelFile{ArchAArch32, formatZImage}, nil
	}
	return kernelFile{}, ErrUnknownKernel
}
