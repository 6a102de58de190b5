package arm32

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// arndaleELF is Debian's U-Boot for the Arndale board
// (scripts/testdata.sh): a 32-bit ARM ELF linked at 0x43e00000, inside
// this layout's RAM.
const arndaleELF = "../../build/cache/pkgs/u-boot-exynos_armhf/usr/lib/u-boot/arndale/uboot.elf"

// TestLoadELF loads Debian's Arndale U-Boot ELF: its segment at its
// p_paddr, entered at e_entry in ARM state, the device tree 1 MiB
// aligned above it; in too little RAM it is refused, naming where RAM
// ends.
func TestLoadELF(t *testing.T) {
	testenv.RequireFile(t, arndaleELF, "run scripts/testdata.sh")
	f, err := elf.Open(arndaleELF)
	if err != nil {
		t.Fatal(err)
	}
	seg, err := io.ReadAll(f.Progs[0].Open())
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mem.New(MemoryRanges(128<<20), mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := LoadELF(m, Guest{Kernel: arndaleELF})
	if err != nil {
		t.Fatalf("LoadELF() = %v", err)
	}
	if b.KernelAddr != 0x43e00000 || b.DTBAddr != 0x43f00000 || b.Thumb {
		t.Errorf("LoadELF() = entry %#x, DTB %#x, Thumb %v; want 0x43e00000, 0x43f00000, false", b.KernelAddr, b.DTBAddr, b.Thumb)
	}
	if got, _ := m.Slice(0x43e00000, uint64(len(seg))); !bytes.Equal(got, seg) {
		t.Errorf("guest RAM at 0x43e00000 does not hold the segment")
	}

	small, err := mem.New(MemoryRanges(32<<20), mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	_, err = LoadELF(small, Guest{Kernel: arndaleELF})
	if !errors.Is(err, loader.ErrPlacement) || !strings.Contains(err.Error(), "guest RAM is [0x40000000, 0x42000000)") {
		t.Errorf("LoadELF() in 32 MiB = %v, want a placement error naming guest RAM", err)
	}
}

// TestLoadRawDefault loads a raw image at RAM + 32 KiB by default.
func TestLoadRawDefault(t *testing.T) {
	testenv.RequireFile(t, arndaleELF, "run scripts/testdata.sh")
	m, err := mem.New(MemoryRanges(64<<20), mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	b, err := LoadRaw(m, Guest{Kernel: arndaleELF}, 0)
	if err != nil || b.KernelAddr != RAMBase+0x8000 || b.DTBAddr != RAMBase+1<<20 {
		t.Fatalf("LoadRaw() = %+v, %v; want entry RAM + 0x8000, DTB at RAM + 1 MiB", b, err)
	}
	file, _ := os.ReadFile(arndaleELF)
	if got, _ := m.Slice(RAMBase+0x8000, uint64(len(file))); !bytes.Equal(got, file) {
		t.Errorf("guest RAM does not hold the raw image")
	}
}
