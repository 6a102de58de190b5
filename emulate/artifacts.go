package emulate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// An artifacts directory (--artifacts DIR) keeps what a CI job uploads
// after a run:
//
//	console.log         the serial console as it came (the board's lines and every guest's, prefixed)
//	board.log           the board's own lines: U-Boot, the host kernel, tandem init, the supervisor
//	guests/NAME.log     each guest's console, without its prefix
//	timeline.txt        when each boot stage, guest console, expectation and step came, from QEMU's start
//	screen-NAME-N.png   the pictures of guest NAME's display the board printed (tandem.screens=N)
type artifacts struct {
	dir    string
	serial *os.File

	mu     sync.Mutex // protects the fields below
	logs   map[string]*os.File
	errors []error
}

// openArtifacts creates dir and its console log; a nil *artifacts (no
// dir) keeps nothing.
func openArtifacts(dir string) (*artifacts, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "guests"), 0o755); err != nil {
		return nil, fmt.Errorf("--artifacts: %w", err)
	}
	serial, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		return nil, fmt.Errorf("--artifacts: %w", err)
	}
	return &artifacts{dir: dir, serial: serial, logs: map[string]*os.File{}}, nil
}

// line appends a line's text to its console's log.
func (a *artifacts) line(console, text string) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, ok := a.logs[console]
	if !ok {
		name := "board.log"
		if console != BoardConsole {
			name = filepath.Join("guests", console+".log")
		}
		var err error
		if f, err = os.Create(filepath.Join(a.dir, name)); err != nil {
			a.errors = append(a.errors, fmt.Errorf("--artifacts: %w", err))
		}
		a.logs[console] = f // nil after an error: that log is not kept
	}
	if f != nil {
		if _, err := io.WriteString(f, text+"\n"); err != nil {
			a.errors = append(a.errors, fmt.Errorf("--artifacts: %s: %w", f.Name(), err))
			a.logs[console] = nil
		}
	}
}

// close writes the timeline and closes the logs; it returns the first
// error met while keeping them.
func (a *artifacts) close(timeline []string) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	errs := a.errors
	errs = append(errs, a.serial.Close())
	for _, f := range a.logs {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	tl := strings.Join(timeline, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(a.dir, "timeline.txt"), []byte(tl), 0o644); err != nil {
		errs = append(errs, fmt.Errorf("--artifacts: %w", err))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// screen writes a picture of a guest's display.
func (a *artifacts) screen(sc Screen) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	name := fmt.Sprintf("screen-%s-%d.png", sc.Guest, sc.Shot)
	if sc.Of == 0 {
		// Taken on request (a test file's screenshot step).
		name = fmt.Sprintf("screenshot-%s-%d.png", sc.Guest, sc.Shot)
	}
	if err := os.WriteFile(filepath.Join(a.dir, name), sc.PNG, 0o644); err != nil {
		a.errors = append(a.errors, fmt.Errorf("--artifacts: %w", err))
	}
}
