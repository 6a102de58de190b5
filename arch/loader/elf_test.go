package loader

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/internal/baremetal"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// Debian's U-Boot ELF images (scripts/testdata.sh unpacks them):
// rockpro64's is an arm64 ET_EXEC of one segment at 2 MiB; arndale's a
// 32-bit ARM one at 0x43e00000 with a PT_DYNAMIC; Cubieboard2's has a
// BSS whose load address lies over the next segment's.
const (
	cachePkgs    = "../../build/cache/pkgs"
	rockpro64ELF = cachePkgs + "/u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399/uboot.elf"
	arndaleELF   = cachePkgs + "/u-boot-exynos_armhf/usr/lib/u-boot/arndale/uboot.elf"
	cubieELF     = cachePkgs + "/u-boot-sunxi_armhf/usr/lib/u-boot/Cubieboard2/uboot.elf"
)

func readTestdata(t testing.TB, path string) []byte {
	t.Helper()
	testenv.RequireFile(t, path, "run scripts/testdata.sh, or make testdata")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newMemory(t testing.TB, base, size uint64) *mem.Memory {
	t.Helper()
	m, err := mem.New([]mem.Range{{GPA: base, Size: size}}, mem.Options{})
	if err != nil {
		t.Fatalf("mem.New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// smallELF is a two-segment image for t at base: 16 bytes of code at
// base (the entry), then 8 bytes of data with 24 of BSS a page above.
func smallELF(t Target, base uint64) []byte {
	return baremetal.ELF(t.Class, t.Machine, base, []baremetal.Segment{
		{Addr: base, Data: bytes.Repeat([]byte{0xc3}, 16), MemSize: 16, Flags: elf.PF_R | elf.PF_X},
		{Addr: base + 0x1000, Data: []byte("DATADATA"), MemSize: 32, Flags: elf.PF_R | elf.PF_W},
	})
}

func TestIdentify(t *testing.T) {
	riscv := smallELF(ARM64, 0)
	binary.LittleEndian.PutUint16(riscv[18:], uint16(elf.EM_RISCV))
	bigEndian := smallELF(ARM64, 0)
	bigEndian[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	arm64As32 := smallELF(ARM64, 0)
	arm64As32[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	x32 := smallELF(X86_64, 0)
	x32[elf.EI_CLASS] = byte(elf.ELFCLASS32)
	tests := []struct {
		name    string
		head    []byte
		want    Target
		wantErr error
		words   []string
	}{
		{"arm64", smallELF(ARM64, 0), ARM64, nil, nil},
		{"aarch32", smallELF(AArch32, 0), AArch32, nil, nil},
		{"x86_64", smallELF(X86_64, 0), X86_64, nil, nil},
		{"a bzImage is no ELF", append([]byte("MZ"), make([]byte, 30)...), Target{}, ErrNotELF, nil},
		{"magic alone", []byte(elf.ELFMAG), Target{}, ErrBadELF, []string{"too short"}},
		{"RISC-V", riscv, Target{}, ErrForeignELF, []string{"e_machine is EM_RISCV", "build the image for one of them"}},
		{"big-endian", bigEndian, Target{}, ErrForeignELF, []string{"e_ident[EI_DATA]", "ELFDATA2MSB", "little-endian"}},
		{"arm64 machine in a 32-bit file", arm64As32, Target{}, ErrForeignELF, []string{"e_ident[EI_CLASS] is ELFCLASS32", "64-bit arm64"}},
		{"x32", x32, Target{}, ErrForeignELF, []string{"EM_X86_64", "64-bit x86_64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Identify(tt.head)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Fatalf("Identify() = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Identify() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadDebianELF loads Debian's U-Boot ELF images as they are: every
// byte of the segment where its p_paddr says, the entry point e_entry.
func TestLoadDebianELF(t *testing.T) {
	tests := []struct {
		name      string
		path      string
		target    Target
		ramBase   uint64
		ramSize   uint64
		wantEntry uint64
		wantSpan  Span
	}{
		{"rockpro64 arm64", rockpro64ELF, ARM64, 0, 16 << 20, 0x200000, Span{0x200000, 0x200000 + 0xd0d70}},
		{"arndale 32-bit ARM", arndaleELF, AArch32, 0x40000000, 128 << 20, 0x43e00000, Span{0x43e00000, 0x43e00000 + 0x7314c}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := readTestdata(t, tt.path)
			e, err := ParseELF(bytes.NewReader(file), int64(len(file)), tt.target)
			if err != nil {
				t.Fatalf("ParseELF() = %v", err)
			}
			if e.Entry != tt.wantEntry || e.Span() != tt.wantSpan || e.Thumb {
				t.Fatalf("ParseELF() = entry %#x span %#x thumb %v, want %#x %#x false", e.Entry, e.Span(), e.Thumb, tt.wantEntry, tt.wantSpan)
			}
			m := newMemory(t, tt.ramBase, tt.ramSize)
			if err := e.Load(m, bytes.NewReader(file), nil); err != nil {
				t.Fatalf("Load() = %v", err)
			}
			s := e.Segments[0]
			got, _ := m.Slice(s.Addr, s.FileSize)
			if !bytes.Equal(got, file[s.Offset:s.Offset+s.FileSize]) {
				t.Errorf("segment %d in guest RAM differs from the file's bytes", s.Index)
			}
		})
	}
}

// TestLoadELFZeroesBSS checks that the part of a segment past its file
// bytes is zeroed over whatever guest RAM held, and that the bytes after
// the segment are left alone.
func TestLoadELFZeroesBSS(t *testing.T) {
	const base = 0x10000
	file := smallELF(X86_64, base)
	m := newMemory(t, 0, 1<<20)
	ram, _ := m.Slice(0, 1<<20)
	for i := range ram {
		ram[i] = 0xaa
	}
	e, err := ParseELF(bytes.NewReader(file), int64(len(file)), X86_64)
	if err != nil {
		t.Fatalf("ParseELF() = %v", err)
	}
	if err := e.Load(m, bytes.NewReader(file), nil); err != nil {
		t.Fatalf("Load() = %v", err)
	}
	data, _ := m.Slice(base+0x1000, 33)
	if want := append([]byte("DATADATA"), make([]byte, 24)...); !bytes.Equal(data[:32], want) {
		t.Errorf("data segment = %x, want %x", data[:32], want)
	}
	if data[32] != 0xaa {
		t.Errorf("byte after the BSS = %#x, want it untouched (0xaa)", data[32])
	}
}

// TestThumbEntry checks that a 32-bit ARM entry with bit 0 set enters at
// the address without it, in Thumb state.
func TestThumbEntry(t *testing.T) {
	file := smallELF(AArch32, 0x40000000)
	binary.LittleEndian.PutUint32(file[24:], 0x40000005)
	e, err := ParseELF(bytes.NewReader(file), int64(len(file)), AArch32)
	if err != nil || e.Entry != 0x40000004 || !e.Thumb {
		t.Fatalf("ParseELF() = %+v, %v; want entry 0x40000004 in Thumb state", e, err)
	}
}

// TestVirtualLinkedELF checks an image linked at virtual addresses with
// its load addresses in p_paddr (as Linux's vmlinux is): it goes where
// p_paddr says and is entered at e_entry's physical address.
func TestVirtualLinkedELF(t *testing.T) {
	const virt, phys = 0xffffffff81000000, 0x1000000
	file := baremetal.ELF(elf.ELFCLASS64, elf.EM_X86_64, virt+4, []baremetal.Segment{
		{Addr: phys, VAddr: virt, Data: make([]byte, 16), MemSize: 64},
	})
	e, err := ParseELF(bytes.NewReader(file), int64(len(file)), X86_64)
	if err != nil || e.Entry != phys+4 || e.Span() != (Span{phys, phys + 64}) {
		t.Fatalf("ParseELF() = %+v, %v; want entry %#x, span [%#x, %#x)", e, err, phys+4, phys, phys+64)
	}
	// Linked physical, by a tool that left p_paddr 0: p_vaddr is used.
	file = baremetal.ELF(elf.ELFCLASS64, elf.EM_X86_64, 0x200000, []baremetal.Segment{
		{VAddr: 0x200000, Data: make([]byte, 16), MemSize: 16},
	})
	e, err = ParseELF(bytes.NewReader(file), int64(len(file)), X86_64)
	if err != nil || !e.Physical || e.Entry != 0x200000 {
		t.Fatalf("ParseELF() = %+v, %v; want p_vaddr taken as physical, entry 0x200000", e, err)
	}
}

// elfField locates a field of the first program header, or of the ELF
// header, of a 64-bit file.
const (
	offEntry64  = 24
	offPhoff64  = 32
	offPhnum64  = 56
	ph0         = 64 // the first program header
	phOffset64  = ph0 + 8
	phPaddr64   = ph0 + 24
	phFilesz64  = ph0 + 32
	phMemsz64   = ph0 + 40
	phType64    = ph0
	offShoff64  = 40
	offType     = 16
	offVersion  = 6 // e_ident[EI_VERSION]
	offPhentsz  = 54
	rockEntry   = 0x200000
	rockSegSize = 0xd0d70
)

// TestELFCorrupt corrupts Debian's rockpro64 U-Boot ELF one field at a
// time (and takes Cubieboard2's as it is): each is refused with the
// error callers branch on, naming the field.
func TestELFCorrupt(t *testing.T) {
	good := readTestdata(t, rockpro64ELF)
	le := binary.LittleEndian
	corrupt := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name    string
		file    []byte
		target  Target
		wantErr error
		words   []string
	}{
		{"truncated ELF header", good[:40], ARM64, ErrBadELF, []string{"40 bytes", "64-byte ELF header"}},
		{"truncated program headers", good[:ph0+20], ARM64, ErrBadELF, nil},
		{"cut before the segment's end", good[:0x10000+0x1000], ARM64, ErrBadELF, []string{"69632-byte file ends inside its program or section headers", "truncated"}},
		{"segment past the file", corrupt(func(b []byte) []byte { le.PutUint64(b[phOffset64:], uint64(len(good))); return b }), ARM64, ErrBadELF, []string{"segment 0", "p_filesz", "past the end"}},
		{"p_filesz larger than p_memsz", corrupt(func(b []byte) []byte { le.PutUint64(b[phMemsz64:], 0x100); return b }), ARM64, ErrBadELF, []string{"p_filesz 0xd0d70 is larger than p_memsz 0x100"}},
		{"address that overflows", corrupt(func(b []byte) []byte { le.PutUint64(b[phPaddr64:], ^uint64(0)-0x1000); return b }), ARM64, ErrBadELF, []string{"segment 0", "past the end of the 52-bit physical address space"}},
		{"absurd p_memsz", corrupt(func(b []byte) []byte { le.PutUint64(b[phMemsz64:], 1<<63); return b }), ARM64, ErrBadELF, []string{"p_memsz 0x8000000000000000", "52-bit physical address space"}},
		{"entry outside every segment", corrupt(func(b []byte) []byte { le.PutUint64(b[offEntry64:], rockEntry+rockSegSize); return b }), ARM64, ErrBadELF, []string{"e_entry 0x2d0d70", "no PT_LOAD segment"}},
		{"no loadable segment", corrupt(func(b []byte) []byte { le.PutUint32(b[phType64:], uint32(elf.PT_NOTE)); return b }), ARM64, ErrBadELF, []string{"no PT_LOAD segment"}},
		{"an interpreter", corrupt(func(b []byte) []byte { le.PutUint32(b[ph0+56:], uint32(elf.PT_INTERP)); return b }), ARM64, ErrBadELF, []string{"program header 1 is PT_INTERP", "link it static"}},
		{"a shared object", corrupt(func(b []byte) []byte { le.PutUint16(b[offType:], uint16(elf.ET_DYN)); return b }), ARM64, ErrBadELF, []string{"e_type is ET_DYN", "fixed address"}},
		{"32-bit class", corrupt(func(b []byte) []byte { b[elf.EI_CLASS] = byte(elf.ELFCLASS32); return b }), ARM64, ErrForeignELF, []string{"e_ident[EI_CLASS] is ELFCLASS32"}},
		{"wrong machine", corrupt(func(b []byte) []byte { le.PutUint16(b[offMachine:], uint16(elf.EM_MIPS)); return b }), ARM64, ErrForeignELF, []string{"e_machine is EM_MIPS"}},
		{"another target's image", good, X86_64, ErrForeignELF, []string{"an executable for arm64", "x86_64 guest"}},
		{"big-endian", corrupt(func(b []byte) []byte { b[elf.EI_DATA] = byte(elf.ELFDATA2MSB); return b }), ARM64, ErrForeignELF, []string{"ELFDATA2MSB"}},
		{"unknown ELF version", corrupt(func(b []byte) []byte { b[offVersion] = 9; return b }), ARM64, ErrBadELF, []string{"version"}},
		{"short program header entries", corrupt(func(b []byte) []byte { le.PutUint16(b[offPhentsz:], 8); return b }), ARM64, ErrBadELF, []string{"phentsize"}},
		{"program headers past the file", corrupt(func(b []byte) []byte { le.PutUint64(b[offPhoff64:], uint64(len(good))); return b }), ARM64, ErrBadELF, nil},
		{"section headers past the file", corrupt(func(b []byte) []byte { le.PutUint64(b[offShoff64:], 1<<40); return b }), ARM64, ErrBadELF, nil},
	}
	if cubie, err := os.ReadFile(cubieELF); err == nil {
		tests = append(tests, struct {
			name    string
			file    []byte
			target  Target
			wantErr error
			words   []string
		}{"overlapping segments (Debian's Cubieboard2 U-Boot)", cubie, AArch32, ErrBadELF, []string{"segments 4 [0x4a04929a, 0x4a04ac8a) and 5 [0x4a04929a", "overlap"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseELF(bytes.NewReader(tt.file), int64(len(tt.file)), tt.target)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseELF() = %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseELF() = %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseELF() = %q spans lines", err)
			}
		})
	}
}

// TestELFPlacement checks that Load refuses a segment outside guest RAM
// or over the boot data, and then writes nothing.
func TestELFPlacement(t *testing.T) {
	file := readTestdata(t, rockpro64ELF)
	e, err := ParseELF(bytes.NewReader(file), int64(len(file)), ARM64)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		ramBase  uint64
		ramSize  uint64
		reserved []Range
		words    []string
	}{
		{"below RAM (the armvirt layout's)", 0x40000000, 64 << 20, nil, []string{"segment 0 [0x200000, 0x2d0d70) is not inside guest RAM", "give the guest more memory"}},
		{"past RAM's end", 0, 0x280000, nil, []string{"segment 0", "not inside guest RAM"}},
		{"over the device tree", 0, 16 << 20, []Range{{Name: "device tree", Start: 0x2c0000, End: 0x4c0000}}, []string{"segment 0 [0x200000, 0x2d0d70) overlaps the device tree at [0x2c0000, 0x4c0000)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemory(t, tt.ramBase, tt.ramSize)
			err := e.Load(m, bytes.NewReader(file), tt.reserved)
			if !errors.Is(err, ErrPlacement) {
				t.Fatalf("Load() = %v, want %v", err, ErrPlacement)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load() = %q, want it to mention %q", err, w)
				}
			}
			ram, _ := m.Slice(tt.ramBase, tt.ramSize)
			if !bytes.Equal(ram, make([]byte, len(ram))) {
				t.Errorf("Load() refused the image but wrote guest RAM")
			}
		})
	}
}

// FuzzLoadELF parses any file as each target's ELF and loads what it
// accepts into 1 MiB of RAM with a reserved page: nothing panics, and
// an accepted image lies in RAM, clear of the page, with its file bytes
// in place, its BSS zero and its entry inside a segment.
func FuzzLoadELF(f *testing.F) {
	for _, t := range targets {
		f.Add(smallELF(t, 0x10000))
		f.Add(smallELF(t, 0x7f000))
	}
	if b, err := os.ReadFile(rockpro64ELF); err == nil {
		f.Add(b[:4096])
	}
	m := newMemory(f, 0, 1<<20)
	reserved := []Range{{Name: "boot data", Start: 0x8000, End: 0x9000}}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, target := range targets {
			e, err := ParseELF(bytes.NewReader(data), int64(len(data)), target)
			if err != nil {
				continue
			}
			if err := e.Load(m, bytes.NewReader(data), reserved); err != nil {
				if !errors.Is(err, ErrPlacement) {
					t.Fatalf("Load() = %v, want only placement errors after ParseELF accepted it", err)
				}
				continue
			}
			var inSegment bool
			for _, s := range e.Segments {
				if s.End() > 1<<20 || (s.Addr < 0x9000 && s.End() > 0x8000) {
					t.Fatalf("Load() accepted segment %+v outside RAM or over the reserved page", s)
				}
				got, _ := m.Slice(s.Addr, s.MemSize)
				if !bytes.Equal(got[:s.FileSize], data[s.Offset:s.Offset+s.FileSize]) || !bytes.Equal(got[s.FileSize:], make([]byte, s.MemSize-s.FileSize)) {
					t.Fatalf("segment %+v: guest RAM does not hold its file bytes and zeroed BSS", s)
				}
				inSegment = inSegment || (e.Entry >= s.Addr && e.Entry < s.Addr+s.FileSize)
			}
			if !inSegment {
				t.Fatalf("ParseELF() accepted entry %#x outside every segment's file bytes", e.Entry)
			}
		}
	})
}
