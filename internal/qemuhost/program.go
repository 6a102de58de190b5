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

// libDirs are where an unpacked Debian root keeps shared libraries, by
// the ELF machine of the program, searched in this order after a
// binary's own RUNPATH; the program's host gets them in the first, which
// its dynamic loader searches by default.
var libDirs = map[elf.Machine][]string{
	elf.EM_AARCH64: {"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"},
	elf.EM_X86_64:  {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"},
}

// UnpackedProgram returns Files for a host or guest of the program's
// architecture to run the program at bin inside root, a directory
// Debian's arm64 or amd64 packages were unpacked into (scripts/testdata.sh
// qemu-arm64, swtpm-arm64, rt-tests-amd64): the program, its ELF
// interpreter and every shared library it needs, directly or through
// another. A library found through a RUNPATH (swtpm keeps its own in
// /usr/lib/aarch64-linux-gnu/swtpm) goes where that RUNPATH names, the
// others into the loader's default directory. A symbolic link in root
// is followed inside root, an absolute one too (libc6:amd64's
// /lib64/ld-linux-x86-64.so.2 names /lib/x86_64-linux-gnu/...): no file
// of the machine it runs on stands in for the package's.
func UnpackedProgram(root, bin string) (map[string]string, error) {
	src, err := inRoot(root, bin)
	if err != nil {
		return nil, err
	}
	files := map[string]string{bin: src}
	todo := []string{bin}
	seen := map[string]bool{}
	for len(todo) > 0 {
		f := todo[0]
		todo = todo[1:]
		src, err := inRoot(root, f)
		if err != nil {
			return nil, err
		}
		libs, machine, interp, runpath, err := elfNeeds(src)
		if err != nil {
			return nil, err
		}
		ld, ok := libDirs[machine]
		if !ok {
			return nil, fmt.Errorf("%s under %s: ELF machine %v, want aarch64 or x86-64", f, root, machine)
		}
		if interp != "" {
			if files[interp], err = inRoot(root, interp); err != nil {
				return nil, fmt.Errorf("%s's interpreter: %w", f, err)
			}
		}
		for _, l := range libs {
			if seen[l] {
				continue
			}
			seen[l] = true
			dirs := append(slices.Clone(runpath), ld...)
			dst, lsrc := "", ""
			for _, d := range dirs {
				if s, err := inRoot(root, filepath.Join(d, l)); err == nil {
					dst, lsrc = filepath.Join(d, l), s
					break
				}
			}
			if dst == "" {
				return nil, fmt.Errorf("%s needs %s, which is in none of %s under %s", bin, l, strings.Join(dirs, ", "), root)
			}
			if !slices.Contains(runpath, filepath.Dir(dst)) {
				files[filepath.Join(ld[0], l)] = lsrc
			} else {
				files[dst] = lsrc
			}
			todo = append(todo, dst)
		}
	}
	return files, nil
}

// inRoot returns the file that path p names inside root, following
// symbolic links as if root were /: an absolute link's target starts
// at root, and ".." stops there. It fails when the file is missing.
func inRoot(root, p string) (string, error) {
	todo := strings.Split(strings.Trim(filepath.ToSlash(p), "/"), "/")
	var cur []string // components below root, links resolved
	for links := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		full := filepath.Join(append([]string{root}, append(cur, c)...)...)
		fi, err := os.Lstat(full)
		if err != nil {
			return "", fmt.Errorf("%s under %s: %w", p, root, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			cur = append(cur, c)
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("%s under %s: too many symbolic links", p, root)
		}
		target, err := os.Readlink(full)
		if err != nil {
			return "", fmt.Errorf("%s under %s: %w", p, root, err)
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		todo = append(strings.Split(strings.Trim(target, "/"), "/"), todo...)
	}
	return filepath.Join(append([]string{root}, cur...)...), nil
}

// elfNeeds reads what the dynamic loader needs for the ELF file f: its
// DT_NEEDED libraries, its machine, its interpreter (PT_INTERP) and its
// DT_RUNPATH directories.
func elfNeeds(f string) (libs []string, machine elf.Machine, interp string, runpath []string, err error) {
	e, err := elf.Open(f)
	if err != nil {
		return nil, 0, "", nil, err
	}
	machine = e.Machine
	defer e.Close()
	if libs, err = e.ImportedLibraries(); err != nil {
		return nil, 0, "", nil, fmt.Errorf("%s: %w", f, err)
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return nil, 0, "", nil, fmt.Errorf("%s: interpreter: %w", f, err)
			}
			interp = strings.TrimRight(string(b), "\x00")
		}
	}
	rp, err := e.DynString(elf.DT_RUNPATH)
	if err != nil {
		return nil, 0, "", nil, fmt.Errorf("%s: %w", f, err)
	}
	for _, s := range rp {
		runpath = append(runpath, filepath.SplitList(s)...)
	}
	return libs, machine, interp, runpath, nil
}
