package loader

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestLoadRaw loads Debian's rockpro64 U-Boot binary as a raw image and
// refuses raw images that are empty, too large, outside guest RAM or over
// the boot data.
func TestLoadRaw(t *testing.T) {
	const uboot = cachePkgs + "/u-boot-rockchip_arm64/usr/lib/u-boot/rockpro64-rk3399/u-boot-nodtb.bin"
	file := readTestdata(t, uboot)
	const base, size = 0x40000000, 64 << 20
	tests := []struct {
		name     string
		file     []byte
		addr     uint64
		reserved []Range
		wantErr  error
		words    []string
	}{
		{"at RAM + 512 KiB", file, base + 0x80000, nil, nil, nil},
		{"ending at RAM's end", file, base + size - uint64(len(file)), nil, nil, nil},
		{"empty", nil, base + 0x80000, nil, ErrBadRaw, []string{"empty"}},
		{"larger than any bare-metal image", make([]byte, MaxRawSize+1), base, nil, ErrPlacement, []string{"268435457 bytes", "disk image"}},
		{"below RAM", file, 0x80000, nil, ErrPlacement, []string{"the raw image [0x80000, ", "not inside guest RAM"}},
		{"past RAM's end", file, base + size - 4096, nil, ErrPlacement, []string{"not inside guest RAM", "more memory"}},
		{"over the boot data", file, base, []Range{{Name: "zero page", Start: base + 0x7000, End: base + 0x8000}}, ErrPlacement, []string{"overlaps the zero page at [0x40007000, 0x40008000)"}},
		{"address that overflows", file, ^uint64(0) - 16, nil, ErrPlacement, []string{"past the end of the address space"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemory(t, base, size)
			span, err := LoadRaw(m, bytes.NewReader(tt.file), int64(len(tt.file)), tt.addr, tt.reserved)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil) != (err != nil) {
				t.Fatalf("LoadRaw() = %v, want %v", err, tt.wantErr)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadRaw() = %q, want it to mention %q", err, w)
				}
			}
			if err != nil {
				return
			}
			if span != (Span{tt.addr, tt.addr + uint64(len(tt.file))}) {
				t.Errorf("LoadRaw() = %#x, want [%#x, +%#x)", span, tt.addr, len(tt.file))
			}
			if got, _ := m.Slice(tt.addr, uint64(len(tt.file))); !bytes.Equal(got, tt.file) {
				t.Errorf("guest RAM at %#x does not hold the image", tt.addr)
			}
		})
	}
}

// FuzzLoadRaw loads any bytes at any address into 1 MiB of RAM from
// 0x40000000 with a reserved page: LoadRaw accepts exactly the images
// that are not empty and lie in RAM clear of the page, and leaves them
// there byte for byte.
func FuzzLoadRaw(f *testing.F) {
	const base, size = 0x40000000, 1 << 20
	f.Add([]byte{0x14, 0x00, 0x00, 0x00}, uint64(base+0x80000)) // b . (arm64)
	f.Add([]byte{0xf4}, uint64(base+size-1))
	f.Add([]byte{}, uint64(base))
	f.Add(make([]byte, 4096), uint64(base+0x7800))
	m := newMemory(f, base, size)
	reserved := []Range{{Name: "boot data", Start: base + 0x8000, End: base + 0x9000}}
	f.Fuzz(func(t *testing.T, data []byte, addr uint64) {
		_, err := LoadRaw(m, bytes.NewReader(data), int64(len(data)), addr, reserved)
		end := addr + uint64(len(data))
		fits := len(data) > 0 && end >= addr && addr >= base && end <= base+size && (end <= base+0x8000 || addr >= base+0x9000)
		if fits != (err == nil) {
			t.Fatalf("LoadRaw(%d bytes at %#x) = %v; want success %v", len(data), addr, err, fits)
		}
		if err == nil {
			if got, _ := m.Slice(addr, uint64(len(data))); !bytes.Equal(got, data) {
				t.Fatalf("guest RAM at %#x does not hold the image", addr)
			}
		}
	})
}
