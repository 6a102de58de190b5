package testpattern

import "testing"

// TestNeighbouringBlocksDiffer: across every block edge of a 1280×720
// picture each channel changes, and the row encoding is B, G, R, X.
func TestNeighbouringBlocksDiffer(t *testing.T) {
	for y := 0; y < 720; y += Block {
		for x := 0; x < 1280; x += Block {
			r, g, b := Pixel(x, y)
			for _, n := range [][2]int{{x + Block, y}, {x, y + Block}} {
				nr, ng, nb := Pixel(n[0], n[1])
				if nr == r || ng == g || nb == b {
					t.Fatalf("block at (%d, %d) = %d,%d,%d and its neighbour at %v = %d,%d,%d share a channel", x, y, r, g, b, n, nr, ng, nb)
				}
			}
		}
	}
	row := XRGB8888Row(nil, 17, 2)
	r, g, b := Pixel(1, 17)
	if len(row) != 8 || row[4] != b || row[5] != g || row[6] != r || row[7] != 0 {
		t.Errorf("XRGB8888Row() = %v, want pixel 1 as %d,%d,%d,0", row, b, g, r)
	}
}
