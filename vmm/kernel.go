package vmm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

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

// ErrUnknownKernel means the file is none of bzImage, arm64 Image or zImage.
var ErrUnknownKernel = errors.New("not a bzImage, arm64 Image or zImage")

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
	a, err := detectKernelFile(path)
	if err != nil {
		return "", fmt.Errorf("kernel %s: %w", path, err)
	}
	return a, nil
}

// detectKernelFile is DetectKernel with errors that do not name the file.
func detectKernelFile(path string) (GuestArch, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fsx.UnwrapPathError(err)
	}
	defer f.Close()
	head := make([]byte, kernelProbeLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading header: %w", err)
	}
	return detectKernel(head[:n])
}

func detectKernel(head []byte) (GuestArch, error) {
	switch {
	case len(head) >= bzMagicOff+4 && string(head[bzMagicOff:bzMagicOff+4]) == bzMagic:
		return ArchX86_64, nil
	case len(head) >= arm64MagicOff+4 && bytes.Equal(head[arm64MagicOff:arm64MagicOff+4], []byte(arm64Magic)):
		return ArchARM64, nil
	case len(head) >= zMagicOff+4 && binary.LittleEndian.Uint32(head[zMagicOff:]) == zMagic:
		return ArchAArch32, nil
	}
	return "", ErrUnknownKernel
}
