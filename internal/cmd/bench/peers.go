package main

import (
	"fmt"
	"path/filepath"

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
	files, err := qemuhost.UnpackedProgram(root, "/usr/bin/qemu-system-aarch64")
	if err != nil {
		return peer{}, fmt.Errorf("%w (scripts/testdata.sh qemu-arm64 unpacks Debian's arm64 QEMU)", err)
	}
	return peer{name: "QEMU virt", files: files, bin: "/usr/bin/qemu-system-aarch64"}, nil
}
