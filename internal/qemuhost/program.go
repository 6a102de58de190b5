package qemuhost

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
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

// libDirs are where an unpacked Debian arm64 root keeps shared libraries,
// searched in this order after a binary's own RUNPATH; the host gets them
// in the first, which its dynamic loader searches by default.
var libDirs = []string{"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"}

// UnpackedProgram returns Files for the emulated arm64 host to run the
// program at bin inside root, a directory Debian's arm64 packages were
// unpacked into (scripts/testdata.sh qemu-arm64, swtpm-arm64): the
// program, its ELF interpreter and every shared library it needs,
// directly or through another. A library found through a RUNPATH (swtpm
// keeps its own in /usr/lib/aarch64-linux-gnu/swtpm) goes where that
// RUNPATH names, the others into the loader's default directory.
func UnpackedProgram(root, bin string) (map[string]string, error) {
	files := map[string]string{bin: filepath.Join(root, bin)}
	todo := []string{bin}
	seen := map[string]bool{}
	for len(todo) > 0 {
		f := todo[0]
		todo = todo[1:]
		libs, interp, runpath, err := elfNeeds(filepath.Join(root, f))
		if err != nil {
			return nil, err
		}
		if interp != "" {
			files[interp] = filepath.Join(root, interp)
		}
		for _, l := range libs {
			if seen[l] {
				continue
			}
			seen[l] = true
			dirs := append(slices.Clone(runpath), libDirs...)
			dst := ""
			for _, d := range dirs {
				if _, err := os.Stat(filepath.Join(root, d, l)); err == nil {
					dst = filepath.Join(d, l)
					break
				}
			}
			if dst == "" {
				return nil, fmt.Errorf("%s needs %s, which is in none of %s under %s", bin, l, strings.Join(dirs, ", "), root)
			}
			if !slices.Contains(runpath, filepath.Dir(dst)) {
				files[filepath.Join(libDirs[0], l)] = filepath.Join(root, dst)
			} else {
				files[dst] = filepath.Join(root, dst)
			}
			todo = append(todo, dst)
		}
	}
	for dst, src := range files {
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("%s (for %s): %w", src, dst, err)
		}
	}
	return files, nil
}

// elfNeeds reads what the dynamic loader needs for the ELF file f: its
// DT_NEEDED libraries, its interpreter (PT_INTERP) and its DT_RUNPATH
// directories.
func elfNeeds(f string) (libs []string, interp string, runpath []string, err error) {
	e, err := elf.Open(f)
	if err != nil {
		return nil, "", nil, err
	}
	defer e.Close()
	if libs, err = e.ImportedLibraries(); err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", f, err)
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, "", nil, fmt.Errorf("%s: interpreter: %w", f, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	rp, err := e.DynString(elf.DT_RUNPATH)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%s: %w", f, err)
	}
	for _, s := range rp {
		runpath = append(runpath, filepath.SplitList(s)...)
	}
	return libs, interp, runpath, nil
}
