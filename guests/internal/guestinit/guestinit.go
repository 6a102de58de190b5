// Package guestinit is what the demo guests' init does before the demo
// runs: mount the pseudo file systems, load the kernel modules the image
// builder listed, and read tandem.* words from the command line. Like
// every guest program it uses the standard library and x/sys only.
package guestinit

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// moduleList names the modules to load, one path a line, dependencies
// first; the image builder writes it.
const moduleList = "/etc/tandem-modules"

// MODULE_INIT_COMPRESSED_FILE (include/uapi/linux/module.h).
const moduleInitCompressedFile = 4

// Boot mounts the pseudo file systems and loads the listed modules.
func Boot() error {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	f, err := os.Open(moduleList)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		m, err := os.Open(p)
		if err != nil {
			return err
		}
		flags := 0
		if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
			flags = moduleInitCompressedFile
		}
		err = unix.FinitModule(int(m.Fd()), "", flags)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading %s: %w", p, err)
		}
	}
	return sc.Err()
}

// CmdlineArgs returns the tandem.KEY=VALUE words of the kernel command
// line.
func CmdlineArgs() map[string]string {
	out := map[string]string{}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, w := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "tandem.") {
			out[strings.TrimPrefix(k, "tandem.")] = v
		}
	}
	return out
}
