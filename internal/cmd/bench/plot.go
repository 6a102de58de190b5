package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// canvas is a white picture with a few drawing helpers: filled boxes,
// lines and text in a fixed 7x13 font. It is all the plots need.
type canvas struct{ img *image.RGBA }

func newCanvas(w, h int) *canvas {
	c := &canvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
	draw.Draw(c.img, c.img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	return c
}

func (c *canvas) box(x0, y0, x1, y1 int, col color.Color) {
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
}

func (c *canvas) hline(x0, x1, y int, col color.Color) { c.box(x0, y, x1+1, y+1, col) }
func (c *canvas) vline(x, y0, y1 int, col color.Color) { c.box(x, y0, x+1, y1+1, col) }

// text writes s with its baseline at y. The font is ASCII: µ is written u.
func (c *canvas) text(x, y int, s string, col color.Color) {
	s = strings.NewReplacer("µ", "u", "→", "->", "−", "-", "÷", "/").Replace(s)
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// textWidth is s's width in pixels.
func textWidth(s string) int { return font.MeasureString(basicfont.Face7x13, s).Ceil() }

func (c *canvas) save(file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var (
	black     = color.RGBA{0, 0, 0, 255}
	lightGrey = color.RGBA{230, 230, 230, 255}
	tandemCol = color.RGBA{31, 119, 180, 255}
	peerCol   = color.RGBA{255, 127, 14, 255}
	// spanCols colour a timeline's steps in turn.
	spanCols = []color.RGBA{
		{31, 119, 180, 255}, {44, 160, 44, 255}, {214, 39, 40, 255}, {148, 103, 189, 255},
		{140, 86, 75, 255}, {227, 119, 194, 255}, {127, 127, 127, 255}, {188, 189, 34, 255},
		{23, 190, 207, 255}, {174, 199, 232, 255}, {255, 152, 150, 255}, {197, 176, 213, 255},
		{255, 187, 120, 255}, {152, 223, 138, 255}, {196, 156, 148, 255}, {247, 182, 210, 255},
		{219, 219, 141, 255}, {158, 218, 229, 255}, {57, 59, 121, 255}, {99, 121, 57, 255},
	}
)

// niceStep is a round tick spacing giving about n ticks up to max.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

// axis draws an x axis from 0 to max under the plot area, with ticks and
// the unit, and returns the function placing a value on it.
func (c *canvas) axis(x0, x1, y int, max float64, unit string) func(float64) int {
	step := niceStep(max, 6)
	max = math.Ceil(max/step) * step
	pos := func(v float64) int { return x0 + int(float64(x1-x0)*v/max) }
	c.hline(x0, x1, y, black)
	for v := 0.0; v <= max+step/2; v += step {
		x := pos(v)
		c.vline(x, y, y+4, black)
		l := trimFloat(v)
		c.text(x-textWidth(l)/2, y+17, l, black)
	}
	c.text(x1-textWidth(unit), y+32, unit, black)
	return pos
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

// timelineBar is one VMM's boot, drawn as a bar of consecutive steps.
type timelineBar struct {
	Label string
	Spans []plotSpan
}

// plotSpan is one step of a bar, in seconds from the VMM's start.
type plotSpan struct {
	Name       string
	Start, End float64
}

// drawTimelines draws one bar per boot: Tandem's steps in colour with a
// legend, a peer's single span beside it.
func drawTimelines(file, title string, bars []timelineBar) error {
	names := []string{}
	seen := map[string]int{}
	max := 0.0
	for _, b := range bars {
		for _, s := range b.Spans {
			if _, ok := seen[s.Name]; !ok {
				seen[s.Name] = len(names)
				names = append(names, s.Name)
			}
			max = math.Max(max, s.End)
		}
	}
	const left, right, barH, gap = 200, 40, 26, 14
	w := 1100
	top := 40
	h := top + len(bars)*(barH+gap) + 50 + (len(names)+1)/2*18 + 20
	c := newCanvas(w, h)
	c.text(10, 20, title, black)
	y := top
	for _, b := range bars {
		c.text(10, y+barH/2+4, b.Label, black)
		y += barH + gap
	}
	pos := c.axis(left, w-right, y, max, "seconds from the VMM's start")
	y = top
	for _, b := range bars {
		for _, s := range b.Spans {
			x0, x1 := pos(s.Start), pos(s.End)
			if x1 <= x0 {
				x1 = x0 + 1
			}
			c.box(x0, y, x1, y+barH, spanCols[seen[s.Name]%len(spanCols)])
		}
		y += barH + gap
	}
	ly := y + 50
	for i, n := range names {
		x := 10 + (i%2)*(w/2)
		yy := ly + (i/2)*18
		c.box(x, yy-10, x+12, yy+2, spanCols[i%len(spanCols)])
		c.text(x+18, yy, n, black)
	}
	return c.save(file)
}

// strip is one metric's rounds, Tandem's and the peer's, drawn as dots on
// a shared axis with each side's median marked.
type strip struct {
	Title        string
	Unit         string
	Tandem, Peer []float64
	PeerName     string
}

// drawStrips draws one panel per metric.
func drawStrips(file, title string, strips []strip) error {
	const w, panelH, left, right = 1100, 110, 140, 40
	c := newCanvas(w, 40+len(strips)*panelH)
	c.text(10, 20, title, black)
	for i, s := range strips {
		y0 := 40 + i*panelH
		c.text(10, y0+14, s.Title, black)
		max := 0.0
		for _, v := range append(append([]float64{}, s.Tandem...), s.Peer...) {
			max = math.Max(max, v)
		}
		pos := c.axis(left, w-right, y0+60, max*1.05, s.Unit)
		for j, side := range []struct {
			label string
			vals  []float64
			col   color.Color
		}{{"Tandem", s.Tandem, tandemCol}, {s.PeerName, s.Peer, peerCol}} {
			y := y0 + 26 + j*18
			c.text(10, y+4, side.label, side.col)
			for _, v := range side.vals {
				x := pos(v)
				c.box(x-3, y-3, x+4, y+4, side.col)
			}
			if len(side.vals) > 0 {
				m := pos(median(side.vals))
				c.box(m-1, y-8, m+2, y+9, black)
			}
		}
		c.hline(10, w-10, y0+panelH-6, lightGrey)
	}
	return c.save(file)
}
