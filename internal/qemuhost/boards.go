package qemuhost

import (
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
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
	// ZCU102 is QEMU's xlnx-zcu102 with EL2 (virtualization=on): the
	// Xilinx ZCU102 (platforms/boards/zcu102), its four Cortex-A53 and
	// GIC-400 with the virtualization extensions, its UART and SD card.
	ZCU102 = "zcu102"
)

func init() {
	arches[ZCU102] = arch{
		name: ZCU102, cacheSub: "arm64", qemu: "qemu-system-aarch64", qemuPackage: "qemu-system-arm",
		// The A53s start the kernel at EL2, where Debian's kernel starts
		// KVM (nVHE: the A53 has no VHE). The board's DisplayPort has an
		// audio device, which must not look for a sound card here.
		machine: []string{"-M", "xlnx-zcu102,virtualization=on", "-accel", "tcg,thread=multi", "-audio", "none"},
		console: "ttyPS0",
		// earlycon (the DTB's stdout-path) shows the kernel's lines before
		// the UART's driver binds.
		cmdline: "earlycon",
		// QEMU places the RAM below 2 GiB at 0 and the rest at 32 GiB, but
		// -kernel's device tree gets one memory node from 0
		// (hw/arm/boot.c): with -m 3G it says [0, 3 GiB), over the I/O
		// space above 2 GiB.
		memory: "2G",
		// The SD slot is the second SDHCI (SD1, 0xff170000, the DTB's
		// mmc0): index 1 of QEMU's SD drives (hw/arm/xlnx-zcu102.c).
		disk:   "if=sd,index=1",
		fixDTB: zynqmpWithoutPMU,
	}
}

// isBoard says whether the arch is a board's (see BoardImage).
func (a arch) isBoard() bool { return a.disk != "" }

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

// boardArgs are QEMU's arguments for a board's image: the device tree as
// fixDTB leaves it and a copy of the image, both in work. It also
// returns what fixDTB changed (Result.DTBFixes).
func (a arch) boardArgs(opt Options, work string) (args, fixes []string, err error) {
	b := opt.Board
	for _, f := range []string{b.Kernel, b.DTB, b.Initrd, b.Disk} {
		if _, err := os.Stat(f); err != nil {
			return nil, nil, fmt.Errorf("emulated %s: %w", a.name, err)
		}
	}
	dtbFile := b.DTB
	if a.fixDTB != nil {
		dtbFile = filepath.Join(work, filepath.Base(b.DTB))
		if fixes, err = fixDTBFile(b.DTB, dtbFile, a.fixDTB); err != nil {
			return nil, nil, fmt.Errorf("emulated %s: %w", a.name, err)
		}
	}
	disk := filepath.Join(work, "card.img")
	if err := cardCopy(b.Disk, disk); err != nil {
		return nil, nil, fmt.Errorf("emulated %s: %w", a.name, err)
	}
	args = append([]string{}, a.machine...)
	args = append(args,
		"-smp", fmt.Sprint(opt.CPUs), "-m", opt.Memory,
		"-nodefaults", "-no-user-config", "-display", "none",
		"-name", "tandem-host,debug-threads=on",
		"-serial", "mon:stdio", "-no-reboot",
		"-kernel", b.Kernel, "-dtb", dtbFile, "-initrd", b.Initrd,
		"-drive", a.disk+",format=raw,file="+strings.ReplaceAll(disk, ",", ",,"),
	)
	args = append(args, firmwareDirs()...)
	return append(args, "-append", strings.Join(strings.Fields(b.Cmdline+" "+a.cmdline+" "+opt.Cmdline), " ")), fixes, nil
}

// fixDTBFile writes src, changed by fix, to dst.
func fixDTBFile(src, dst string, fix func(*dtb.Tree) ([]string, error)) ([]string, error) {
	raw, err := os.ReadFile(src)
	if err != nil {
		return nil, err
	}
	t, err := dtb.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("device tree %s: %w", src, err)
	}
	notes, err := fix(t)
	if err != nil {
		return nil, fmt.Errorf("device tree %s: %w", src, err)
	}
	out, err := t.Bytes()
	if err != nil {
		return nil, fmt.Errorf("device tree %s: %w", src, err)
	}
	return notes, os.WriteFile(dst, out, 0o644)
}

// cardCopy copies an image onto a "card" file of the next power-of-two
// size: QEMU's SD card model takes no other size (hw/sd/sd.c,
// sd_realize), as real cards come, and an image is as large as its
// partitions. The run boots the copy, so the image stays as built.
func cardCopy(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if err := out.Truncate(CardSize(st.Size())); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// CardSize is the smallest power of two that holds n bytes.
func CardSize(n int64) int64 {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len64(uint64(n-1))
}

// qemuFixedClockHz is the rate of the clock zynqmpWithoutPMU gives the
// devices it frees: what the PMU firmware sets the UART and SD reference
// clocks to on the ZCU102 is about that, and QEMU's models ignore it.
const qemuFixedClockHz = 100000000

// zynqmpWithoutPMU adapts a ZynqMP board's device tree to QEMU's model,
// which has no PMU firmware (and no ATF: QEMU itself answers PSCI). On
// the board, the kernel's firmware driver ("xlnx,zynqmp-firmware") asks
// the PMU firmware, over SMC to ATF, for the SoC's clocks, power domains
// and pins; under QEMU that call fails, the firmware node's clock, power
// domain and pin controllers never register, and every device that names
// them waits for them forever: the console UART (no ttyPS0, so init has
// no console) and the SD controller (no card) among them. For the two
// devices a host boot needs, the console (/chosen/stdout-path) and the SD
// card (alias mmc0), this gives each of their clocks a fixed clock and
// drops their power domains and pin settings. Nothing else changes: the
// root compatible, CPUs, memory, GIC and timer stay the board's own.
//
// The SD controller's driver still asks the firmware for its tap delays
// and logs "Error setting Input/Output Tap Delay" when it cannot: QEMU's
// SD model needs none.
func zynqmpWithoutPMU(t *dtb.Tree) ([]string, error) {
	console, _, err := t.StdoutPath()
	if err != nil {
		return nil, err
	}
	mmc, err := t.Alias("mmc0")
	if err != nil {
		return nil, err
	}
	clk := t.Root.AddNode("qemu-fixed-clock")
	clk.SetString("compatible", "fixed-clock")
	clk.SetU32("#clock-cells", 0)
	clk.SetU32("clock-frequency", qemuFixedClockHz)
	ph := t.Phandle(clk)
	var notes []string
	for _, n := range []*dtb.Node{console, mmc} {
		names, err := n.Strings("clock-names")
		if err != nil {
			return nil, err
		}
		cells := make([]uint32, len(names))
		for i := range cells {
			cells[i] = ph
		}
		n.SetU32s("clocks", cells...)
		var dropped []string
		for _, p := range []string{"power-domains", "pinctrl-0", "pinctrl-names"} {
			if n.DeleteProp(p) {
				dropped = append(dropped, p)
			}
		}
		notes = append(notes, fmt.Sprintf("%s: clocks %q from a fixed %d MHz clock, %s dropped (QEMU has no PMU firmware)",
			n.Path(), names, qemuFixedClockHz/1000000, strings.Join(dropped, ", ")))
	}
	return notes, nil
}
