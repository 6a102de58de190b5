package arm32

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/mem"
)

func writeZImage(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "zImage")
	if err := os.WriteFile(f, goodZImage(), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestLoad checks where the zImage, device tree and initrd go: the DTB at
// booting.rst's safe 128 MiB where RAM allows, else just above what the
// decompressor may overwrite (the synthetic zImage inflates to 21.6 MiB
// plus 384 KiB of BSS, so 24 MiB).
func TestLoad(t *testing.T) {
	initrd := filepath.Join(t.TempDir(), "initrd")
	os.WriteFile(initrd, []byte("070701 initramfs"), 0o644)
	tests := []struct {
		name    string
		ram     uint64
		initrd  string
		wantDTB uint64
	}{
		{"256 MiB", 256 << 20, initrd, RAMBase + SafeOffset},
		{"256 MiB no initrd", 256 << 20, "", RAMBase + SafeOffset},
		{"64 MiB", 64 << 20, initrd, RAMBase + 24<<20},
		{"4 GiB is cut to 3", 4 << 30, "", RAMBase + SafeOffset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mem.New(MemoryRanges(tt.ram), mem.Options{})
			if strconv.IntSize == 32 && tt.ram > 2<<30 {
				// A 32-bit VMM (an ARMv7 host) cannot map 3 GiB.
				if !errors.Is(err, mem.ErrAddressSpace) {
					t.Fatalf("mem.New(%d MiB) on a 32-bit VMM = %v, want ErrAddressSpace", tt.ram>>20, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if end := RAMBase + m.Size(); end > 1<<32 {
				t.Errorf("RAM ends at %#x, above 4 GiB", end)
			}
			b, err := Load(m, Guest{Kernel: writeZImage(t), Initrd: tt.initrd})
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if b.KernelAddr != RAMBase+ZImageOffset || b.DTBAddr != tt.wantDTB {
				t.Errorf("Load() kernel at %#x, DTB at %#x, want %#x, %#x", b.KernelAddr, b.DTBAddr, RAMBase+ZImageOffset, tt.wantDTB)
			}
			got := make([]byte, testZSize)
			m.ReadAt(got, b.KernelAddr)
			if !bytes.Equal(got, goodZImage()) {
				t.Errorf("guest memory at %#x is not the zImage", b.KernelAddr)
			}
			if tt.initrd != "" && (b.InitrdAddr != b.DTBAddr+MaxDTBSize || b.InitrdSize != 16) {
				t.Errorf("initrd at %#x+%d, want %#x+16", b.InitrdAddr, b.InitrdSize, b.DTBAddr+MaxDTBSize)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	notZImage := filepath.Join(dir, "Image")
	os.WriteFile(notZImage, make([]byte, 4096), 0o644)
	noTable := filepath.Join(dir, "zImage-3.10")
	z := goodZImage()
	le.PutUint32(z[zhdrExtMagic:], 0)
	os.WriteFile(noTable, z, 0o644)
	bigInitrd := filepath.Join(dir, "big")
	os.WriteFile(bigInitrd, make([]byte, 40<<20), 0o644)
	tests := []struct {
		name   string
		mem    uint64
		g      Guest
		wantIn []string
	}{
		{"not a zImage", 256 << 20, Guest{Kernel: notZImage}, []string{notZImage, "zImage header", "magic at 0x24"}},
		{"missing kernel", 256 << 20, Guest{Kernel: filepath.Join(dir, "nope")}, []string{"opening kernel", "nope"}},
		{"missing initrd", 256 << 20, Guest{Kernel: writeZImage(t), Initrd: filepath.Join(dir, "nope")}, []string{"initrd", "nope"}},
		{"RAM too small for the initrd", 64 << 20, Guest{Kernel: writeZImage(t), Initrd: bigInitrd}, []string{"64 MiB of guest RAM is too small", "at least 170 MiB"}},
		{"small RAM, size unknown", 64 << 20, Guest{Kernel: noTable}, []string{"decompresses into the first 128 MiB"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mem.New(MemoryRanges(tt.mem), mem.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			_, err = Load(m, tt.g)
			for _, w := range tt.wantIn {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Load() = %v, want an error containing %q", err, w)
				}
			}
		})
	}
}
