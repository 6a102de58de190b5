// Package baremetal makes the bare-metal test guests: images that are
// not Linux kernels, for the ELF and raw loaders. The x86_64 program is
// hand-assembled bytes (its source, testdata/x86_64.S, is assembled by
// this package's test with Debian's binutils and must give the same
// bytes), so that a test that boots it needs no assembler where it runs:
// inside an emulated host too. The arm64 program (testdata/arm64.S:
// PL011 output, a second CPU through PSCI, the virtual timer's interrupt
// through a GICv3 or GICv2, PSCI power-off) is assembled by BuildArm64
// with Debian's cross binutils on the machine that starts the emulated
// arm64 host.
package baremetal

import (
	"debug/elf"
	"encoding/binary"
)

// X86Base is where the x86_64 program is linked and loaded: 1 MiB, above
// the boot data.
const X86Base = 0x100000

// X86Marker starts the x86_64 program's output; the command line and
// X86End follow it.
const (
	X86Marker = "TANDEM-BAREMETAL-OK cmdline=["
	X86End    = "]\n"
)

// X86Stack is the top of the program's stack: the end of the 4 KiB BSS
// segment X86ELF puts a page above the code.
const X86Stack = X86Base + 0x2000

// X86Code is the x86_64 program (testdata/x86_64.S), linked at X86Base:
//
//	 0: bc 00 20 10 00        mov  esp, 0x102000          ; X86Stack
//	 5: 48 8d 3d 37 00 00 00  lea  rdi, [rip+0x37]        ; hello
//	 c: e8 21 00 00 00        call puts
//	11: 8b be 28 02 00 00     mov  edi, [rsi+0x228]       ; boot_params.hdr.cmd_line_ptr
//	17: e8 16 00 00 00        call puts
//	1c: 48 8d 3d 3e 00 00 00  lea  rdi, [rip+0x3e]        ; bye
//	23: e8 0a 00 00 00        call puts
//	28: 66 ba 00 06           mov  dx, 0x600              ; ACPI sleep control
//	2c: b0 34                 mov  al, 0x34               ; SLP_TYP 5 (S5), SLP_EN
//	2e: ee                    out  dx, al
//	2f: f4                    hlt
//	30: eb fd                 jmp  0x2f
//	puts:                                                 ; the string at rdi to COM1
//	32: 66 ba f8 03           mov  dx, 0x3f8
//	36: 8a 07                 mov  al, [rdi]
//	38: 84 c0                 test al, al
//	3a: 74 06                 je   0x42
//	3c: ee                    out  dx, al
//	3d: 48 ff c7              inc  rdi
//	40: eb f4                 jmp  0x36
//	42: c3                    ret
//	hello: 43: "TANDEM-BAREMETAL-OK cmdline=[\0"
//	bye:   61: "]\n\0"
var X86Code = append([]byte{
	0xbc, 0x00, 0x20, 0x10, 0x00,
	0x48, 0x8d, 0x3d, 0x37, 0x00, 0x00, 0x00,
	0xe8, 0x21, 0x00, 0x00, 0x00,
	0x8b, 0xbe, 0x28, 0x02, 0x00, 0x00,
	0xe8, 0x16, 0x00, 0x00, 0x00,
	0x48, 0x8d, 0x3d, 0x3e, 0x00, 0x00, 0x00,
	0xe8, 0x0a, 0x00, 0x00, 0x00,
	0x66, 0xba, 0x00, 0x06,
	0xb0, 0x34,
	0xee,
	0xf4,
	0xeb, 0xfd,
	0x66, 0xba, 0xf8, 0x03,
	0x8a, 0x07,
	0x84, 0xc0,
	0x74, 0x06,
	0xee,
	0x48, 0xff, 0xc7,
	0xeb, 0xf4,
	0xc3,
}, X86Marker+"\x00"+X86End+"\x00"...)

// X86ELF is the x86_64 program as an ELF executable: its code and
// strings in a read-only, executable segment at X86Base, entered at its
// start, and its stack in a 4 KiB BSS segment a page above.
func X86ELF() []byte {
	return ELF(elf.ELFCLASS64, elf.EM_X86_64, X86Base, []Segment{
		{Addr: X86Base, Data: X86Code, MemSize: uint64(len(X86Code)), Flags: elf.PF_R | elf.PF_X},
		{Addr: X86Stack - 0x1000, MemSize: 0x1000, Flags: elf.PF_R | elf.PF_W},
	})
}

// Segment is one PT_LOAD segment of an ELF file ELF builds: Data at
// Addr (p_paddr, and p_vaddr unless VAddr is set), MemSize bytes in
// memory.
type Segment struct {
	Addr, VAddr uint64
	Data        []byte
	MemSize     uint64
	Flags       elf.ProgFlag
}

// dataOff is where ELF puts the first segment's bytes.
const dataOff = 0x100

// ELF returns a little-endian ET_EXEC file of the class and machine
// given, entered at entry, with one PT_LOAD program header per segment
// and no section headers. The layout follows the System V ABI's ELF
// header and program header (elf(5)).
func ELF(class elf.Class, machine elf.Machine, entry uint64, segs []Segment) []byte {
	le := binary.LittleEndian
	is64 := class == elf.ELFCLASS64
	ehsize, phsize := 52, 32
	if is64 {
		ehsize, phsize = 64, 56
	}
	b := make([]byte, dataOff)
	copy(b, elf.ELFMAG)
	b[elf.EI_CLASS], b[elf.EI_DATA], b[elf.EI_VERSION] = byte(class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(machine))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	if is64 {
		le.PutUint64(b[24:], entry)
		le.PutUint64(b[32:], uint64(ehsize)) // e_phoff
		le.PutUint16(b[52:], uint16(ehsize))
		le.PutUint16(b[54:], uint16(phsize))
		le.PutUint16(b[56:], uint16(len(segs)))
	} else {
		le.PutUint32(b[24:], uint32(entry))
		le.PutUint32(b[28:], uint32(ehsize))
		le.PutUint16(b[40:], uint16(ehsize))
		le.PutUint16(b[42:], uint16(phsize))
		le.PutUint16(b[44:], uint16(len(segs)))
	}
	for i, s := range segs {
		o, off := ehsize+i*phsize, uint64(len(b))
		vaddr := s.VAddr
		if vaddr == 0 {
			vaddr = s.Addr
		}
		b = append(b, s.Data...)
		filesz := uint64(len(s.Data))
		if is64 {
			le.PutUint32(b[o:], uint32(elf.PT_LOAD))
			le.PutUint32(b[o+4:], uint32(s.Flags))
			le.PutUint64(b[o+8:], off)
			le.PutUint64(b[o+16:], vaddr)
			le.PutUint64(b[o+24:], s.Addr)
			le.PutUint64(b[o+32:], filesz)
			le.PutUint64(b[o+40:], s.MemSize)
		} else {
			le.PutUint32(b[o:], uint32(elf.PT_LOAD))
			le.PutUint32(b[o+4:], uint32(off))
			le.PutUint32(b[o+8:], uint32(vaddr))
			le.PutUint32(b[o+12:], uint32(s.Addr))
			le.PutUint32(b[o+16:], uint32(filesz))
			le.PutUint32(b[o+20:], uint32(s.MemSize))
			le.PutUint32(b[o+24:], uint32(s.Flags))
		}
	}
	return b
}
