package qemuhost

import (
	"fmt"
	"sort"
	"strings"

	"github.com/tandem-hv/tandem/emulate"
)

// BoardImage is a board's own image, booted on QEMU's emulation of that
// board the way the board's U-Boot boots it: QEMU loads the image's
// kernel, device tree and host initramfs (-kernel, -dtb, -initrd) and
// hands the kernel the image's command line, and the image file is the
// board's boot medium. Its init is the image's own (tandem init), so two
// lines of the image's stand for the harness host's markers.
type BoardImage struct {
	// Kernel, DTB and Initrd are the files of the image's boot partition;
	// Cmdline is the command line its boot script passes.
	Kernel, DTB, Initrd, Cmdline string
	// Disk is the image. The run boots a copy of it, so the file stays
	// as built.
	Disk string
	// Booted is console text whose first appearance means the host has
	// booted (Result.Boot, and the end of Options.BootDeadline).
	Booted string
	// Done is console text that means a clean end: QEMU exiting after it
	// gives ExitStatus 0.
	Done string
}

// The boards whose QEMU models a run boots images on (Options.Arch, with
// Options.Board).
const (
	// ZCU102 is tandem emulate's zcu102 (emulate.ZCU102): QEMU's
	// xlnx-zcu102 with EL2, the image's files loaded by QEMU, the image
	// as the SD card.
	ZCU102 = "zcu102"
)

func init() {
	b := emulate.ZCU102
	arches[ZCU102] = arch{name: ZCU102, cacheSub: "arm64", qemu: b.QEMU, qemuPackage: b.QEMUPackage, board: b}
}

// isBoard says whether the arch is a board's (see BoardImage).
func (a arch) isBoard() bool { return a.board != nil }

// boardNames lists the boards, sorted.
func boardNames() []string {
	var n []string
	for name, a := range arches {
		if a.isBoard() {
			n = append(n, name)
		}
	}
	sort.Strings(n)
	return n
}

// boardArgs are QEMU's arguments for a board's image, tandem emulate's
// (emulate.Board.LoadArgs: the device tree adapted and a copy of the
// image, both in work) with the harness's thread names and firmware
// directories, and opt.Cmdline added to the image's. It also returns
// what the device tree's adaptation changed (Result.DTBFixes). The
// board's own machine sets the CPUs and memory: Options.CPUs and Memory
// do not apply.
func (a arch) boardArgs(opt Options, work string) (args, fixes []string, err error) {
	b := opt.Board
	f := &emulate.BootFiles{Kernel: b.Kernel, DTB: b.DTB, Initrd: b.Initrd, Cmdline: strings.TrimSpace(b.Cmdline + " " + opt.Cmdline)}
	if args, fixes, err = a.board.LoadArgs(f, b.Disk, work); err != nil {
		return nil, nil, fmt.Errorf("emulated %s: %w", a.name, err)
	}
	// Named threads ("CPU 0/TCG"): PinCPUs finds the vCPUs by name.
	args = append(args, "-name", "tandem-host,debug-threads=on")
	return append(args, firmwareDirs()...), fixes, nil
}
