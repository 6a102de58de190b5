package vmm

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandem-hv/tandem/hv/devices/virtio"
)

// BoardFramebuffer is the board's own display as the host kernel gives
// it: its first framebuffer device (a DRM driver's framebuffer emulation,
// or an fbdev driver).
const BoardFramebuffer = "/dev/fb0"

// framebufferFrame is the shortest time between two frames written to
// the board's framebuffer: a guest flushing faster is shown at 30 frames
// a second.
const framebufferFrame = time.Second / 30

// framebufferShare bounds the sink's share of a core: after a frame that
// took d to draw, the next waits at least framebufferShare times d. The
// VMM's other work (the guest's vCPUs, its devices) shares cores with
// it, on a slow board all of them.
const framebufferShare = 4

// Framebuffer is a FlushSink that shows the guest's scanout on a host
// framebuffer: centred when it fits, else scaled down to fit, keeping
// its aspect; black around it, at most 30 frames a second and a fifth of
// a core. Its geometry comes from the device's
// sysfs directory (virtual_size, bits_per_pixel, stride), read once when
// it is opened, before the VMM confines itself; frames are written with
// pwrite, only the lines that changed, from a goroutine of its own.
//
// The pixel format is the one Linux's framebuffer drivers use at these
// depths: 32 bits XRGB8888, 16 bits RGB565, little-endian (sysfs does not
// give the colour fields; the fbdev ioctls would, at the price of raw
// ioctls here).
type Framebuffer struct {
	f                     *os.File
	width, height, stride int
	bits                  int
	wake                  chan struct{} // a flush came: draw the next frame
	done                  chan struct{}
	closeOnce             sync.Once
	gpu                   *virtio.GPU // set by the first flush
	mu                    sync.Mutex  // protects gpu
	// cur is the frame being rendered, last the frame as last written
	// (nil before the first); the two buffers swap after each write, and
	// only the picture's place is rendered into them: around it both
	// stay black. dst is that place, xs its columns' source columns.
	cur, last []byte
	dst       image.Rectangle
	xs        []int
}

// OpenFramebuffer takes f, the framebuffer device whose sysfs directory
// is sys (/sys/class/graphics/fb0), as a flush sink. The Framebuffer owns
// f; Close ends it.
func OpenFramebuffer(f *os.File, sys string) (*Framebuffer, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(sys, name))
		return strings.TrimSpace(string(b)), err
	}
	size, err := read("virtual_size")
	if err != nil {
		return nil, fmt.Errorf("board display: %w", err)
	}
	ws, hs, _ := strings.Cut(size, ",")
	fb := &Framebuffer{f: f, wake: make(chan struct{}, 1), done: make(chan struct{})}
	var errs []error
	for _, v := range []struct {
		dst  *int
		name string
		s    string
	}{{&fb.width, "virtual_size", ws}, {&fb.height, "virtual_size", hs}} {
		if *v.dst, err = strconv.Atoi(v.s); err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %q: want WIDTH,HEIGHT", sys, v.name, size))
		}
	}
	for _, v := range []struct {
		dst  *int
		name string
	}{{&fb.bits, "bits_per_pixel"}, {&fb.stride, "stride"}} {
		s, err := read(v.name)
		if err == nil {
			*v.dst, err = strconv.Atoi(s)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s/%s: %w", sys, v.name, err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("board display: %w", errs[0])
	}
	if err := fb.check(); err != nil {
		return nil, fmt.Errorf("board display %s: %w", sys, err)
	}
	go fb.run()
	return fb, nil
}

// check refuses a geometry the sink cannot draw.
func (fb *Framebuffer) check() error {
	switch {
	case fb.bits != 16 && fb.bits != 32:
		return fmt.Errorf("%d bits per pixel: only 16 (RGB565) and 32 (XRGB8888) are drawn", fb.bits)
	case fb.width <= 0 || fb.height <= 0 || fb.width > MaxDisplayWidth*2 || fb.height > MaxDisplayHeight*2:
		return fmt.Errorf("%dx%d pixels", fb.width, fb.height)
	case fb.stride < fb.width*fb.bits/8:
		return fmt.Errorf("lines of %d bytes, too short for %d pixels of %d bits", fb.stride, fb.width, fb.bits)
	}
	return nil
}

// Flushed asks for the next frame; it never blocks.
func (fb *Framebuffer) Flushed(gpu *virtio.GPU, _ image.Rectangle) {
	fb.mu.Lock()
	fb.gpu = gpu
	fb.mu.Unlock()
	select {
	case fb.wake <- struct{}{}:
	default:
	}
}

// Close stops drawing and closes the device.
func (fb *Framebuffer) Close() error {
	fb.closeOnce.Do(func() { close(fb.done) })
	return fb.f.Close()
}

// run draws a frame after each flush, at most one per framebufferFrame,
// and at most a 1/(1+framebufferShare) share of a core.
// A failed write stops the sink: the guest runs on without the board's
// display.
func (fb *Framebuffer) run() {
	for {
		select {
		case <-fb.done:
			return
		case <-fb.wake:
		}
		fb.mu.Lock()
		gpu := fb.gpu
		fb.mu.Unlock()
		start := time.Now()
		img, err := gpu.Snapshot()
		if err != nil {
			continue // a failed device shows nothing more
		}
		if _, err := fb.draw(img); err != nil {
			select {
			case <-fb.done: // closed meanwhile: the VMM ends
			default:
				fmt.Fprintf(os.Stderr, "tandem: board display: %v: no more frames\n", err)
			}
			return
		}
		select {
		case <-fb.done:
			return
		case <-time.After(max(framebufferFrame, framebufferShare*time.Since(start))):
		}
	}
}

// place is where a src-sized picture goes on the framebuffer: centred,
// scaled down to fit when larger, aspect kept.
func (fb *Framebuffer) place(src image.Point) image.Rectangle {
	w, h := src.X, src.Y
	if w > fb.width || h > fb.height {
		// Scale by the smaller of the two ratios, in integers.
		if w*fb.height > h*fb.width {
			w, h = fb.width, max(1, h*fb.width/w)
		} else {
			w, h = max(1, w*fb.height/h), fb.height
		}
	}
	x, y := (fb.width-w)/2, (fb.height-h)/2
	return image.Rect(x, y, x+w, y+h)
}

// render draws img into fb.cur at its place and returns that place.
// When the place moves (the scanout's size changed), the whole frame is
// cleared and the next write covers every line.
func (fb *Framebuffer) render(img *image.RGBA) image.Rectangle {
	sw, sh := img.Rect.Dx(), img.Rect.Dy()
	var dst image.Rectangle
	if sw > 0 && sh > 0 {
		dst = fb.place(image.Pt(sw, sh))
	}
	if fb.cur == nil {
		fb.cur = make([]byte, fb.stride*fb.height)
	}
	if dst != fb.dst || len(fb.xs) != dst.Dx() {
		clear(fb.cur)
		fb.last = nil
		fb.dst = dst
		fb.xs = make([]int, dst.Dx())
		for i := range fb.xs {
			fb.xs[i] = i * sw / dst.Dx()
		}
	}
	bpp := fb.bits / 8
	for y := dst.Min.Y; y < dst.Max.Y; y++ {
		sy := (y - dst.Min.Y) * sh / dst.Dy()
		src := img.Pix[img.PixOffset(img.Rect.Min.X, img.Rect.Min.Y+sy):]
		line := fb.cur[y*fb.stride+dst.Min.X*bpp : y*fb.stride+dst.Max.X*bpp]
		for i, sx := range fb.xs {
			r, g, b := uint32(src[sx*4]), uint32(src[sx*4+1]), uint32(src[sx*4+2])
			if bpp == 4 {
				binary.LittleEndian.PutUint32(line[i*4:], r<<16|g<<8|b)
			} else {
				binary.LittleEndian.PutUint16(line[i*2:], uint16(r>>3<<11|g>>2<<5|b>>3))
			}
		}
	}
	return dst
}

// draw writes img to the framebuffer, one pwrite per run of lines that
// differ from the last frame's (every line the first time); it returns
// how many lines it wrote. Only the picture's lines are compared: the
// rest of the screen stays black.
func (fb *Framebuffer) draw(img *image.RGBA) (int, error) {
	dst := fb.render(img)
	first, end := dst.Min.Y, dst.Max.Y
	if fb.last == nil {
		first, end = 0, fb.height
	}
	changed := func(y int) bool {
		return fb.last == nil || !bytes.Equal(fb.cur[y*fb.stride:(y+1)*fb.stride], fb.last[y*fb.stride:(y+1)*fb.stride])
	}
	written := 0
	for y := first; y < end; {
		if !changed(y) {
			y++
			continue
		}
		run := y + 1
		for run < end && changed(run) {
			run++
		}
		if _, err := fb.f.WriteAt(fb.cur[y*fb.stride:run*fb.stride], int64(y*fb.stride)); err != nil {
			return written, fmt.Errorf("writing lines %d-%d: %w", y, run-1, err)
		}
		written += run - y
		y = run
	}
	if fb.last == nil {
		// The other buffer, black around the picture as this one is.
		fb.last = make([]byte, len(fb.cur))
	}
	fb.cur, fb.last = fb.last, fb.cur
	return written, nil
}
