// Package loader puts images that are not Linux kernels into guest RAM:
// ELF executables, segment by segment, and raw binaries, byte for byte at
// a load address. It knows nothing of boot protocols: the architecture
// packages say which ELF machine they run, which guest-physical ranges
// their boot data holds (ranges an image may not overlap), and where the
// device tree or boot parameters go once the image is placed.
//
// An image comes from outside: every header field is checked before a
// byte is copied, each error names the field and what would fix it, and
// nothing is written to guest RAM until every segment has its place.
package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Errors callers branch on; each is wrapped with the field at fault.
var (
	// ErrNotELF: the file does not start with the ELF magic.
	ErrNotELF = errors.New("not an ELF file")
	// ErrForeignELF: an ELF executable for a machine, word size or byte
	// order Tandem does not run.
	ErrForeignELF = errors.New("ELF executable for another machine")
	// ErrBadELF: a header field holds a value the loader refuses.
	ErrBadELF = errors.New("bad ELF executable")
	// ErrBadRaw: a raw image Tandem refuses (empty).
	ErrBadRaw = errors.New("bad raw image")
	// ErrPlacement: a segment, or a raw image, does not fit where it
	// must go: outside guest RAM or over the boot data.
	ErrPlacement = errors.New("image does not fit in guest RAM")
)

// Target is the kind of ELF executable one guest architecture runs.
type Target struct {
	// Arch names the architecture in messages: "arm64".
	Arch    string
	Machine elf.Machine
	Class   elf.Class
}

// The targets Tandem runs. Each is little-endian: Tandem's guests are.
var (
	ARM64   = Target{Arch: "arm64", Machine: elf.EM_AARCH64, Class: elf.ELFCLASS64}
	AArch32 = Target{Arch: "aarch32", Machine: elf.EM_ARM, Class: elf.ELFCLASS32}
	X86_64  = Target{Arch: "x86_64", Machine: elf.EM_X86_64, Class: elf.ELFCLASS64}
	targets = []Target{ARM64, AArch32, X86_64}
)

// Fields of the ELF identification and header (the System V ABI's
// "ELF Header", as elf(5) has it) read before debug/elf is asked: they
// decide whether the file is one of ours at all, and a refusal of them
// should name the field.
const (
	identLen   = elf.EI_NIDENT
	offMachine = 18 // e_machine, after e_ident (16 bytes) and e_type (2)
	// IdentLen is how many bytes of a file Identify needs.
	IdentLen = offMachine + 2
	// Header lengths (sizeof(Elf32_Ehdr), sizeof(Elf64_Ehdr)).
	ehdr32Len = 52
	ehdr64Len = 64
	// maxSegments bounds the PT_LOAD segments of one image: linkers emit
	// a handful; thousands would be a crafted file.
	maxSegments = 64
)

// Identify reads the ELF identification and e_machine at the start of a
// file (at least IdentLen bytes) and returns the target it is for. A
// file without the ELF magic gives ErrNotELF; an ELF file for another
// machine, word size or byte order ErrForeignELF, naming the field and
// what to build instead.
func Identify(head []byte) (Target, error) {
	if len(head) < 4 || !bytes.Equal(head[:4], []byte(elf.ELFMAG)) {
		return Target{}, ErrNotELF
	}
	if len(head) < IdentLen {
		return Target{}, fmt.Errorf("%w: %d bytes, too short for an ELF header", ErrBadELF, len(head))
	}
	class, data := elf.Class(head[elf.EI_CLASS]), elf.Data(head[elf.EI_DATA])
	if data != elf.ELFDATA2LSB {
		return Target{}, fmt.Errorf("%w: e_ident[EI_DATA] is %v: Tandem runs little-endian guests; build the image little-endian", ErrForeignELF, data)
	}
	m := elf.Machine(binary.LittleEndian.Uint16(head[offMachine:]))
	for _, t := range targets {
		if t.Machine != m {
			continue
		}
		if class != t.Class {
			return Target{}, fmt.Errorf("%w: e_ident[EI_CLASS] is %v, but an %v (%s) executable is %v: build the image for %s", ErrForeignELF, class, m, t.Arch, t.Class, t.wordSize())
		}
		return t, nil
	}
	return Target{}, fmt.Errorf("%w: e_machine is %v (%d): Tandem runs x86_64 (EM_X86_64), arm64 (EM_AARCH64) and 32-bit ARM (EM_ARM) guests; build the image for one of them", ErrForeignELF, m, uint16(m))
}

func (t Target) wordSize() string {
	if t.Class == elf.ELFCLASS32 {
		return "32-bit " + t.Arch
	}
	return "64-bit " + t.Arch
}

// Segment is one PT_LOAD segment, checked: FileSize bytes from Offset in
// the file go to guest-physical Addr, and the MemSize-FileSize bytes
// after them are zeroed (the BSS).
type Segment struct {
	// Index is the segment's program header index, for messages.
	Index                           int
	Addr, Offset, FileSize, MemSize uint64
}

// End is the first address past the segment in guest memory.
func (s Segment) End() uint64 { return s.Addr + s.MemSize }

// ELF is an ELF executable checked against its target, ready to load.
type ELF struct {
	Target Target
	// Entry is the guest-physical address of e_entry.
	Entry uint64
	// Thumb says a 32-bit ARM entry point is Thumb code (e_entry's bit 0,
	// as the ARM ELF ABI has it): the vCPU starts in Thumb state.
	Thumb bool
	// Segments are the PT_LOAD segments with a size in memory, by
	// address.
	Segments []Segment
	// Physical says the addresses are p_vaddr, not p_paddr (see
	// physical).
	Physical bool
}

// Span is the guest-physical range an image occupies: [Start, End).
type Span struct{ Start, End uint64 }

// Span returns the range from the lowest segment's start to the highest
// one's end.
func (e *ELF) Span() Span {
	return Span{e.Segments[0].Addr, e.Segments[len(e.Segments)-1].End()}
}

// ParseELF reads and checks the ELF executable in r (size bytes) for
// target t, without guest memory: a VMM checks its inputs before it opens
// /dev/kvm. Its errors name the header field at fault, not the file.
func ParseELF(r io.ReaderAt, size int64, t Target) (*ELF, error) {
	head := make([]byte, ehdr64Len)
	n, err := r.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the ELF header: %w", err)
	}
	got, err := Identify(head[:n])
	if err != nil {
		return nil, err
	}
	if got != t {
		return nil, fmt.Errorf("%w: an executable for %s (e_machine %v), where an %s guest was asked for", ErrForeignELF, got.Arch, got.Machine, t.Arch)
	}
	if want := ehdrLen(t.Class); size < int64(want) {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte ELF header", ErrBadELF, size, want)
	}
	f, err := elf.NewFile(r)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: the %d-byte file ends inside its program or section headers (truncated?)", ErrBadELF, size)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadELF, err)
	}
	if f.Type != elf.ET_EXEC {
		return nil, fmt.Errorf("%w: e_type is %v, want ET_EXEC: link the image at a fixed address (not as a shared object or position-independent executable)", ErrBadELF, f.Type)
	}
	e := &ELF{Target: t}
	segs, err := e.loadSegments(f.Progs, uint64(size))
	if err != nil {
		return nil, err
	}
	e.Segments = segs
	if err := e.entry(f.Entry, f.Progs); err != nil {
		return nil, err
	}
	return e, nil
}

func ehdrLen(c elf.Class) int {
	if c == elf.ELFCLASS32 {
		return ehdr32Len
	}
	return ehdr64Len
}

// physical says whether the segments' addresses are to be taken from
// p_vaddr: when every PT_LOAD segment has a p_paddr of 0 and some has a
// p_vaddr that is not, the image was linked at physical addresses by a
// tool that left p_paddr empty. Otherwise p_paddr (the load address) is
// where a segment goes, as firmware and other VMMs load ELF images.
func physical(progs []*elf.Prog) bool {
	var anyVaddr bool
	for _, p := range progs {
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		if p.Paddr != 0 {
			return false
		}
		anyVaddr = anyVaddr || p.Vaddr != 0
	}
	return anyVaddr
}

// loadSegments checks the PT_LOAD segments of a file of fileSize bytes:
// each lies inside the file and the address space, none overlaps
// another, and there is at least one. An interpreter means a program for
// an operating system, not an image to boot. (A PT_DYNAMIC alone is
// fine: U-Boot's ELF images carry one to relocate themselves.)
func (e *ELF) loadSegments(progs []*elf.Prog, fileSize uint64) ([]Segment, error) {
	limit, space := uint64(1)<<32, "32-bit address space"
	if e.Target.Class == elf.ELFCLASS64 {
		// The widest guest-physical address either architecture has
		// (arm64 with FEAT_LPA, x86_64 with MAXPHYADDR 52).
		limit, space = 1<<52, "52-bit physical address space"
	}
	e.Physical = physical(progs)
	var segs []Segment
	for i, p := range progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%w: program header %d is %v: a dynamically linked program for an operating system, not an image to boot; link it static, for bare metal", ErrBadELF, i, p.Type)
		}
		if p.Type != elf.PT_LOAD || p.Memsz == 0 {
			continue
		}
		s := Segment{Index: i, Addr: p.Paddr, Offset: p.Off, FileSize: p.Filesz, MemSize: p.Memsz}
		if e.Physical {
			s.Addr = p.Vaddr
		}
		if s.FileSize > s.MemSize {
			return nil, fmt.Errorf("%w: segment %d: p_filesz %#x is larger than p_memsz %#x", ErrBadELF, i, s.FileSize, s.MemSize)
		}
		if s.Offset+s.FileSize < s.Offset || s.Offset+s.FileSize > fileSize {
			return nil, fmt.Errorf("%w: segment %d: p_offset %#x + p_filesz %#x runs past the end of the %d-byte file (truncated?)", ErrBadELF, i, s.Offset, s.FileSize, fileSize)
		}
		if end := s.Addr + s.MemSize; end < s.Addr || end > limit {
			return nil, fmt.Errorf("%w: segment %d: address %#x + p_memsz %#x runs past the end of the %s", ErrBadELF, i, s.Addr, s.MemSize, space)
		}
		if len(segs) == maxSegments {
			return nil, fmt.Errorf("%w: more than %d PT_LOAD segments", ErrBadELF, maxSegments)
		}
		segs = append(segs, s)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: no PT_LOAD segment with a size: nothing to load", ErrBadELF)
	}
	slices.SortFunc(segs, func(a, b Segment) int {
		switch {
		case a.Addr < b.Addr:
			return -1
		case a.Addr > b.Addr:
			return 1
		}
		return 0
	})
	for i := 1; i < len(segs); i++ {
		if a, b := segs[i-1], segs[i]; b.Addr < a.End() {
			return nil, fmt.Errorf("%w: segments %d [%#x, %#x) and %d [%#x, %#x) overlap", ErrBadELF, a.Index, a.Addr, a.End(), b.Index, b.Addr, b.End())
		}
	}
	return segs, nil
}

// entry finds e_entry's segment, by the address the image was linked
// at (p_vaddr), and turns it into the guest-physical address the vCPU
// starts at: the entry must be in the bytes the file gives, not in a
// BSS or outside every segment.
func (e *ELF) entry(entry uint64, progs []*elf.Prog) error {
	virt := entry
	if e.Target.Machine == elf.EM_ARM && virt&1 != 0 {
		e.Thumb = true
		virt &^= 1
	}
	for _, s := range e.Segments {
		vaddr := progs[s.Index].Vaddr
		if virt >= vaddr && virt-vaddr < s.FileSize {
			e.Entry = s.Addr + (virt - vaddr)
			return nil
		}
	}
	return fmt.Errorf("%w: e_entry %#x lies in no PT_LOAD segment's file contents: link the image with its entry point in its code", ErrBadELF, entry)
}

// Range is a named range of guest-physical memory, [Start, End), that a
// segment may not overlap: boot data the architecture writes there.
type Range struct {
	Name       string
	Start, End uint64
}

// Memory is the part of guest memory the loader writes through
// (hv/mem.Memory).
type Memory interface {
	Slice(gpa, n uint64) ([]byte, error)
}

// clearOf checks that [addr, addr+size) does not wrap and overlaps no
// reserved range. what names it in errors.
func clearOf(what string, addr, size uint64, reserved []Range) error {
	end := addr + size
	if end < addr {
		return fmt.Errorf("%w: %s at %#x + %#x runs past the end of the address space", ErrPlacement, what, addr, size)
	}
	for _, r := range reserved {
		if addr < r.End && r.Start < end {
			return fmt.Errorf("%w: %s [%#x, %#x) overlaps the %s at [%#x, %#x): link or load the image elsewhere", ErrPlacement, what, addr, end, r.Name, r.Start, r.End)
		}
	}
	return nil
}

// place checks that [addr, addr+size) lies in guest RAM and clear of
// every reserved range, and returns its bytes. what names it in errors.
func place(m Memory, what string, addr, size uint64, reserved []Range) ([]byte, error) {
	if err := clearOf(what, addr, size, reserved); err != nil {
		return nil, err
	}
	end := addr + size
	dst, err := m.Slice(addr, size)
	if err != nil {
		return nil, fmt.Errorf("%w: %s [%#x, %#x) is not inside guest RAM: link or load the image into RAM, or give the guest more memory", ErrPlacement, what, addr, end)
	}
	return dst, nil
}

// CheckReserved says which segment, if any, overlaps a reserved range:
// what Load refuses before it needs guest memory.
func (e *ELF) CheckReserved(reserved []Range) error {
	for _, s := range e.Segments {
		if err := clearOf(fmt.Sprintf("segment %d", s.Index), s.Addr, s.MemSize, reserved); err != nil {
			return err
		}
	}
	return nil
}

// Load copies e's segments from r into m and zeroes their BSS. Each
// segment must lie inside guest RAM and outside reserved; all are
// checked before any is written.
func (e *ELF) Load(m Memory, r io.ReaderAt, reserved []Range) error {
	dsts := make([][]byte, len(e.Segments))
	for i, s := range e.Segments {
		dst, err := place(m, fmt.Sprintf("segment %d", s.Index), s.Addr, s.MemSize, reserved)
		if err != nil {
			return err
		}
		dsts[i] = dst
	}
	for i, s := range e.Segments {
		dst := dsts[i]
		if n, err := r.ReadAt(dst[:s.FileSize], int64(s.Offset)); uint64(n) < s.FileSize || (err != nil && !errors.Is(err, io.EOF)) {
			return fmt.Errorf("reading segment %d: %d of %d bytes: %v", s.Index, n, s.FileSize, err)
		}
		clear(dst[s.FileSize:])
	}
	return nil
}

// CheckELF reads the ELF executable at path and says what is wrong with
// it for target t, as ParseELF would. Its errors do not name the file.
func CheckELF(path string, t Target) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	_, err = ParseELF(f, st.Size(), t)
	return err
}

// OpenELF opens and checks the ELF executable at path for target t. The
// caller closes the file once the image is loaded from it.
func OpenELF(path string, t Target) (*ELF, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening kernel: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		var e *ELF
		if e, err = ParseELF(f, st.Size(), t); err == nil {
			return e, f, nil
		}
	}
	f.Close()
	return nil, nil, err
}
