package main

// boot.go is the same in guests/control and guests/infotainment: the
// little an init must do before the demo runs. Guests import the standard
// library and x/sys only, so it is not a shared package.

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

// boot mounts the pseudo file systems and loads the listed modules.
func boot() error {
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

// cmdlineArgs returns the tandem.KEY=VALUE words of the kernel command
// line.
func cmdlineArgs() map[string]string {
	out := map[string]string{}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, w := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "tandem.") {
			out[strings.TrimPrefix(k, "tandem.")] = v
		}
	}
	return out
}
