package flash

import (
	"bytes"
	"testing"
)

func TestFlashReadsImageThenZerosAndDropsWrites(t *testing.T) {
	image := []byte{0x14, 0x00, 0x00, 0x14, 0xaa}
	f := New(image, nil)
	tests := []struct {
		name string
		off  uint64
		n    int
		want []byte
	}{
		{"image start", 0, 4, []byte{0x14, 0x00, 0x00, 0x14}},
		{"across the image's end", 3, 4, []byte{0x14, 0xaa, 0, 0}},
		{"second bank", 64 << 20, 2, []byte{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make([]byte, tt.n)
			f.Read(tt.off, got)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("Read(%#x) = % x, want % x", tt.off, got, tt.want)
			}
		})
	}
	// A CFI query command (0x98 at word 0x55) changes nothing: the
	// flash still reads as the image, not as a CFI table.
	f.Write(0x55*2, []byte{0x98, 0x00})
	got := make([]byte, 4)
	f.Read(0, got)
	if !bytes.Equal(got, image[:4]) || f.Writes() != 1 {
		t.Errorf("after a write: Read(0) = % x, Writes() = %d; want % x and 1", got, f.Writes(), image[:4])
	}
}
