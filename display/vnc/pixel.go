package vnc

import (
	"encoding/binary"
	"fmt"
	"image"
	"math/bits"
)

// PixelFormat mirrors the RFB PIXEL_FORMAT (RFC 6143 §7.4), 16 bytes on
// the wire with three bytes of padding at the end.
type PixelFormat struct {
	BitsPerPixel, Depth             uint8
	BigEndian, TrueColour           bool
	RedMax, GreenMax, BlueMax       uint16
	RedShift, GreenShift, BlueShift uint8
}

// pixelFormatSize is PIXEL_FORMAT's size on the wire.
const pixelFormatSize = 16

// ServerFormat is what the server offers in ServerInit: 32-bit
// little-endian true colour, 8 bits a channel, red highest (XRGB).
var ServerFormat = PixelFormat{
	BitsPerPixel: 32, Depth: 24, TrueColour: true,
	RedMax: 255, GreenMax: 255, BlueMax: 255,
	RedShift: 16, GreenShift: 8, BlueShift: 0,
}

// Marshal returns the format's 16 bytes on the wire.
func (p PixelFormat) Marshal() []byte {
	b := make([]byte, pixelFormatSize)
	b[0], b[1] = p.BitsPerPixel, p.Depth
	b[2], b[3] = boolByte(p.BigEndian), boolByte(p.TrueColour)
	binary.BigEndian.PutUint16(b[4:], p.RedMax)
	binary.BigEndian.PutUint16(b[6:], p.GreenMax)
	binary.BigEndian.PutUint16(b[8:], p.BlueMax)
	b[10], b[11], b[12] = p.RedShift, p.GreenShift, p.BlueShift
	return b
}

// UnmarshalPixelFormat reads a format off the wire.
func UnmarshalPixelFormat(b []byte) PixelFormat {
	return PixelFormat{
		BitsPerPixel: b[0], Depth: b[1], BigEndian: b[2] != 0, TrueColour: b[3] != 0,
		RedMax: binary.BigEndian.Uint16(b[4:]), GreenMax: binary.BigEndian.Uint16(b[6:]), BlueMax: binary.BigEndian.Uint16(b[8:]),
		RedShift: b[10], GreenShift: b[11], BlueShift: b[12],
	}
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// check says why the server cannot send pixels in p: it speaks true
// colour of 8, 16 or 32 bits, each channel inside the pixel.
func (p PixelFormat) check() error {
	if !p.TrueColour {
		return fmt.Errorf("colour-map pixel formats are not supported: ask for true colour")
	}
	switch p.BitsPerPixel {
	case 8, 16, 32:
	default:
		return fmt.Errorf("%d bits per pixel: want 8, 16 or 32", p.BitsPerPixel)
	}
	for _, c := range []struct {
		name  string
		max   uint16
		shift uint8
	}{{"red", p.RedMax, p.RedShift}, {"green", p.GreenMax, p.GreenShift}, {"blue", p.BlueMax, p.BlueShift}} {
		if c.max == 0 || c.max&(c.max+1) != 0 {
			return fmt.Errorf("%s-max %d: want 2^n-1", c.name, c.max)
		}
		if int(c.shift)+bits.Len16(c.max) > int(p.BitsPerPixel) {
			return fmt.Errorf("%s-shift %d with %s-max %d does not fit %d bits", c.name, c.shift, c.name, c.max, p.BitsPerPixel)
		}
	}
	return nil
}

// BytesPerPixel is the size of one pixel on the wire.
func (p PixelFormat) BytesPerPixel() int { return int(p.BitsPerPixel) / 8 }

// scale maps an 8-bit channel to 0..max, rounding.
func scale(v uint8, max uint16) uint32 { return (uint32(v)*uint32(max) + 127) / 255 }

// Pixel encodes an opaque colour in p.
func (p PixelFormat) Pixel(r, g, b uint8) uint32 {
	return scale(r, p.RedMax)<<p.RedShift | scale(g, p.GreenMax)<<p.GreenShift | scale(b, p.BlueMax)<<p.BlueShift
}

// appendPixels appends rectangle r of frame, in p, to dst. Pixels of r
// outside frame's picture (a scanout smaller than the screen) are black.
func (p PixelFormat) appendPixels(dst []byte, frame *image.RGBA, r image.Rectangle) []byte {
	bpp := p.BytesPerPixel()
	n := r.Dx() * r.Dy() * bpp
	dst = append(dst, make([]byte, n)...)
	out := dst[len(dst)-n:]
	fast := p == ServerFormat
	black := p.Pixel(0, 0, 0)
	i := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			var v uint32
			if (image.Point{x, y}).In(frame.Rect) {
				o := frame.PixOffset(x, y)
				px := frame.Pix[o : o+3 : o+3]
				if fast {
					out[i], out[i+1], out[i+2], out[i+3] = px[2], px[1], px[0], 0
					i += 4
					continue
				}
				v = p.Pixel(px[0], px[1], px[2])
			} else {
				v = black
			}
			switch {
			case bpp == 1:
				out[i] = byte(v)
			case bpp == 2 && p.BigEndian:
				binary.BigEndian.PutUint16(out[i:], uint16(v))
			case bpp == 2:
				binary.LittleEndian.PutUint16(out[i:], uint16(v))
			case p.BigEndian:
				binary.BigEndian.PutUint32(out[i:], v)
			default:
				binary.LittleEndian.PutUint32(out[i:], v)
			}
			i += bpp
		}
	}
	return dst
}
