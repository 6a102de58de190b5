package main

import (
	"image"
	"image/color"
	"image/draw"
	"strings"
)

// The dashboard's font: 5×7 pixel capitals, digits and a little
// punctuation, each glyph seven rows of five columns ('#' is ink),
// drawn scaled up by whole pixels. Lower-case letters are drawn as
// capitals; a character without a glyph is drawn as a box.
const (
	glyphW, glyphH = 5, 7
	glyphAdvance   = glyphW + 1 // a blank column between characters
)

var glyphRows = map[rune]string{
	'0': ".###. #...# #..## #.#.# ##..# #...# .###.",
	'1': "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
	'2': ".###. #...# ....# ...#. ..#.. .#... #####",
	'3': "####. ....# ....# .###. ....# ....# ####.",
	'4': "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
	'5': "##### #.... ####. ....# ....# #...# .###.",
	'6': "..##. .#... #.... ####. #...# #...# .###.",
	'7': "##### ....# ...#. ..#.. .#... .#... .#...",
	'8': ".###. #...# #...# .###. #...# #...# .###.",
	'9': ".###. #...# #...# .#### ....# ...#. .##..",
	'A': ".###. #...# #...# ##### #...# #...# #...#",
	'B': "####. #...# #...# ####. #...# #...# ####.",
	'C': ".###. #...# #.... #.... #.... #...# .###.",
	'D': "####. #...# #...# #...# #...# #...# ####.",
	'E': "##### #.... #.... ####. #.... #.... #####",
	'F': "##### #.... #.... ####. #.... #.... #....",
	'G': ".###. #...# #.... #.### #...# #...# .####",
	'H': "#...# #...# #...# ##### #...# #...# #...#",
	'I': ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
	'J': "..### ...#. ...#. ...#. ...#. #..#. .##..",
	'K': "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
	'L': "#.... #.... #.... #.... #.... #.... #####",
	'M': "#...# ##.## #.#.# #.#.# #...# #...# #...#",
	'N': "#...# #...# ##..# #.#.# #..## #...# #...#",
	'O': ".###. #...# #...# #...# #...# #...# .###.",
	'P': "####. #...# #...# ####. #.... #.... #....",
	'Q': ".###. #...# #...# #...# #.#.# #..#. .##.#",
	'R': "####. #...# #...# ####. #.#.. #..#. #...#",
	'S': ".#### #.... #.... .###. ....# ....# ####.",
	'T': "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
	'U': "#...# #...# #...# #...# #...# #...# .###.",
	'V': "#...# #...# #...# #...# #...# .#.#. ..#..",
	'W': "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
	'X': "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
	'Y': "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
	'Z': "##### ....# ...#. ..#.. .#... #.... #####",
	' ': "..... ..... ..... ..... ..... ..... .....",
	'.': "..... ..... ..... ..... ..... .##.. .##..",
	',': "..... ..... ..... ..... .##.. ..#.. .#...",
	':': "..... .##.. .##.. ..... .##.. .##.. .....",
	'-': "..... ..... ..... ##### ..... ..... .....",
	'/': "....# ....# ...#. ..#.. .#... #.... #....",
	'=': "..... ..... ##### ..... ##### ..... .....",
	'%': "##..# ##..# ...#. ..#.. .#... #..## #..##",
	'(': "...#. ..#.. .#... .#... .#... ..#.. ...#.",
	')': ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
	'>': ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
	'!': "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
	'?': ".###. #...# ....# ...#. ..#.. ..... ..#..",
}

// glyphs are glyphRows as bits: glyphs[r][row] has bit (4-col) set for ink.
var glyphs = func() map[rune][glyphH]uint8 {
	m := map[rune][glyphH]uint8{}
	for r, s := range glyphRows {
		rows := strings.Fields(s)
		if len(rows) != glyphH {
			panic("font: glyph " + string(r) + " has the wrong number of rows")
		}
		var g [glyphH]uint8
		for y, row := range rows {
			if len(row) != glyphW {
				panic("font: glyph " + string(r) + " has a row of the wrong width")
			}
			for x, c := range row {
				if c == '#' {
					g[y] |= 1 << (glyphW - 1 - x)
				}
			}
		}
		m[r] = g
	}
	return m
}()

// boxGlyph is drawn for a character the font lacks.
var boxGlyph = [glyphH]uint8{0x1f, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1f}

// textWidth is how wide s is drawn at scale.
func textWidth(s string, scale int) int {
	n := len([]rune(s))
	if n == 0 {
		return 0
	}
	return (n*glyphAdvance - 1) * scale
}

// drawText draws s with its top left corner at p, each font pixel a
// scale×scale square of c.
func drawText(dst draw.Image, p image.Point, s string, scale int, c color.Color) {
	src := image.NewUniform(c)
	for i, r := range []rune(strings.ToUpper(s)) {
		g, ok := glyphs[r]
		if !ok {
			g = boxGlyph
		}
		x0 := p.X + i*glyphAdvance*scale
		for y := 0; y < glyphH; y++ {
			for x := 0; x < glyphW; x++ {
				if g[y]&(1<<(glyphW-1-x)) != 0 {
					px := image.Rect(x0+x*scale, p.Y+y*scale, x0+(x+1)*scale, p.Y+(y+1)*scale)
					draw.Draw(dst, px, src, image.Point{}, draw.Src)
				}
			}
		}
	}
}
