package system

import (
	"os"
	"path/filepath"
	"strings"
)

// vtconsoleDir is where the kernel lists the drivers its virtual
// terminals draw with (Documentation/driver-api/console.rst).
const vtconsoleDir = "/sys/class/vtconsole"

// releaseBoardConsole unbinds the kernel's framebuffer console (fbcon)
// from the virtual terminals, listed under dir, so that the text console,
// its cursor blinking, no longer draws on the board's display: the guest
// shown there (display.board) owns the screen. The terminals fall back
// to the dummy console; the serial console is untouched. A kernel
// without fbcon, or that refuses, leaves a line in the log and the guest
// is shown all the same.
func (s *Supervisor) releaseBoardConsole(dir, guest string) {
	released, err := unbindFramebufferConsoles(dir)
	switch {
	case err != nil:
		s.logf("board display: the kernel's framebuffer console still draws on it: %v", err)
	case len(released) > 0:
		s.logf("board display: the kernel's framebuffer console (%s) released it: %s owns the screen", strings.Join(released, ", "), guest)
	}
}

// unbindFramebufferConsoles writes 0 to the bind file of each console
// driver under dir whose name says it draws on a framebuffer ("frame
// buffer device"), when bound, and returns their directories' names.
func unbindFramebufferConsoles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil // no virtual terminals: nothing draws
		}
		return nil, err
	}
	var released []string
	for _, e := range ents {
		d := filepath.Join(dir, e.Name())
		name, err := os.ReadFile(filepath.Join(d, "name"))
		if err != nil || !strings.Contains(string(name), "frame buffer device") {
			continue
		}
		bind := filepath.Join(d, "bind")
		b, err := os.ReadFile(bind)
		if err != nil {
			return released, err
		}
		if strings.TrimSpace(string(b)) != "1" {
			continue
		}
		if err := os.WriteFile(bind, []byte("0\n"), 0); err != nil {
			return released, err
		}
		released = append(released, e.Name())
	}
	return released, nil
}
