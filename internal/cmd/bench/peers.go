package main

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// peer is the QEMU a comparison runs beside Tandem in one emulated host.
type peer struct {
	name  string
	files map[string]string // where each file goes in the host
	bin   string            // the QEMU binary, inside the host
}

// command is the peer's command line booting a guest as Tandem's
// `run` does: 2 vCPUs, 256 MiB, the same kernel, initramfs and command
// line, the console on a serial port, and devices (QEMU's -drive and
// -device arguments: virtio devices on virtio-mmio, as Tandem's are).
func (p peer) command(cmdline, devices string) string {
	machine := "-M microvm -accel kvm -cpu host"
	if p.name == "QEMU virt" {
		// gic-version=host: the emulated board's GICv3 has no GICv2
		// compatibility for KVM to offer a guest.
		machine = "-M virt,gic-version=host -accel kvm -cpu host"
	}
	return fmt.Sprintf("%s %s -smp 2 -m 256M -nodefaults -no-user-config -display none -serial stdio -no-reboot "+
		"-kernel /guest/vmlinuz -initrd /guest/initrd -append %q %s", p.bin, machine, cmdline, devices)
}

// peerFor returns the peer of an emulated host: QEMU microvm from this
// machine's own QEMU in the x86 host; on the arm64 board, QEMU virt from
// Debian's arm64 packages (scripts/testdata.sh qemu-arm64).
func peerFor(arch string) (peer, error) {
	if arch != "arm64" {
		bin, files, err := e2e.QEMUFiles()
		if err != nil {
			return peer{}, err
		}
		return peer{name: "QEMU microvm", files: files, bin: bin}, nil
	}
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return peer{}, err
	}
	root := filepath.Join(cache, "qemu-arm64", "root")
	files, err := elfClosure(root, "/usr/bin/qemu-system-aarch64")
	if err != nil {
		return peer{}, fmt.Errorf("%w (scripts/testdata.sh qemu-arm64 unpacks Debian's arm64 QEMU)", err)
	}
	return peer{name: "QEMU virt", files: files, bin: "/usr/bin/qemu-system-aarch64"}, nil
}

// libDirs are where an unpacked Debian arm64 root keeps shared libraries,
// searched in this order; the host gets them in the first, which its
// dynamic loader searches by default.
var libDirs = []string{"/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu"}

// elfClosure maps the program at bin inside root, its ELF interpreter and
// every shared library it needs, directly or through another, to where
// they go in the emulated host.
func elfClosure(root, bin string) (map[string]string, error) {
	files := map[string]string{bin: filepath.Join(root, bin)}
	todo := []string{filepath.Join(root, bin)}
	seen := map[string]bool{}
	for len(todo) > 0 {
		f := todo[0]
		todo = todo[1:]
		e, err := elf.Open(f)
		if err != nil {
			return nil, err
		}
		libs, err := e.ImportedLibraries()
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, p := range e.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				p.ReadAt(b, 0)
				interp := strings.TrimRight(string(b), "\x00")
				files[interp] = filepath.Join(root, interp)
			}
		}
		e.Close()
		for _, l := range libs {
			if seen[l] {
				continue
			}
			seen[l] = true
			found := ""
			for _, d := range libDirs {
				p := filepath.Join(root, d, l)
				if _, err := os.Stat(p); err == nil {
					found = p
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("%s needs %s, which is in none of %s under %s", bin, l, strings.Join(libDirs, ", "), root)
			}
			files[filepath.Join(libDirs[0], l)] = found
			todo = append(todo, found)
		}
	}
	for dst, src := range files {
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("%s (for %s): %w", src, dst, err)
		}
	}
	return files, nil
}
