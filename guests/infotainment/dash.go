package main

import (
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tandem-hv/tandem/guests/internal/fbdev"
	"github.com/tandem-hv/tandem/guests/internal/vehicle"
)

// The dashboard: the vehicle state drawn on the guest's framebuffer
// (/dev/fb0, from virtio_gpu's framebuffer emulation) framePeriod apart,
// two pages a touch or a key switches between. When no message has come
// for staleAfter, it says so (the control guest is restarting, or the
// channel is down): at most staleAfter+framePeriod after the last one.
const (
	fbPath      = "/dev/fb0"
	framePeriod = 100 * time.Millisecond
	// defaultStale is staleAfter's default (tandem.stale sets it).
	defaultStale = 500 * time.Millisecond
	// fbWait is how long the dashboard waits for the framebuffer: DRM
	// registers it once its driver has probed the display.
	fbWait = 30 * time.Second
	pages  = 2
	// maxRPM is the rev counter's full scale.
	maxRPM = 8000
)

// view is what one frame shows.
type view struct {
	state                          vehicle.State
	received, faults               uint64
	crc, repeated, reordered, lost uint64
	connections                    uint64
	have                           bool          // a message has come
	since                          time.Duration // since the last good message
	page                           int
	uptime                         time.Duration
}

// snapshot is the view of c at now.
func (c *counters) snapshot(now time.Time, page int, up time.Duration) view {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := view{state: c.last, received: c.received, faults: c.faults(), crc: c.crc, repeated: c.repeated,
		reordered: c.reorder, lost: c.lost, connections: c.conns, have: !c.lastAt.IsZero(), page: page, uptime: up}
	if v.have {
		// A message that came while this frame waited for the lock (the
		// report holds it while it prints, slowly on an emulated board)
		// came after now: it is no older than 0.
		v.since = max(0, now.Sub(c.lastAt))
	}
	return v
}

// stale reports whether the messages have stopped.
func (v view) stale() bool { return !v.have || v.since >= staleAfter }

// staleAfter is how long without a message the dashboard shows the link
// down: defaultStale, or tandem.stale (set before the dashboard starts).
var staleAfter = defaultStale

// parseStale reads tandem.stale: a duration from framePeriod to a
// minute; anything else keeps the default.
func parseStale(arg string) time.Duration {
	d, err := time.ParseDuration(arg)
	if err != nil || d < framePeriod || d > time.Minute {
		return defaultStale
	}
	return d
}

// Colours.
var (
	background = color.RGBA{0x10, 0x14, 0x1c, 0xff}
	panel      = color.RGBA{0x1c, 0x24, 0x32, 0xff}
	ink        = color.RGBA{0xf0, 0xf0, 0xf0, 0xff}
	dim        = color.RGBA{0x70, 0x78, 0x88, 0xff}
	accent     = color.RGBA{0x40, 0xc0, 0xff, 0xff}
	good       = color.RGBA{0x20, 0x90, 0x40, 0xff}
	alarm      = color.RGBA{0xc0, 0x20, 0x20, 0xff}
	amber      = color.RGBA{0xff, 0xb0, 0x20, 0xff}
)

func fill(img draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// render draws v onto img, laid out for img's size.
func render(img *image.RGBA, v view) {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	u := max(1, min(w/320, h/180)) // the layout's unit: 4 pixels at 1280×720
	fill(img, b, background)
	at := func(x, y int) image.Point { return b.Min.Add(image.Pt(x, y)) }

	// Title bar.
	fill(img, image.Rectangle{b.Min, at(w, 12*u)}, panel)
	drawText(img, at(4*u, 3*u), "Tandem infotainment", u, accent)
	name := []string{"drive", "channel"}[v.page%pages]
	label := fmt.Sprintf("%s  %d/%d", name, v.page%pages+1, pages)
	drawText(img, at(w-4*u-textWidth(label, u), 3*u), label, u, ink)

	valueInk := color.Color(ink)
	if v.stale() {
		valueInk = dim
	}
	top := 20 * u
	switch v.page % pages {
	case 0:
		speed := fmt.Sprintf("%5.1f", float64(v.state.Speed)/100)
		drawText(img, at(8*u, top), speed, 6*u, valueInk)
		drawText(img, at(8*u+textWidth(speed, 6*u)+4*u, top+35*u), "km/h", u, dim)
		gear := strconv.Itoa(int(v.state.Gear))
		drawText(img, at(w-8*u-textWidth(gear, 6*u), top), gear, 6*u, valueInk)
		drawText(img, at(w-8*u-textWidth("gear", u), top+45*u), "gear", u, dim)
		// The rev counter: a bar to maxRPM, amber beyond 80%.
		bar := image.Rectangle{at(8*u, top+62*u), at(w-8*u, top+74*u)}
		fill(img, bar, panel)
		n := min(int(v.state.RPM), maxRPM)
		lit := bar
		lit.Max.X = bar.Min.X + bar.Dx()*n/maxRPM
		c := color.Color(accent)
		if n > maxRPM*8/10 {
			c = amber
		}
		if v.stale() {
			c = dim
		}
		fill(img, lit, c)
		drawText(img, at(8*u, top+78*u), fmt.Sprintf("%d rpm", v.state.RPM), u, valueInk)
		seq := fmt.Sprintf("seq %d  faults %d", v.state.Seq, v.faults)
		drawText(img, at(w-8*u-textWidth(seq, u), top+78*u), seq, u, valueInk)
	default:
		lines := []string{
			fmt.Sprintf("received     %d", v.received),
			fmt.Sprintf("sequence     %d", v.state.Seq),
			fmt.Sprintf("faults       %d", v.faults),
			fmt.Sprintf("  crc %d  repeated %d  reordered %d  lost %d", v.crc, v.repeated, v.reordered, v.lost),
			fmt.Sprintf("connections  %d", v.connections),
			fmt.Sprintf("uptime       %.0f s", v.uptime.Seconds()),
		}
		for i, l := range lines {
			c := valueInk
			if i == 2 && v.faults > 0 {
				c = amber
			}
			drawText(img, at(8*u, top+i*11*u), l, u, c)
		}
	}

	// Status bar: the link's state, how long since the last message.
	bar := image.Rectangle{at(0, h-12*u), at(w, h)}
	var status string
	switch {
	case !v.have:
		fill(img, bar, alarm)
		status = "no messages yet: waiting for the control guest"
	case v.stale():
		fill(img, bar, alarm)
		status = fmt.Sprintf("no messages for %.1f s: control guest restarting?", v.since.Seconds())
	default:
		fill(img, bar, good)
		status = fmt.Sprintf("link ok  last message %.2f s ago", v.since.Seconds())
	}
	drawText(img, at(4*u, h-9*u-u/2), status, u, ink)
	hint := "touch: next page"
	if tw := textWidth(hint, u); 4*u+textWidth(status, u)+8*u+tw < w {
		drawText(img, at(w-4*u-tw, h-9*u-u/2), hint, u, ink)
	}
}

// dashboard draws the dashboard on the framebuffer, forever; it returns
// if there is none.
func dashboard(c *counters, start time.Time) error {
	var fb *fbdev.Device
	for t := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var err error
		if fb, err = fbdev.Open(fbPath); err == nil {
			break
		}
		if time.Since(t) > fbWait {
			return err
		}
	}
	defer fb.Close()
	fmt.Printf("TANDEM-INFO display fb=%s size=%dx%d bits=%d\n", fbPath, fb.Width, fb.Height, fb.Bits)
	var page atomic.Int32
	inputs := map[string]bool{}
	img := image.NewRGBA(image.Rect(0, 0, fb.Width, fb.Height))
	tick := time.NewTicker(framePeriod)
	for n := 0; ; n++ {
		if n%10 == 0 { // input devices may come after the framebuffer
			watchInputs(inputs, &page)
		}
		<-tick.C
		// Not the tick's own time: a slow frame leaves a stale tick in
		// the channel, which would put the last message in the future.
		now := time.Now()
		render(img, c.snapshot(now, int(page.Load()), now.Sub(start)))
		if _, err := fb.Draw(img); err != nil {
			return err
		}
	}
}

// hasDisplay reports whether the kernel found a display (a DRM card).
func hasDisplay() bool {
	cards, _ := filepath.Glob("/sys/class/drm/card[0-9]*")
	return len(cards) > 0
}

// watchInputs starts a reader for each input device not yet in seen.
func watchInputs(seen map[string]bool, page *atomic.Int32) {
	devs, _ := filepath.Glob("/dev/input/event*")
	for _, d := range devs {
		if !seen[d] {
			seen[d] = true
			go readInput(d, page)
		}
	}
}

// Evdev (include/uapi/linux/input.h, input-event-codes.h).
const (
	evKey      = 0x01
	keyPressed = 1
)

// inputEventSize is sizeof(struct input_event): a struct timeval (two
// longs), type and code (__u16), value (__s32).
var inputEventSize = 2*strconv.IntSize/8 + 8

// pressed reports whether ev, one struct input_event, is a key or a
// touch (BTN_TOUCH) going down.
func pressed(ev []byte) bool {
	tv := inputEventSize - 8
	typ := binary.NativeEndian.Uint16(ev[tv:])
	value := int32(binary.NativeEndian.Uint32(ev[tv+4:]))
	return typ == evKey && value == keyPressed
}

// readInput turns the page on each touch or key press of the evdev
// device at path.
func readInput(path string, page *atomic.Int32) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	buf := make([]byte, 64*inputEventSize)
	for {
		n, err := f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+inputEventSize <= n; off += inputEventSize {
			if pressed(buf[off : off+inputEventSize]) {
				page.Store((page.Load() + 1) % pages)
			}
		}
	}
}
