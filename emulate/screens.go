package emulate

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// A board under emulation has one way out: its serial console. So the
// pictures of its guests' displays come out on it, as tandem init prints
// them (kernel parameter tandem.screens=N): each PNG between a header and
// an end line, as base64 data lines, all of them board lines:
//
//	tandem init: screen NAME 1/2 png 23456
//	tandem init: screen NAME 1/2 data iVBORw0KGgoAAAANSUhEUgAA…
//	tandem init: screen NAME 1/2 end
//
// A run collects them into Result.Screens and, with an artifacts
// directory, screen-NAME-1.png.

// screenPrefix starts every line of a screen.
const screenPrefix = "tandem init: screen "

// screenDataWidth is how many base64 characters a data line carries.
const screenDataWidth = 96

// A Screen is one picture of a guest's display.
type Screen struct {
	Guest string
	// Shot counts from 1 to Of: the pictures are two seconds apart.
	Shot, Of int
	PNG      []byte
}

// WriteScreen prints a picture of guest's display in the console form
// above.
func WriteScreen(w io.Writer, guest string, shot, of int, png []byte) error {
	id := fmt.Sprintf("%s%s %d/%d", screenPrefix, guest, shot, of)
	var b strings.Builder
	fmt.Fprintf(&b, "%s png %d\n", id, len(png))
	enc := base64.StdEncoding.EncodeToString(png)
	for len(enc) > 0 {
		n := min(screenDataWidth, len(enc))
		fmt.Fprintf(&b, "%s data %s\n", id, enc[:n])
		enc = enc[n:]
	}
	fmt.Fprintf(&b, "%s end\n", id)
	_, err := io.WriteString(w, b.String())
	return err
}

// IsScreenData reports whether l is a data line of a screen: what a
// console shown to a person leaves out.
func IsScreenData(l string) bool {
	i := strings.Index(l, screenPrefix)
	return i >= 0 && screenLine.MatchString(l[i:]) && strings.Contains(l[i:], " data ")
}

var screenLine = regexp.MustCompile(`^tandem init: screen (\S+) (\d+)/(\d+) (png (\d+)|data ([A-Za-z0-9+/=]+)|end)$`)

// screens reassembles the pictures from board lines.
type screens struct {
	open map[string]*screenBuf // "NAME SHOT": the picture under way
	done []Screen
	errs []string
}

type screenBuf struct {
	Screen
	size int
	data strings.Builder
}

// line takes one board line; it reports whether the line was a screen's.
func (s *screens) line(l string) bool {
	m := screenLine.FindStringSubmatch(strings.TrimRight(l, "\r"))
	if m == nil {
		return false
	}
	shot, _ := strconv.Atoi(m[2])
	of, _ := strconv.Atoi(m[3])
	key := m[1] + " " + m[2]
	switch {
	case m[5] != "":
		size, _ := strconv.Atoi(m[5])
		if s.open == nil {
			s.open = map[string]*screenBuf{}
		}
		s.open[key] = &screenBuf{Screen: Screen{Guest: m[1], Shot: shot, Of: of}, size: size}
	case m[6] != "":
		if b := s.open[key]; b != nil {
			b.data.WriteString(m[6])
		}
	default: // end
		b := s.open[key]
		if b == nil {
			return true
		}
		delete(s.open, key)
		png, err := base64.StdEncoding.DecodeString(b.data.String())
		switch {
		case err != nil:
			s.errs = append(s.errs, fmt.Sprintf("screen %s %d/%d: %v", b.Guest, b.Shot, b.Of, err))
		case len(png) != b.size || !bytes.HasPrefix(png, []byte("\x89PNG")):
			s.errs = append(s.errs, fmt.Sprintf("screen %s %d/%d: %d bytes of PNG, its header said %d", b.Guest, b.Shot, b.Of, len(png), b.size))
		default:
			b.PNG = png
			s.done = append(s.done, b.Screen)
		}
	}
	return true
}
