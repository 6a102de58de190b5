package fbdev

import (
	"encoding/binary"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// varInfo builds a struct fb_var_screeninfo with the given fields.
func varInfo(w, h, bits int, r, g, b Bitfield) []byte {
	v := make([]byte, varScreeninfoSize)
	put := func(off int, x uint32) { binary.NativeEndian.PutUint32(v[off:], x) }
	put(varXres, uint32(w))
	put(varYres, uint32(h))
	put(8, uint32(w)) // xres_virtual
	put(12, uint32(h))
	put(varBitsPerPixel, uint32(bits))
	for _, f := range []struct {
		off int
		bf  Bitfield
	}{{varRed, r}, {varGreen, g}, {varBlue, b}} {
		put(f.off, f.bf.Offset)
		put(f.off+4, f.bf.Length)
	}
	return v
}

var (
	xrgb8888 = [3]Bitfield{{16, 8}, {8, 8}, {0, 8}} // DRM's fbdev emulation's default
	rgb565   = [3]Bitfield{{11, 5}, {5, 6}, {0, 5}}
)

// TestEncodePixelFormats: a pixel lands in the framebuffer's bytes as
// its layout's colour fields say, little-endian, for the 32- and 16-bit
// layouts fbdev drivers give.
func TestEncodePixelFormats(t *testing.T) {
	tests := []struct {
		name   string
		bits   int
		fields [3]Bitfield
		c      color.RGBA
		want   []byte
	}{
		{"xrgb8888 orange", 32, xrgb8888, color.RGBA{0xff, 0x80, 0x10, 0xff}, []byte{0x10, 0x80, 0xff, 0x00}},
		{"xrgb8888 white", 32, xrgb8888, color.RGBA{0xff, 0xff, 0xff, 0xff}, []byte{0xff, 0xff, 0xff, 0x00}},
		{"xbgr8888 orange", 32, [3]Bitfield{{0, 8}, {8, 8}, {16, 8}}, color.RGBA{0xff, 0x80, 0x10, 0xff}, []byte{0xff, 0x80, 0x10, 0x00}},
		{"rgb565 red", 16, rgb565, color.RGBA{0xff, 0, 0, 0xff}, []byte{0x00, 0xf8}},
		{"rgb565 green", 16, rgb565, color.RGBA{0, 0xff, 0, 0xff}, []byte{0xe0, 0x07}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := ParseVar(varInfo(2, 1, tt.bits, tt.fields[0], tt.fields[1], tt.fields[2]))
			if err != nil {
				t.Fatal(err)
			}
			info.Stride, info.Size = 2*tt.bits/8, 2*tt.bits/8
			if err := info.check(); err != nil {
				t.Fatalf("check() = %v", err)
			}
			img := image.NewRGBA(image.Rect(0, 0, 2, 1))
			img.SetRGBA(1, 0, tt.c)
			line := make([]byte, info.Stride)
			info.Encode(line, img, 0)
			bpp := tt.bits / 8
			if got := line[bpp:]; string(got) != string(tt.want) {
				t.Errorf("pixel bytes = % x, want % x", got, tt.want)
			}
			if got := line[:bpp]; strings.Trim(string(got), "\x00") != "" {
				t.Errorf("black pixel bytes = % x, want zeros", got)
			}
		})
	}
}

// TestCheckRefusesLayouts: layouts the encoder cannot write are refused,
// naming what is wrong.
func TestCheckRefusesLayouts(t *testing.T) {
	ok := Info{Width: 4, Height: 2, Stride: 16, Bits: 32, Red: xrgb8888[0], Green: xrgb8888[1], Blue: xrgb8888[2], Size: 32}
	tests := []struct {
		name   string
		change func(*Info)
		want   string
	}{
		{"8 bits per pixel", func(i *Info) { i.Bits = 8 }, "bits per pixel"},
		{"no width", func(i *Info) { i.Width = 0 }, "0x2 pixels"},
		{"field beyond the pixel", func(i *Info) { i.Red.Offset = 30 }, "colour field"},
		{"line too short", func(i *Info) { i.Stride = 15 }, "too small"},
		{"memory too small", func(i *Info) { i.Size = 31 }, "too small"},
	}
	if err := ok.check(); err != nil {
		t.Fatalf("check() of a good layout = %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			i := ok
			tt.change(&i)
			if err := i.check(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("check() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// TestDrawWritesChangedLines: the first frame is written whole, a frame
// that differs in some lines rewrites only those, an unchanged frame
// writes nothing; the file holds the last frame either way.
func TestDrawWritesChangedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	info := Info{Width: 8, Height: 6, Stride: 40, Bits: 32, Red: xrgb8888[0], Green: xrgb8888[1], Blue: xrgb8888[2], Size: 240}
	if err := f.Truncate(240); err != nil {
		t.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 240, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	d := &Device{Info: info, f: f, mem: mem}
	defer d.Close()
	img := image.NewRGBA(image.Rect(0, 0, 8, 6))
	steps := []struct {
		name  string
		paint []int // lines to paint a new colour
		want  int
	}{
		{"first frame", nil, 6},
		{"unchanged", nil, 0},
		{"lines 1 and 4", []int{1, 4}, 2},
		{"lines 2 to 3", []int{2, 3}, 2},
	}
	for i, s := range steps {
		for _, y := range s.paint {
			for x := 0; x < 8; x++ {
				img.SetRGBA(x, y, color.RGBA{uint8(i * 40), 0x20, 0x30, 0xff})
			}
		}
		n, err := d.Draw(img)
		if err != nil || n != s.want {
			t.Errorf("%s: Draw() = %d, %v; want %d lines", s.name, n, err, s.want)
		}
		got, _ := os.ReadFile(path)
		want := make([]byte, info.Stride*info.Height)
		for y := 0; y < info.Height; y++ {
			info.Encode(want[y*info.Stride:(y+1)*info.Stride], img, y)
		}
		if string(got) != string(want) {
			t.Errorf("%s: the file does not hold the frame", s.name)
		}
	}
}
