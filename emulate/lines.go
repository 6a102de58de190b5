package emulate

import (
	"bytes"
	"strings"
	"sync"
)

// Lines is a console writer that hands each whole line to a function,
// without its line end ("\r\n" or "\n"); a partial line waits for the
// rest, or for Flush.
type Lines struct {
	line    func(string)
	mu      sync.Mutex // protects partial and serialises calls to line
	partial []byte
}

// NewLines returns a writer that calls line for each line written.
func NewLines(line func(string)) *Lines { return &Lines{line: line} }

func (l *Lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		s := strings.TrimRight(string(l.partial[:i]), "\r")
		l.partial = l.partial[i+1:]
		l.line(s)
	}
}

// Flush hands over a last line that had no line end.
func (l *Lines) Flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.partial) > 0 {
		l.line(strings.TrimRight(string(l.partial), "\r"))
	}
	l.partial = nil
}

// BoardConsole is the name of the board's own console: the serial
// console's lines that are not a guest's.
const BoardConsole = "board"

// SplitLine says whose console a line of the board's serial console is.
// The supervisor prints each guest's console line as "NAME | TEXT"
// (system/supervisor.go); every other line is the board's own (U-Boot,
// the host kernel, tandem init, the supervisor). guests are the names the
// image's manifest gives; with none known, any NAME a manifest may use
// counts.
func SplitLine(l string, guests []string) (console, text string) {
	name, text, ok := strings.Cut(l, " | ")
	if !ok || !validGuestName(name) {
		return BoardConsole, l
	}
	if len(guests) > 0 {
		known := false
		for _, g := range guests {
			known = known || g == name
		}
		if !known {
			return BoardConsole, l
		}
	}
	return name, text
}

// validGuestName mirrors the manifest's rule for a guest's name
// (system/manifest_decode.go): 1 to 32 letters, digits, '-' or '_'.
func validGuestName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// vmmLine reports whether a guest console's line is the VMM's own
// ("tandem: guest ended: …"), which may quote the guest's last words:
// an expectation that a guest prints something counts only the guest's
// own lines.
func vmmLine(text string) bool { return strings.HasPrefix(text, "tandem:") }
