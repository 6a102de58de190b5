package baremetal

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
