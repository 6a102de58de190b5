package arm32

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

var le = binary.LittleEndian

// Fields of the synthetic zImage: a 64 KiB file whose extension table at
// 0x100 has a KRNL_SIZE tag pointing at an unaligned size word near the
// end, as Debian's armmp-lpae zImage has (its table is at 0xd55c, its
// size word at 0x544281).
const (
	testZSize      = 64 << 10
	testTableOff   = 0x100
	testSizePtr    = testZSize - 0x7f
	testKernelSize = 0x015a50c8
	testBSSSize    = 0x000601c0
)

func goodZImage() []byte {
	b := make([]byte, testZSize)
	le.PutUint32(b[zhdrMagic:], zMagic)
	le.PutUint32(b[zhdrStart:], 0)
	le.PutUint32(b[zhdrEnd:], testZSize)
	le.PutUint32(b[zhdrEndian:], zEndianLE)
	le.PutUint32(b[zhdrExtMagic:], zExtMagic)
	le.PutUint32(b[zhdrExtTable:], testTableOff)
	for i, w := range []uint32{6, zTagKrnlSize, testSizePtr, testBSSSize, 0x208000, 0x10000, 0} {
		le.PutUint32(b[testTableOff+4*i:], w)
	}
	le.PutUint32(b[testSizePtr:], testKernelSize)
	return b
}

func TestParseZImage(t *testing.T) {
	z, err := ParseZImage(goodZImage())
	want := ZImage{Size: testZSize, KernelSize: testKernelSize, BSSSize: testBSSSize}
	if err != nil || z != want {
		t.Errorf("ParseZImage() = %+v, %v, want %+v", z, err, want)
	}
	// A zImage before 3.18 has no extension table: sizes unknown.
	b := goodZImage()
	le.PutUint32(b[zhdrExtMagic:], 0xe1a00000) // a nop where the magic would be
	z, err = ParseZImage(b)
	if want := (ZImage{Size: testZSize}); err != nil || z != want {
		t.Errorf("ParseZImage(no table) = %+v, %v, want %+v", z, err, want)
	}
}

func TestParseZImageCorrupt(t *testing.T) {
	tests := []struct {
		name    string
		edit    func([]byte) []byte
		wantErr error
		want    string
	}{
		{"empty", func(b []byte) []byte { return nil }, ErrNotZImage, "0 bytes"},
		{"truncated", func(b []byte) []byte { return b[:0x30] }, ErrNotZImage, "shorter than"},
		{"bad magic", func(b []byte) []byte { b[zhdrMagic] ^= 1; return b }, ErrNotZImage, "magic at 0x24"},
		{"arm64 Image", func(b []byte) []byte { le.PutUint32(b[zhdrMagic:], 0); copy(b[0x38:], "ARM\x64"); return b }, ErrNotZImage, "magic"},
		{"big-endian", func(b []byte) []byte { le.PutUint32(b[zhdrEndian:], zEndianBE); return b }, ErrBigEndian, "CONFIG_CPU_BIG_ENDIAN"},
		{"bad endian flag", func(b []byte) []byte { le.PutUint32(b[zhdrEndian:], 0xdeadbeef); return b }, ErrBadHeader, "endianness flag at 0x30 is 0xdeadbeef"},
		{"end before start", func(b []byte) []byte { le.PutUint32(b[zhdrStart:], testZSize+4); return b }, ErrBadHeader, "not after start"},
		{"end past file", func(b []byte) []byte { le.PutUint32(b[zhdrEnd:], testZSize+4); return b }, ErrBadHeader, "but the file has"},
		{"file cut short", func(b []byte) []byte { return b[:testZSize/2] }, ErrBadHeader, "but the file has"},
		{"table past end", func(b []byte) []byte { le.PutUint32(b[zhdrExtTable:], testZSize-4); return b }, ErrBadHeader, "runs past the end"},
		{"table offset huge", func(b []byte) []byte { le.PutUint32(b[zhdrExtTable:], 0xfffffffc); return b }, ErrBadHeader, "runs past the end"},
		{"tag size 1", func(b []byte) []byte { le.PutUint32(b[testTableOff:], 1); return b }, ErrBadHeader, "size 1 words"},
		{"tag size huge", func(b []byte) []byte { le.PutUint32(b[testTableOff:], 0x40000000); return b }, ErrBadHeader, "size 1073741824 words"},
		{"KRNL_SIZE short", func(b []byte) []byte { le.PutUint32(b[testTableOff:], 3); return b }, ErrBadHeader, "has 3 words"},
		{"size pointer past end", func(b []byte) []byte { le.PutUint32(b[testTableOff+8:], testZSize-2); return b }, ErrBadHeader, "past the end"},
		{"kernel size huge", func(b []byte) []byte { le.PutUint32(b[testSizePtr:], 0xffffffff); return b }, ErrBadHeader, "MiB decompressed"},
		{"endless table", func(b []byte) []byte {
			for i := 0; i < 20; i++ {
				le.PutUint32(b[testTableOff+8*i:], 2)
				le.PutUint32(b[testTableOff+8*i+4:], 0x11111111)
			}
			return b
		}, ErrBadHeader, "more than 16 tags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseZImage(tt.edit(goodZImage()))
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseZImage() = %v, want %v containing %q", err, tt.wantErr, tt.want)
			}
		})
	}
}

func FuzzParseZImage(f *testing.F) {
	f.Add(goodZImage()[:0x200])
	f.Add(goodZImage())
	if b, err := os.ReadFile(debianZImage()); err == nil {
		f.Add(b[:0x1000])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		z, err := ParseZImage(b)
		if err != nil {
			return
		}
		if uint64(z.Size) > uint64(len(b)) || uint64(z.KernelSize)+uint64(z.BSSSize) > maxKernelSize {
			t.Errorf("ParseZImage() = %+v for %d bytes", z, len(b))
		}
	})
}

// debianZImage returns Debian's armmp-lpae zImage from the test-data
// cache (scripts/testdata.sh armhf).
func debianZImage() string {
	return filepath.Join("..", "..", "build", "cache", "armhf", "vmlinuz")
}

// TestDebianZImage parses Debian's stock armhf kernel.
func TestDebianZImage(t *testing.T) {
	k := debianZImage()
	testenv.RequireFile(t, k, "run scripts/testdata.sh armhf")
	b, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	z, err := ParseZImage(b)
	if err != nil {
		t.Fatalf("ParseZImage(%s) = %v", k, err)
	}
	t.Logf("%s: %+v (file %d bytes), decompressor footprint %d MiB", k, z, len(b), decompressFootprint(z)>>20)
	if z.Start != 0 || z.KernelSize < 3*z.Size || decompressFootprint(z) >= SafeOffset {
		t.Errorf("ParseZImage(%s) = %+v, want a position-independent zImage inflating 3x or more, inside %d MiB", k, z, SafeOffset>>20)
	}
}
