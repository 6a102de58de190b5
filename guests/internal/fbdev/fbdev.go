// Package fbdev is a Linux framebuffer device (/dev/fbN) for guest
// programs: its geometry and pixel format from the fbdev ioctls, and
// frames written to it with pwrite, only the rows that changed.
package fbdev

import (
	"encoding/binary"
	"fmt"
	"image"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// The fbdev ioctls (include/uapi/linux/fb.h).
const (
	fbiogetVScreeninfo = 0x4600
	fbiogetFScreeninfo = 0x4602
)

// varScreeninfoSize is sizeof(struct fb_var_screeninfo): 40 __u32 fields.
const varScreeninfoSize = 160

// Offsets into struct fb_var_screeninfo (include/uapi/linux/fb.h).
const (
	varXres         = 0
	varYres         = 4
	varBitsPerPixel = 24
	varRed          = 32 // struct fb_bitfield {offset, length, msb_right}
	varGreen        = 44
	varBlue         = 56
)

// fixScreeninfoSize is sizeof(struct fb_fix_screeninfo) on a 64-bit
// kernel, the larger of the two; fixSmemLen and fixLineLength are its
// fields' offsets for the pointer size (unsigned long smem_start and
// mmio_start move them).
const fixScreeninfoSize = 80

func fixOffsets() (smemLen, lineLength int) {
	if strconv.IntSize == 64 {
		return 24, 48
	}
	return 20, 44
}

// Bitfield is where one colour's bits are in a pixel (struct fb_bitfield).
type Bitfield struct{ Offset, Length uint32 }

// Info is a framebuffer's geometry and pixel format.
type Info struct {
	Width, Height int // visible pixels
	Stride        int // bytes from one line to the next
	Bits          int // bits per pixel: 16 or 32 are drawn
	Red, Green    Bitfield
	Blue          Bitfield
	Size          int // bytes of framebuffer memory
}

// ParseVar reads the geometry and colour layout of a struct
// fb_var_screeninfo.
func ParseVar(b []byte) (Info, error) {
	if len(b) < varScreeninfoSize {
		return Info{}, fmt.Errorf("fb_var_screeninfo of %d bytes, want %d", len(b), varScreeninfoSize)
	}
	u := func(off int) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
	bf := func(off int) Bitfield { return Bitfield{Offset: u(off), Length: u(off + 4)} }
	return Info{Width: int(u(varXres)), Height: int(u(varYres)), Bits: int(u(varBitsPerPixel)),
		Red: bf(varRed), Green: bf(varGreen), Blue: bf(varBlue)}, nil
}

// check refuses a layout Encode cannot write.
func (i Info) check() error {
	if i.Width <= 0 || i.Height <= 0 || i.Width > 1<<14 || i.Height > 1<<14 {
		return fmt.Errorf("framebuffer of %dx%d pixels", i.Width, i.Height)
	}
	if i.Bits != 16 && i.Bits != 32 {
		return fmt.Errorf("framebuffer of %d bits per pixel: only 16 and 32 are drawn", i.Bits)
	}
	for _, f := range []Bitfield{i.Red, i.Green, i.Blue} {
		if f.Length == 0 || f.Length > 8 || f.Offset+f.Length > uint32(i.Bits) {
			return fmt.Errorf("framebuffer colour field at bit %d of %d bits in a %d-bit pixel", f.Offset, f.Length, i.Bits)
		}
	}
	if i.Stride < i.Width*i.Bits/8 || i.Size < i.Stride*i.Height {
		return fmt.Errorf("framebuffer line of %d bytes, memory of %d bytes: too small for %dx%d at %d bits", i.Stride, i.Size, i.Width, i.Height, i.Bits)
	}
	return nil
}

// Encode writes the visible part of img (from its origin) into line,
// one framebuffer line of Info's layout.
func (i Info) Encode(line []byte, img *image.RGBA, y int) {
	bpp := i.Bits / 8
	for x := 0; x < i.Width; x++ {
		var r, g, b uint32
		if p := image.Pt(x, y).Add(img.Rect.Min); p.In(img.Rect) {
			o := img.PixOffset(p.X, p.Y)
			r, g, b = uint32(img.Pix[o]), uint32(img.Pix[o+1]), uint32(img.Pix[o+2])
		}
		v := r>>(8-i.Red.Length)<<i.Red.Offset | g>>(8-i.Green.Length)<<i.Green.Offset | b>>(8-i.Blue.Length)<<i.Blue.Offset
		if bpp == 4 {
			binary.LittleEndian.PutUint32(line[x*4:], v)
		} else {
			binary.LittleEndian.PutUint16(line[x*2:], uint16(v))
		}
	}
}

// Device is an open framebuffer, mapped.
type Device struct {
	Info
	f    *os.File
	mem  []byte // the framebuffer, mapped shared
	last []byte // what was written, to write only the lines that changed
}

// Open opens the framebuffer device at path and reads its layout.
func Open(path string) (*Device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	var v [varScreeninfoSize]byte
	var fix [fixScreeninfoSize]byte
	if err := ioctl(int(f.Fd()), fbiogetVScreeninfo, v[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: FBIOGET_VSCREENINFO: %w", path, err)
	}
	if err := ioctl(int(f.Fd()), fbiogetFScreeninfo, fix[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: FBIOGET_FSCREENINFO: %w", path, err)
	}
	info, _ := ParseVar(v[:])
	smem, line := fixOffsets()
	info.Size = int(binary.NativeEndian.Uint32(fix[smem:]))
	info.Stride = int(binary.NativeEndian.Uint32(fix[line:]))
	if err := info.check(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Written through a mapping: the DRM framebuffer emulation's
	// deferred I/O sends the pages written there to the display as
	// damage, which Debian 6.1's virtio_gpu does not do for write(2).
	mem, err := unix.Mmap(int(f.Fd()), 0, info.Stride*info.Height, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return &Device{Info: info, f: f, mem: mem}, nil
}

// Close unmaps and closes the device.
func (d *Device) Close() error {
	unix.Munmap(d.mem)
	return d.f.Close()
}

// Draw writes img to the framebuffer: each line that differs from the
// last frame's, copied into the mapping (the kernel's DRM framebuffer
// emulation sends the pages written to the display as damage). It
// returns how many lines it wrote.
func (d *Device) Draw(img *image.RGBA) (int, error) {
	n := d.Stride * d.Height
	first := d.last == nil
	if first {
		d.last = make([]byte, n)
	}
	cur := make([]byte, n)
	for y := 0; y < d.Height; y++ {
		d.Encode(cur[y*d.Stride:(y+1)*d.Stride], img, y)
	}
	written := 0
	for y := 0; y < d.Height; {
		if !first && string(cur[y*d.Stride:(y+1)*d.Stride]) == string(d.last[y*d.Stride:(y+1)*d.Stride]) {
			y++
			continue
		}
		end := y + 1
		for end < d.Height && (first || string(cur[end*d.Stride:(end+1)*d.Stride]) != string(d.last[end*d.Stride:(end+1)*d.Stride])) {
			end++
		}
		copy(d.mem[y*d.Stride:end*d.Stride], cur[y*d.Stride:end*d.Stride])
		written += end - y
		y = end
	}
	d.last = cur
	return written, nil
}
