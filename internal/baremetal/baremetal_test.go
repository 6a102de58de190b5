package baremetal

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tandem-hv/tandem/arch/arm64"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestX86CodeAssembles assembles testdata/x86_64.S with Debian's binutils
// and checks that it gives X86Code byte for byte: the hand-assembled
// bytes are the source's.
func TestX86CodeAssembles(t *testing.T) {
	as := testenv.RequireCommand(t, "as", "binutils")
	objcopy := testenv.RequireCommand(t, "objcopy", "binutils")
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "x86_64.o"), filepath.Join(dir, "x86_64.bin")
	for _, cmd := range [][]string{
		{as, "--64", "-o", obj, "testdata/x86_64.S"},
		{objcopy, "-O", "binary", "-j", ".text", obj, bin},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd, err, out)
		}
	}
	got, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, X86Code) {
		t.Errorf("testdata/x86_64.S assembles to\n% x\nwant X86Code\n% x", got, X86Code)
	}
}

// TestX86ELF reads X86ELF back with debug/elf: an x86_64 executable
// entered at X86Base, its code segment holding X86Code and its stack a
// BSS segment ending at X86Stack.
func TestX86ELF(t *testing.T) {
	f, err := elf.NewFile(bytes.NewReader(X86ELF()))
	if err != nil {
		t.Fatalf("elf.NewFile() = %v", err)
	}
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC || f.Entry != X86Base || len(f.Progs) != 2 {
		t.Fatalf("X86ELF() = %v %v %v entry %#x, %d program headers", f.Machine, f.Class, f.Type, f.Entry, len(f.Progs))
	}
	code := make([]byte, f.Progs[0].Filesz)
	if _, err := f.Progs[0].ReadAt(code, 0); err != nil || !bytes.Equal(code, X86Code) || f.Progs[0].Paddr != X86Base {
		t.Errorf("code segment at %#x = % x, %v; want X86Code at %#x", f.Progs[0].Paddr, code, err, X86Base)
	}
	if bss := f.Progs[1]; bss.Filesz != 0 || bss.Paddr+bss.Memsz != X86Stack {
		t.Errorf("stack segment = %+v, want a BSS ending at %#x", bss.ProgHeader, X86Stack)
	}
}

// TestBuildArm64 assembles and links the arm64 program with Debian's
// cross binutils and reads the result back: an AArch64 executable
// entered at Arm64Base, where arch/arm64 loads a raw image by default,
// whose code segment is the raw image byte for byte, whose flags and
// stack are a BSS segment above it, whose vector table is 2 KiB aligned
// as VBAR_EL1 wants, and which arch/arm64's ELF checks accept.
func TestBuildArm64(t *testing.T) {
	for _, tool := range []string{"as", "ld", "objcopy"} {
		testenv.RequireCommand(t, Arm64Tool(tool), Arm64Binutils)
	}
	if want := uint64(arm64.RAMBase + arm64.RawOffset); Arm64Base != want {
		t.Fatalf("Arm64Base = %#x, want arm64.RAMBase + arm64.RawOffset = %#x", Arm64Base, want)
	}
	img, err := BuildArm64(t.TempDir())
	if err != nil {
		t.Fatalf("BuildArm64() = %v", err)
	}
	if err := arm64.CheckELF(img.ELF); err != nil {
		t.Errorf("arm64.CheckELF(%s) = %v", img.ELF, err)
	}
	raw, err := os.ReadFile(img.Raw)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(img.ELF)
	if err != nil {
		t.Fatalf("elf.Open() = %v", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Class != elf.ELFCLASS64 || f.Type != elf.ET_EXEC || f.Entry != Arm64Base || len(f.Progs) != 2 {
		t.Fatalf("%s: %v %v %v entry %#x, %d program headers; want an AArch64 executable entered at %#x with 2", img.ELF, f.Machine, f.Class, f.Type, f.Entry, len(f.Progs), Arm64Base)
	}
	text, bss := f.Progs[0], f.Progs[1]
	code := make([]byte, text.Filesz)
	if _, err := text.ReadAt(code, 0); err != nil || !bytes.Equal(code, raw) || text.Paddr != Arm64Base || text.Flags != elf.PF_R|elf.PF_X {
		t.Errorf("code segment %+v (%v) is not the raw image (%d bytes) at %#x, R+X", text.ProgHeader, err, len(raw), Arm64Base)
	}
	if bss.Filesz != 0 || bss.Memsz == 0 || bss.Paddr < text.Paddr+text.Memsz || bss.Flags != elf.PF_R|elf.PF_W {
		t.Errorf("data segment = %+v, want a R+W BSS above the code", bss.ProgHeader)
	}
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range syms {
		if s.Name == "vectors" {
			found = true
			if s.Value%0x800 != 0 {
				t.Errorf("vectors at %#x, want 2 KiB aligned", s.Value)
			}
		}
	}
	if !found {
		t.Errorf("%s has no vectors symbol", img.ELF)
	}
}

// TestArm64Lines checks that Arm64Lines finds the program's lines in a
// console: from the marker on, whatever precedes it, without line ends,
// in order, and nothing else.
func TestArm64Lines(t *testing.T) {
	tests := []struct {
		name, console string
		want          []string
	}{
		{"none", "booting\nE2E vmm-exit=0\n", nil},
		{"CRLF", "TANDEM-BM64 gic=v2\r\nTANDEM-BM64 system off\r\n", []string{"TANDEM-BM64 gic=v2", "TANDEM-BM64 system off"}},
		{"after other output", "tandem: x TANDEM-BM64 irq intid=27\nlog\n", []string{"TANDEM-BM64 irq intid=27"}},
		{"marker without its space", "TANDEM-BM64\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Arm64Lines(tt.console); !slices.Equal(got, tt.want) {
				t.Errorf("Arm64Lines(%q) = %q, want %q", tt.console, got, tt.want)
			}
		})
	}
}
