// Package testpattern is the picture the end-to-end test guest draws on
// its display and the test expects back from the VMM, pixel for pixel:
// blocks of distinct colours, each edge a change in every channel, so a
// picture shifted, cropped or with channels swapped differs.
package testpattern

// Block is the side of a block of one colour, in pixels.
const Block = 16

// Pixel is the colour of pixel (x, y).
func Pixel(x, y int) (r, g, b uint8) {
	bx, by := x/Block, y/Block
	return uint8(bx*37 + by*11 + 1), uint8(bx*13 + by*71 + 2), uint8(bx*5 + by*29 + 3)
}

// XRGB8888Row appends row y of a width-pixel picture in DRM's
// XRGB8888 (bytes B, G, R, X in memory), the format of Linux's
// framebuffer on a virtio GPU, to dst.
func XRGB8888Row(dst []byte, y, width int) []byte {
	for x := range width {
		r, g, b := Pixel(x, y)
		dst = append(dst, b, g, r, 0)
	}
	return dst
}
