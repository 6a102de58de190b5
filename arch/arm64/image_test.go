package arm64

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// goodHeader is the header of a 4K-page, little-endian Image with
// text_offset 0 and a 40 MiB image_size, placeable anywhere: what
// Debian's 6.1 arm64 kernel has.
func goodHeader() []byte {
	b := make([]byte, HeaderSize)
	copy(b, "MZ@\xfa") // the EFI stub's "MZ" and a branch
	le := binary.LittleEndian
	le.PutUint64(b[hdrTextOffset:], 0)
	le.PutUint64(b[hdrImageSize:], 40<<20)
	le.PutUint64(b[hdrFlags:], 0xa) // 4K pages, anywhere
	copy(b[hdrMagic:], imageMagic)
	le.PutUint32(b[60:], 0x40) // PE header offset
	return b
}

func TestParseImage(t *testing.T) {
	img, err := ParseImage(goodHeader(), 1<<20)
	if err != nil {
		t.Fatalf("ParseImage(good) = %v", err)
	}
	if want := (Image{TextOffset: 0, Size: 40 << 20, PageSize: 4096, Anywhere: true}); img != want {
		t.Errorf("ParseImage(good) = %+v, want %+v", img, want)
	}
}

// TestParseImageCorrupt corrupts the good header one field at a time.
func TestParseImageCorrupt(t *testing.T) {
	le := binary.LittleEndian
	tests := []struct {
		name    string
		edit    func([]byte) []byte
		wantErr error
		wantMsg string
	}{
		{"truncated", func(b []byte) []byte { return b[:40] }, ErrNotImage, "shorter than the 64-byte header"},
		{"empty", func(b []byte) []byte { return nil }, ErrNotImage, "0 bytes"},
		{"bad magic", func(b []byte) []byte { b[hdrMagic+3] = 0x65; return b }, ErrNotImage, "magic at 0x38"},
		{"bzImage", func(b []byte) []byte { copy(b[hdrMagic:], "\x00\x00\x00\x00"); return b }, ErrNotImage, "magic"},
		{"big-endian", func(b []byte) []byte { le.PutUint64(b[hdrFlags:], 0xb); return b }, ErrBigEndian, "flags bit 0"},
		{"reserved flag", func(b []byte) []byte { le.PutUint64(b[hdrFlags:], 0x1a); return b }, ErrBadHeader, "reserved bits 0x10"},
		{"high reserved flag", func(b []byte) []byte { le.PutUint64(b[hdrFlags:], 1<<63|2); return b }, ErrBadHeader, "reserved bits 0x8000000000000000"},
		{"text_offset beyond 2 MiB", func(b []byte) []byte { le.PutUint64(b[hdrTextOffset:], 4<<20); return b }, ErrBadHeader, "text_offset 0x400000"},
		{"text_offset unaligned", func(b []byte) []byte { le.PutUint64(b[hdrTextOffset:], 0x80010); return b }, ErrBadHeader, "text_offset 0x80010"},
		{"image_size huge", func(b []byte) []byte { le.PutUint64(b[hdrImageSize:], 1<<40); return b }, ErrBadHeader, "image_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(goodHeader())
			_, err := ParseImage(b, uint64(len(b)))
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ParseImage() = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseImage() error has several lines: %q", err)
			}
		})
	}
}

// TestParseImageLegacy: image_size 0 means a kernel before 3.17, loaded
// at text_offset 0x80000 whatever the header says.
func TestParseImageLegacy(t *testing.T) {
	b := goodHeader()
	binary.LittleEndian.PutUint64(b[hdrImageSize:], 0)
	binary.LittleEndian.PutUint64(b[hdrFlags:], 0xffff) // undefined then: ignored
	img, err := ParseImage(b, 5<<20)
	if err != nil {
		t.Fatalf("ParseImage(legacy) = %v", err)
	}
	if img.TextOffset != legacyTextOffset || img.Size != 5<<20 {
		t.Errorf("ParseImage(legacy) = %+v, want text_offset %#x, size the file's", img, legacyTextOffset)
	}
}

func FuzzParseImage(f *testing.F) {
	f.Add(goodHeader())
	if k := debianImage(); k != "" {
		if b, err := os.ReadFile(k); err == nil {
			f.Add(b[:HeaderSize])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		img, err := ParseImage(b, uint64(len(b)))
		if err != nil {
			return
		}
		if img.TextOffset >= align2M || img.Size < uint64(len(b)) || img.Size > maxKernelSize && img.Size != uint64(len(b)) {
			t.Errorf("ParseImage() accepted %+v", img)
		}
	})
}

// debianImage is Debian's arm64 kernel from the test-data cache, or "".
func debianImage() string {
	for dir := "."; ; dir = filepath.Join(dir, "..") {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			k := filepath.Join(dir, "build", "cache", "arm64", "vmlinuz")
			if _, err := os.Stat(k); err == nil {
				return k
			}
			return ""
		}
		if abs, _ := filepath.Abs(dir); abs == "/" {
			return ""
		}
	}
}

// writeImage writes a small Image: the good header and n bytes of body.
func writeImage(t *testing.T, n int, gz bool) string {
	t.Helper()
	b := append(goodHeader(), bytes.Repeat([]byte{0xd5}, n)...)
	binary.LittleEndian.PutUint64(b[hdrImageSize:], 4<<20)
	if gz {
		var z bytes.Buffer
		w := gzip.NewWriter(&z)
		w.Write(b)
		w.Close()
		b = z.Bytes()
	}
	f := filepath.Join(t.TempDir(), "Image")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, []byte("070701 initramfs"), 0o644)
	tests := []struct {
		name   string
		gz     bool
		initrd string
	}{
		{"Image", false, ""},
		{"Image.gz with initrd", true, initrd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := mem.New(MemoryRanges(64<<20), mem.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			b, err := Load(m, Guest{Kernel: writeImage(t, 1000, tt.gz), Initrd: tt.initrd})
			if err != nil {
				t.Fatalf("Load() = %v", err)
			}
			if b.KernelAddr != RAMBase || b.DTBAddr != RAMBase+4<<20 {
				t.Errorf("Load() kernel at %#x, DTB at %#x, want %#x, %#x", b.KernelAddr, b.DTBAddr, RAMBase, RAMBase+4<<20)
			}
			got := make([]byte, 4)
			m.ReadAt(got, RAMBase+hdrMagic)
			if string(got) != imageMagic {
				t.Errorf("guest memory at the header's magic = %q, want %q", got, imageMagic)
			}
			if tt.initrd != "" {
				if b.InitrdAddr != b.DTBAddr+MaxDTBSize || b.InitrdSize != 16 {
					t.Errorf("initrd at %#x+%d, want %#x+16", b.InitrdAddr, b.InitrdSize, b.DTBAddr+MaxDTBSize)
				}
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "bzImage")
	os.WriteFile(notImage, make([]byte, 4096), 0o644)
	bigInitrd := filepath.Join(dir, "big")
	os.WriteFile(bigInitrd, make([]byte, 20<<20), 0o644)
	tests := []struct {
		name   string
		mem    uint64
		g      Guest
		wantIn []string
	}{
		{"not an Image", 64 << 20, Guest{Kernel: notImage}, []string{notImage, "magic"}},
		{"missing kernel", 64 << 20, Guest{Kernel: filepath.Join(dir, "nope")}, []string{"opening kernel", "nope"}},
		{"RAM too small", 16 << 20, Guest{Kernel: writeImage(t, 100, false), Initrd: bigInitrd}, []string{"initrd", bigInitrd, "more memory"}},
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

// TestDebianImage parses Debian's stock arm64 kernel: an uncompressed
// Image with an EFI stub.
func TestDebianImage(t *testing.T) {
	k := debianImage()
	if k == "" {
		t.Skip("skipping: no arm64 kernel in build/cache (scripts/testdata.sh arm64)")
	}
	b, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ParseImage(b, uint64(len(b)))
	if err != nil {
		t.Fatalf("ParseImage(%s) = %v", k, err)
	}
	t.Logf("%s: %+v (file %d bytes)", k, img, len(b))
	if img.PageSize != 4096 || img.Size < uint64(len(b)) {
		t.Errorf("ParseImage(%s) = %+v, want 4K pages and image_size at least the file", k, img)
	}
}

func TestVirtioSlot(t *testing.T) {
	p, err := VirtioSlot(1)
	if err != nil || p.Base != VirtioBase+VirtioSlotSize || p.IRQ != VirtioFirstSPI+1 {
		t.Errorf("VirtioSlot(1) = %+v, %v", p, err)
	}
	if _, err := VirtioSlot(NumVirtioSlots); !errors.Is(err, ErrNoSlot) {
		t.Errorf("VirtioSlot(%d) = %v, want ErrNoSlot", NumVirtioSlots, err)
	}
	last, _ := VirtioSlot(NumVirtioSlots - 1)
	if last.IRQ+32 >= NumIRQs || last.Base+last.Size > RAMBase {
		t.Errorf("last slot %+v beyond the vGIC's %d interrupts or into RAM", last, NumIRQs)
	}
	if GICv3RedistBase+GICv3RedistMax > UARTBase {
		t.Errorf("redistributor window overlaps the UART")
	}
}

// TestCheckKernel checks an Image file's header without guest memory:
// plain and gzip-compressed Images pass, a foreign file, a truncated
// gzip stream and a missing file are named with what is wrong.
func TestCheckKernel(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("not a kernel\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badGz := filepath.Join(dir, "bad.gz")
	if err := os.WriteFile(badGz, []byte{0x1f, 0x8b, 8}, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string // "" for no error
	}{
		{"an Image", writeImage(t, 4096, false), ""},
		{"an Image.gz", writeImage(t, 4096, true), ""},
		{"a text file", text, "shorter than the 64-byte header"},
		{"a gzip stream cut short", badGz, "gzip header"},
		{"a missing file", filepath.Join(dir, "gone"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckKernel(tt.path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckKernel() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckKernel() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestLoadStreamsTheKernel loads Debian's stock kernel and checks that it
// went straight from the file into guest RAM: the bytes at the load
// address are the file's, and the VMM's heap grew by far less than the
// kernel's size (it used to hold the whole file, then copy it).
func TestLoadStreamsTheKernel(t *testing.T) {
	k := debianImage()
	if k == "" {
		k = "build/cache/arm64/vmlinuz"
	}
	testenv.RequireFile(t, k, "scripts/testdata.sh arm64")
	want, err := os.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mem.New(MemoryRanges(256<<20), mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, err := Load(m, Guest{Kernel: k})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("Load(%s) = %v", k, err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("Load(%s) allocated %d KiB on the heap for a %d KiB kernel, want under 1 MiB", k, grew>>10, len(want)>>10)
	}
	got, err := m.Slice(b.KernelAddr, uint64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("guest RAM at %#x differs from %s", b.KernelAddr, k)
	}
}

// TestLoadTooLarge: an Image, or the inflated stream of an Image.gz,
// larger than the guest's RAM is refused, saying so, whether its length
// is known from the file or found only by inflating.
func TestLoadTooLarge(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			m, err := mem.New(MemoryRanges(16<<20), mem.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			_, err = Load(m, Guest{Kernel: writeImage(t, 17<<20, gz)})
			if err == nil || !strings.Contains(err.Error(), "guest RAM") {
				t.Errorf("Load() of a 17 MiB Image into 16 MiB = %v, want an error about guest RAM", err)
			}
		})
	}
}
