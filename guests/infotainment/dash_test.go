package main

import (
	"encoding/binary"
	"image"
	"image/color"
	"strconv"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/guests/internal/vehicle"
)

func frame(w, h int, v view) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	render(img, v)
	return img
}

func differing(a, b *image.RGBA) int {
	n := 0
	for i := 0; i < len(a.Pix); i += 4 {
		if a.Pix[i] != b.Pix[i] || a.Pix[i+1] != b.Pix[i+1] || a.Pix[i+2] != b.Pix[i+2] {
			n++
		}
	}
	return n
}

// pixelIn reports whether any pixel of r in img is c.
func pixelIn(img *image.RGBA, r image.Rectangle, c color.RGBA) bool {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if img.RGBAAt(x, y) == c {
				return true
			}
		}
	}
	return false
}

var live = view{state: vehicle.State{Seq: 1234, Speed: 8765, RPM: 3100, Gear: 4}, received: 1235, connections: 1,
	have: true, since: 20 * time.Millisecond, uptime: 9 * time.Second}

// TestDashboardShowsStateAndStaleness: at each display size the demo and
// tests use, the frame is drawn (the screen is not one colour), each
// value it shows changes it, and the status bar is green while messages
// come and red once none came for staleAfter, or none ever came.
func TestDashboardShowsStateAndStaleness(t *testing.T) {
	for _, size := range []image.Point{{1280, 720}, {640, 360}, {800, 600}} {
		w, h := size.X, size.Y
		t.Run(strconv.Itoa(w)+"x"+strconv.Itoa(h), func(t *testing.T) {
			base := frame(w, h, live)
			if n := differing(base, frame(w, h, view{})); n < w*h/100 {
				t.Errorf("a live frame differs from an empty one in %d pixels", n)
			}
			changes := []struct {
				name   string
				change func(*view)
			}{
				{"speed", func(v *view) { v.state.Speed = 1000 }},
				{"rpm", func(v *view) { v.state.RPM = 7000 }},
				{"gear", func(v *view) { v.state.Gear = 5 }},
				{"sequence", func(v *view) { v.state.Seq = 99 }},
				{"faults", func(v *view) { v.faults = 3 }},
				{"time since the last message", func(v *view) { v.since = 300 * time.Millisecond }},
				{"page", func(v *view) { v.page = 1 }},
			}
			for _, c := range changes {
				v := live
				c.change(&v)
				if differing(base, frame(w, h, v)) == 0 {
					t.Errorf("changing the %s does not change the frame", c.name)
				}
			}
			u := max(1, min(w/320, h/180))
			status := image.Rect(0, h-12*u, w, h)
			tests := []struct {
				name  string
				since time.Duration
				have  bool
				want  color.RGBA
			}{
				{"messages coming", 50 * time.Millisecond, true, good},
				{"just under staleAfter", staleAfter - time.Millisecond, true, good},
				{"stopped", staleAfter, true, alarm},
				{"stopped long ago", 5 * time.Second, true, alarm},
				{"never came", 0, false, alarm},
			}
			for _, tt := range tests {
				v := live
				v.since, v.have = tt.since, tt.have
				img := frame(w, h, v)
				if !pixelIn(img, status, tt.want) {
					t.Errorf("%s: status bar lacks colour %v", tt.name, tt.want)
				}
				other := good
				if tt.want == good {
					other = alarm
				}
				if pixelIn(img, status, other) {
					t.Errorf("%s: status bar shows colour %v too", tt.name, other)
				}
			}
		})
	}
}

// TestStaleWithinASecond: messages that stop show on the screen within
// a second: the stale threshold and a frame's period add up to less.
func TestStaleWithinASecond(t *testing.T) {
	if defaultStale+framePeriod >= time.Second {
		t.Errorf("staleAfter %v + framePeriod %v: the screen may say the messages stopped only after a second", defaultStale, framePeriod)
	}
	var c counters
	start := time.Now()
	c.lastAt = start
	for _, tt := range []struct {
		after time.Duration
		stale bool
	}{{0, false}, {staleAfter / 2, false}, {staleAfter, true}, {time.Second, true}} {
		if got := c.snapshot(start.Add(tt.after), 0, 0).stale(); got != tt.stale {
			t.Errorf("%v after the last message: stale() = %v, want %v", tt.after, got, tt.stale)
		}
	}
}

// TestPressedEvents: a key or touch going down turns the page; its
// release, a repeat, and other event types do not.
func TestPressedEvents(t *testing.T) {
	ev := func(typ, code uint16, value int32) []byte {
		b := make([]byte, inputEventSize)
		tv := inputEventSize - 8
		binary.NativeEndian.PutUint16(b[tv:], typ)
		binary.NativeEndian.PutUint16(b[tv+2:], code)
		binary.NativeEndian.PutUint32(b[tv+4:], uint32(value))
		return b
	}
	const (
		btnTouch = 0x14a
		keyA     = 30
		evAbs    = 0x03
		evSyn    = 0x00
	)
	tests := []struct {
		name string
		ev   []byte
		want bool
	}{
		{"touch down", ev(evKey, btnTouch, 1), true},
		{"touch up", ev(evKey, btnTouch, 0), false},
		{"key down", ev(evKey, keyA, 1), true},
		{"key repeat", ev(evKey, keyA, 2), false},
		{"absolute x", ev(evAbs, 0, 1), false},
		{"sync", ev(evSyn, 0, 0), false},
	}
	for _, tt := range tests {
		if got := pressed(tt.ev); got != tt.want {
			t.Errorf("%s: pressed() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFontGlyphs: every character the dashboard draws has a glyph, and
// glyphs are distinct (no two characters look alike).
func TestFontGlyphs(t *testing.T) {
	seen := map[[glyphH]uint8]rune{}
	for r, g := range glyphs {
		if o, ok := seen[g]; ok {
			t.Errorf("glyphs %q and %q are the same", r, o)
		}
		seen[g] = r
	}
	for _, r := range "TANDEM INFOTAINMENT DRIVE CHANNEL 0123456789 KM/H RPM GEAR SEQ FAULTS LINK OK: NO MESSAGES? -.%" {
		if _, ok := glyphs[r]; !ok {
			t.Errorf("no glyph for %q", r)
		}
	}
}

// TestParseStale checks tandem.stale: a duration within bounds, else the
// default.
func TestParseStale(t *testing.T) {
	tests := []struct {
		arg  string
		want time.Duration
	}{
		{"", defaultStale},
		{"2s", 2 * time.Second},
		{"100ms", 100 * time.Millisecond},
		{"50ms", defaultStale},
		{"2m", defaultStale},
		{"soon", defaultStale},
		{"-1s", defaultStale},
	}
	for _, tt := range tests {
		if got := parseStale(tt.arg); got != tt.want {
			t.Errorf("parseStale(%q) = %v, want %v", tt.arg, got, tt.want)
		}
	}
}
