package qemuhost

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// lddLine matches a library ldd resolved: "libc.so.6 => /lib/.../libc.so.6
// (0x...)", or the loader's own line, "/lib64/ld-linux-x86-64.so.2 (0x...)".
var lddLine = regexp.MustCompile(`^\s*(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// Program returns Files for an emulated host of this machine's own
// architecture to run a dynamically linked program of this machine: the
// program at its path and each shared library ldd says it loads, at the
// path the loader will look for it. The emulated x86 host's initramfs
// holds static programs only (busybox, tandem); a program such as swtpm
// brings its libraries along this way.
func Program(path string) (map[string]string, error) {
	abs, err := exec.LookPath(path)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("ldd", abs).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", abs, err)
	}
	files := map[string]string{abs: abs}
	for _, l := range strings.Split(string(out), "\n") {
		m := lddLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		real, err := filepath.EvalSymlinks(m[1])
		if err != nil {
			return nil, fmt.Errorf("ldd %s: %s: %w", abs, m[1], err)
		}
		files[m[1]] = real
	}
	return files, nil
}
