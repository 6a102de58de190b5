package vmm

import (
	"encoding/binary"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fbSysfs writes a framebuffer's sysfs attributes, as the kernel shows
// them, into a directory, and returns it with a file standing for the
// device.
func fbSysfs(t testing.TB, attrs map[string]string) (dir string, dev *os.File) {
	t.Helper()
	dir = t.TempDir()
	for k, v := range attrs {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := os.Create(filepath.Join(dir, "fb"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, dev
}

// TestFramebufferPlacement: a scanout that fits is centred at its size;
// a larger one is scaled down to fit, its aspect kept, and centred.
func TestFramebufferPlacement(t *testing.T) {
	tests := []struct {
		name     string
		fb, scan image.Point
		want     image.Rectangle
	}{
		{"same size", image.Pt(1280, 720), image.Pt(1280, 720), image.Rect(0, 0, 1280, 720)},
		{"smaller: centred", image.Pt(1920, 1080), image.Pt(1280, 720), image.Rect(320, 180, 1600, 900)},
		{"wider: scaled to the width", image.Pt(800, 600), image.Pt(1280, 720), image.Rect(0, 75, 800, 525)},
		{"taller: scaled to the height", image.Pt(1024, 600), image.Pt(800, 800), image.Rect(212, 0, 812, 600)},
		{"half: scaled by half", image.Pt(640, 360), image.Pt(1280, 720), image.Rect(0, 0, 640, 360)},
	}
	for _, tt := range tests {
		fb := &Framebuffer{width: tt.fb.X, height: tt.fb.Y}
		if got := fb.place(tt.scan); got != tt.want {
			t.Errorf("%s: place(%v) on %v = %v, want %v", tt.name, tt.scan, tt.fb, got, tt.want)
		}
	}
}

// TestFramebufferDraw: OpenFramebuffer reads the geometry from sysfs; a
// scanout drawn on it lands centred in the device's bytes in its pixel
// format, black around it, line by line at the stride; a second frame
// with one line changed rewrites only that line, the same frame none,
// and a scanout of another size all of them.
func TestFramebufferDraw(t *testing.T) {
	tests := []struct {
		name  string
		bits  int
		pixel func(c color.RGBA) []byte
	}{
		{"xrgb8888", 32, func(c color.RGBA) []byte {
			return binary.LittleEndian.AppendUint32(nil, uint32(c.R)<<16|uint32(c.G)<<8|uint32(c.B))
		}},
		{"rgb565", 16, func(c color.RGBA) []byte {
			return binary.LittleEndian.AppendUint16(nil, uint16(c.R)>>3<<11|uint16(c.G)>>2<<5|uint16(c.B)>>3)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const w, h = 8, 6
			bpp := tt.bits / 8
			stride := w*bpp + 16 // padded lines, as some drivers have
			dir, dev := fbSysfs(t, map[string]string{"virtual_size": "8,6", "bits_per_pixel": strconv.Itoa(tt.bits), "stride": strconv.Itoa(stride)})
			fb, err := OpenFramebuffer(dev, dir)
			if err != nil {
				t.Fatal(err)
			}
			defer fb.Close()
			scan := image.NewRGBA(image.Rect(0, 0, 4, 2))
			for i := range scan.Pix {
				scan.Pix[i] = uint8(i*7 + 1)
			}
			if n, err := fb.draw(scan); err != nil || n != h {
				t.Fatalf("first draw() = %d, %v; want %d lines", n, err, h)
			}
			got, _ := os.ReadFile(filepath.Join(dir, "fb"))
			if len(got) != stride*h {
				t.Fatalf("device holds %d bytes, want %d", len(got), stride*h)
			}
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					want := color.RGBA{A: 0xff}
					if x >= 2 && x < 6 && y >= 2 && y < 4 {
						want = scan.RGBAAt(x-2, y-2)
					}
					px := got[y*stride+x*bpp : y*stride+(x+1)*bpp]
					if string(px) != string(tt.pixel(want)) {
						t.Errorf("pixel (%d,%d) = % x, want % x (from %v)", x, y, px, tt.pixel(want), want)
					}
				}
			}
			scan.SetRGBA(0, 1, color.RGBA{0xff, 0xff, 0xff, 0xff})
			if n, err := fb.draw(scan); err != nil || n != 1 {
				t.Errorf("draw() after one line changed = %d, %v; want 1 line", n, err)
			}
			if n, err := fb.draw(scan); err != nil || n != 0 {
				t.Errorf("draw() of the same frame = %d, %v; want no line", n, err)
			}
			// A scanout of another size moves the picture: every line is
			// written again, and nothing of the old picture stays.
			small := image.NewRGBA(image.Rect(0, 0, 2, 2))
			for i := range small.Pix {
				small.Pix[i] = 0xff
			}
			if n, err := fb.draw(small); err != nil || n != h {
				t.Errorf("draw() of a smaller scanout = %d, %v; want all %d lines", n, err, h)
			}
			got, _ = os.ReadFile(filepath.Join(dir, "fb"))
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					want := color.RGBA{A: 0xff}
					if x >= 3 && x < 5 && y >= 2 && y < 4 {
						want = color.RGBA{0xff, 0xff, 0xff, 0xff}
					}
					if px := got[y*stride+x*bpp : y*stride+(x+1)*bpp]; string(px) != string(tt.pixel(want)) {
						t.Errorf("after the smaller scanout, pixel (%d,%d) = % x, want % x", x, y, px, tt.pixel(want))
					}
				}
			}
		})
	}
}

// TestOpenFramebufferRefuses: geometry the sink cannot draw, or cannot
// read, is refused naming the sysfs attribute or what is wrong.
func TestOpenFramebufferRefuses(t *testing.T) {
	good := map[string]string{"virtual_size": "1024,600", "bits_per_pixel": "32", "stride": "4096"}
	tests := []struct {
		name, attr, value, want string
	}{
		{"8 bits per pixel", "bits_per_pixel", "8", "only 16 (RGB565) and 32 (XRGB8888)"},
		{"bad size", "virtual_size", "1024x600", `virtual_size: "1024x600": want WIDTH,HEIGHT`},
		{"no stride", "stride", "", "stride"},
		{"short lines", "stride", "4000", "too short for 1024 pixels"},
		{"no size", "virtual_size", "-", "virtual_size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := map[string]string{}
			for k, v := range good {
				attrs[k] = v
			}
			attrs[tt.attr] = tt.value
			if tt.value == "-" {
				delete(attrs, tt.attr)
			}
			dir, dev := fbSysfs(t, attrs)
			defer dev.Close()
			fb, err := OpenFramebuffer(dev, dir)
			if err == nil {
				fb.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenFramebuffer() = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// BenchmarkFramebufferDraw measures one frame of the demo's kind on the
// board: a 640x360 scanout, every line changed, centred on a 1280x1024
// XRGB8888 framebuffer (the QEMU virt board's efifb mode).
func BenchmarkFramebufferDraw(b *testing.B) {
	dir, dev := fbSysfs(b, map[string]string{"virtual_size": "1280,1024", "bits_per_pixel": "32", "stride": "5120"})
	fb, err := OpenFramebuffer(dev, dir)
	if err != nil {
		b.Fatal(err)
	}
	defer fb.Close()
	scan := image.NewRGBA(image.Rect(0, 0, 640, 360))
	for i := 0; i < b.N; i++ {
		for j := range scan.Pix {
			scan.Pix[j] = uint8(i + j)
		}
		if _, err := fb.draw(scan); err != nil {
			b.Fatal(err)
		}
	}
}
