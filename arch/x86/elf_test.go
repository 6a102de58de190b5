package x86

import (
	"debug/elf"
	"errors"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/internal/baremetal"
)

// TestLoadRawRefused checks what an x86 raw image is refused for: no
// load address (PCs have no conventional one), one over the boot data,
// one above what the boot page tables map.
func TestLoadRawRefused(t *testing.T) {
	kernel := writeFile(t, "raw.bin", []byte{0xf4}) // hlt
	tests := []struct {
		name    string
		addr    uint64
		wantErr error
		words   []string
	}{
		{"no load address", 0, ErrNoLoadAddress, []string{"load-address"}},
		{"over the zero page", ZeroPageAddr + 0x10, loader.ErrPlacement, []string{"overlaps the zero page (boot_params) at [0x7000, 0x8000)"}},
		{"over the command line", CmdlineAddr + 4, loader.ErrPlacement, []string{"overlaps the kernel command line"}},
		{"over the ACPI tables", ACPIAddr, loader.ErrPlacement, []string{"overlaps the ACPI and MP tables"}},
		{"beyond the identity map", 5 << 30, loader.ErrPlacement, []string{"above the 4 GiB the boot page tables map"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMemory(t, 64<<20)
			_, err := LoadRaw(m, Guest{Kernel: kernel, Cmdline: "console=ttyS0", CPUs: 1}, tt.addr)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("LoadRaw() = %v, want %v", err, tt.wantErr)
			}
			for _, w := range append(tt.words, kernel) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadRaw() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestLoadRawBootData loads a raw image at 1 MiB and checks the boot
// data around it: the entry, the command line the zero page points at,
// and an initrd above the image.
func TestLoadRawBootData(t *testing.T) {
	kernel := writeFile(t, "raw.bin", []byte{0xf4})
	initrd := writeFile(t, "initrd", []byte("initrd"))
	m := newTestMemory(t, 64<<20)
	b, err := LoadRaw(m, Guest{Kernel: kernel, Initrd: initrd, Cmdline: "", CPUs: 1}, KernelAddr)
	if err != nil {
		t.Fatalf("LoadRaw() = %v", err)
	}
	if b.Entry != KernelAddr || b.InitrdAddr <= KernelAddr {
		t.Errorf("LoadRaw() = entry %#x, initrd %#x; want entry %#x and the initrd above it", b.Entry, b.InitrdAddr, KernelAddr)
	}
	ptr, _ := m.Uint32(ZeroPageAddr + hdrCmdLinePtr)
	nul, _ := m.Slice(uint64(ptr), 1)
	if ptr != CmdlineAddr || nul[0] != 0 {
		t.Errorf("cmd_line_ptr = %#x holding %q, want %#x holding the empty command line", ptr, nul, CmdlineAddr)
	}
}

// TestCheckELF checks an x86_64 ELF executable without guest memory: the
// bare-metal test guest passes; a segment over the boot page tables, an
// entry point above what they map and an arm64 executable are refused.
func TestCheckELF(t *testing.T) {
	seg := func(addr uint64) []baremetal.Segment {
		return []baremetal.Segment{{Addr: addr, Data: []byte{0xf4}, MemSize: 1}}
	}
	tests := []struct {
		name    string
		file    []byte
		wantErr error
		words   []string
	}{
		{"the bare-metal test guest", baremetal.X86ELF(), nil, nil},
		{"over the page tables", baremetal.ELF(elf.ELFCLASS64, elf.EM_X86_64, 0xa000, seg(0xa000)), loader.ErrPlacement, []string{"segment 0 [0xa000, 0xa001) overlaps the boot page tables"}},
		{"entry above 4 GiB", baremetal.ELF(elf.ELFCLASS64, elf.EM_X86_64, 5<<30, seg(5<<30)), loader.ErrPlacement, []string{"0x140000000", "above the 4 GiB the boot page tables map"}},
		{"an arm64 executable", baremetal.ELF(elf.ELFCLASS64, elf.EM_AARCH64, 0x100000, seg(0x100000)), loader.ErrForeignELF, []string{"an executable for arm64", "x86_64 guest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckELF(writeFile(t, "guest.elf", tt.file), len("console=ttyS0"))
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("CheckELF() = %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckELF() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
