package arm64

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/loader"
	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// Debian's rockpro64 U-Boot (scripts/testdata.sh): an arm64 ELF linked at
// 2 MiB, below this layout's RAM, and the same program as a raw binary.
const (
	rockpro64Dir = "../../build/cache/pkgs/u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399"
	rockpro64ELF = rockpro64Dir + "/uboot.elf"
	rockpro64Bin = rockpro64Dir + "/u-boot-nodtb.bin"
)

func newGuestMemory(t *testing.T, size uint64) *mem.Memory {
	t.Helper()
	m, err := mem.New(MemoryRanges(size), mem.Options{})
	if err != nil {
		t.Fatalf("mem.New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestLoadRaw loads Debian's rockpro64 U-Boot as a raw image: at RAM +
// 512 KiB by default or at the address given, entered there, with the
// device tree 2 MiB aligned above it and the initrd above that; and
// refuses an address outside RAM or not instruction-aligned.
func TestLoadRaw(t *testing.T) {
	testenv.RequireFile(t, rockpro64Bin, "run scripts/testdata.sh")
	bin, err := os.ReadFile(rockpro64Bin)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd")
	if err := os.WriteFile(initrd, []byte("initrd"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		addr     uint64
		initrd   string
		wantAddr uint64
		wantDTB  uint64
		wantErr  error
		words    []string
	}{
		{"default address", 0, "", RAMBase + RawOffset, RAMBase + 2<<20, nil, nil},
		{"given address, with an initrd", RAMBase + 0x1000000, initrd, RAMBase + 0x1000000, RAMBase + 0x1200000, nil, nil},
		{"below RAM", 0x80000, "", 0, 0, loader.ErrPlacement, []string{"not inside guest RAM", "guest RAM is [0x40000000, 0x44000000)"}},
		{"no room for the device tree", RAMBase + 63<<20, "", 0, 0, nil, []string{"no room above it for the device tree", "give the guest more memory"}},
		{"misaligned", RAMBase + 0x80002, "", 0, 0, nil, []string{"0x40080002 is not a multiple of 4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newGuestMemory(t, 64<<20)
			b, err := LoadRaw(m, Guest{Kernel: rockpro64Bin, Initrd: tt.initrd}, tt.addr)
			if tt.words != nil {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("LoadRaw() = %v, want an error (%v)", err, tt.wantErr)
				}
				for _, w := range append(tt.words, rockpro64Bin) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("LoadRaw() = %q, want it to mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadRaw() = %v", err)
			}
			if b.KernelAddr != tt.wantAddr || b.DTBAddr != tt.wantDTB {
				t.Errorf("LoadRaw() = entry %#x, DTB %#x; want %#x, %#x", b.KernelAddr, b.DTBAddr, tt.wantAddr, tt.wantDTB)
			}
			if got, _ := m.Slice(tt.wantAddr, uint64(len(bin))); !bytes.Equal(got, bin) {
				t.Errorf("guest RAM at %#x does not hold the image", tt.wantAddr)
			}
			if tt.initrd != "" && b.InitrdAddr != b.DTBAddr+MaxDTBSize {
				t.Errorf("initrd at %#x, want it right above the device tree's room (%#x)", b.InitrdAddr, b.DTBAddr+MaxDTBSize)
			}
		})
	}
}

// TestLoadELFOutsideRAM refuses Debian's rockpro64 U-Boot ELF, linked at
// 2 MiB where this layout has devices, naming the segment and where RAM
// is.
func TestLoadELFOutsideRAM(t *testing.T) {
	testenv.RequireFile(t, rockpro64ELF, "run scripts/testdata.sh")
	_, err := LoadELF(newGuestMemory(t, 64<<20), Guest{Kernel: rockpro64ELF})
	if !errors.Is(err, loader.ErrPlacement) {
		t.Fatalf("LoadELF() = %v, want %v", err, loader.ErrPlacement)
	}
	for _, w := range []string{rockpro64ELF, "segment 0 [0x200000, 0x2d0d70)", "guest RAM is [0x40000000, 0x44000000)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("LoadELF() = %q, want it to mention %q", err, w)
		}
	}
	if err := CheckELF(rockpro64ELF); err != nil {
		t.Errorf("CheckELF() = %v, want nil: the file is a good ELF, only placed where this board has no RAM", err)
	}
}
