// Package hostileguest builds the hostile guest: a bare-metal x86_64
// program (src/hostile.c) that writes garbage into every register and
// queue of its VMM's devices, then checks that they still work after a
// reset, and powers off. It is compiled with the host's gcc at test time
// and wrapped in a bzImage's boot header, so that Tandem's VMM loads it
// as it loads any x86 guest kernel.
package hostileguest

import (
	"embed"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

//go:embed src/hostile.c src/link.ld
var src embed.FS

// Markers are the lines the guest prints.
const (
	// Done starts its last line: "HOSTILE-DONE ok=N failed=M".
	Done = "HOSTILE-DONE"
	// GarbageDone is printed when the attack is over.
	GarbageDone = "HOSTILE: garbage done"
)

// MemoryMiB is the guest RAM the program is written for: the garbage
// addresses it hands devices are at and beyond its end.
const MemoryMiB = 64

// Tools are the programs Build runs (Debian: gcc, binutils).
var Tools = []string{"gcc", "objcopy"}

// Build compiles the guest in dir and returns the path of its bzImage.
func Build(dir string) (string, error) {
	for _, name := range []string{"hostile.c", "link.ld"} {
		b, err := src.ReadFile("src/" + name)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	elf := filepath.Join(dir, "hostile.elf")
	bin := filepath.Join(dir, "hostile.bin")
	for _, c := range [][]string{
		{"gcc", "-m64", "-O2", "-ffreestanding", "-fno-pic", "-fno-pie", "-no-pie", "-nostdlib", "-static",
			"-mno-red-zone", "-mgeneral-regs-only", "-fno-stack-protector", "-fno-asynchronous-unwind-tables",
			"-Wall", "-Werror", "-Wno-main", "-Wl,-T,link.ld", "-Wl,--build-id=none", "-Wl,--no-warn-rwx-segments",
			"-o", elf, "hostile.c"},
		{"objcopy", "-O", "binary", elf, bin},
	} {
		cmd := exec.Command(c[0], c[1:]...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building the hostile guest: %s: %v\n%s", c[0], err, out)
		}
	}
	payload, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "hostile.bzImage")
	if err := os.WriteFile(out, BzImage(payload, 1<<20), 0o644); err != nil {
		return "", err
	}
	return out, nil
}

// BzImage wraps a 64-bit program linked at 1 MiB, whose entry point is
// 0x200 bytes in, in the boot header of Linux's x86 boot protocol
// (Documentation/arch/x86/boot.rst): one setup sector, protocol 2.15,
// loaded high, not relocatable, the 64-bit entry point flagged
// (XLF_KERNEL_64). initSize is the memory the program needs from its
// load address, its BSS and stack included.
func BzImage(payload []byte, initSize uint32) []byte {
	const setupSects = 1
	for len(payload)%16 != 0 {
		payload = append(payload, 0)
	}
	img := make([]byte, (setupSects+1)*512, (setupSects+1)*512+len(payload))
	le := binary.LittleEndian
	img[0x1f1] = setupSects
	le.PutUint32(img[0x1f4:], uint32(len(payload)/16)) // syssize
	le.PutUint16(img[0x1fe:], 0xaa55)                  // boot_flag
	img[0x200], img[0x201] = 0xeb, 0x8e                // jmp over the header, to 0x290
	copy(img[0x202:], "HdrS")
	le.PutUint16(img[0x206:], 0x020f)     // version 2.15
	img[0x211] = 0x01                     // loadflags: LOADED_HIGH
	le.PutUint32(img[0x214:], 0x100000)   // code32_start
	le.PutUint32(img[0x22c:], 0x7fffffff) // initrd_addr_max
	le.PutUint32(img[0x230:], 0x200000)   // kernel_alignment
	img[0x234] = 0                        // relocatable_kernel: no
	le.PutUint16(img[0x236:], 0x1)        // xloadflags: XLF_KERNEL_64
	le.PutUint32(img[0x238:], 2047)       // cmdline_size
	le.PutUint64(img[0x258:], 0x100000)   // pref_address
	le.PutUint32(img[0x260:], max(initSize, uint32(len(payload))))
	return append(img, payload...)
}
