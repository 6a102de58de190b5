// Package fakekernel writes the smallest kernel files whose headers
// Tandem's loaders accept: a bzImage, an arm64 Image and a zImage with
// nothing behind the header but padding. Tests use them where a kernel
// must pass the checks made before KVM is opened (vmm.Config.Check) and
// is never run.
package fakekernel

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// BzImage is an x86_64 bzImage of boot protocol 2.15
// (Documentation/arch/x86/boot.rst): four setup sectors, a 64-bit kernel
// with a 12 KiB payload.
func BzImage() []byte {
	const (
		setupSects = 4
		payload    = 0x3000
	)
	b := make([]byte, (setupSects+1)*512+payload)
	le := binary.LittleEndian
	b[0x1f1] = setupSects               // setup_sects
	le.PutUint32(b[0x1f4:], payload/16) // syssize
	le.PutUint16(b[0x1fe:], 0xaa55)     // boot_flag
	b[0x200], b[0x201] = 0xeb, 0x6a     // jump past the 2.15 header
	copy(b[0x202:], "HdrS")             // header
	le.PutUint16(b[0x206:], 0x020f)     // version
	b[0x211] = 1                        // loadflags: LOADED_HIGH
	le.PutUint32(b[0x22c:], 0x7fffffff) // initrd_addr_max
	le.PutUint32(b[0x230:], 0x200000)   // kernel_alignment
	le.PutUint16(b[0x236:], 1)          // xloadflags: XLF_KERNEL_64
	le.PutUint32(b[0x238:], 0x7ff)      // cmdline_size
	le.PutUint64(b[0x258:], 0x100000)   // pref_address
	le.PutUint32(b[0x260:], 0x100000)   // init_size
	return b
}

// Image is an arm64 Image (Documentation/arch/arm64/booting.rst) of 4
// KiB with a 3.17-or-later header: text_offset 0, image_size 4 KiB,
// little-endian, 4K pages.
func Image() []byte {
	b := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint64(b[0x10:], uint64(len(b))) // image_size
	le.PutUint64(b[0x18:], 1<<1)           // flags: 4K pages
	copy(b[0x38:], "ARM\x64")
	return b
}

// ZImage is an ARM zImage (arch/arm/boot/compressed/head.S) of 4 KiB,
// little-endian, with no extension table.
func ZImage() []byte {
	b := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(b[0x24:], 0x016f2818)     // magic
	le.PutUint32(b[0x28:], 0)              // start
	le.PutUint32(b[0x2c:], uint32(len(b))) // end
	le.PutUint32(b[0x30:], 0x04030201)     // endianness: little
	return b
}

// ForHost is the kernel this host's KVM runs: a bzImage on x86_64, an
// arm64 Image on arm64, a zImage on ARMv7.
func ForHost() []byte {
	switch kvm.HostArch {
	case "arm64":
		return Image()
	case "arm":
		return ZImage()
	}
	return BzImage()
}

// Write writes ForHost's kernel to dir/name and returns its path.
func Write(dir, name string) (string, error) {
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, ForHost(), 0o644); err != nil {
		return "", fmt.Errorf("writing a stand-in kernel: %w", err)
	}
	return p, nil
}
