package emulate

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/platforms/all"
)

// DirectBoot is how a board whose firmware QEMU's model of it cannot run
// is booted: QEMU loads the image's kernel, device tree and host
// initramfs from its boot partition (-kernel, -dtb, -initrd) and hands
// the kernel its boot script's command line, as the board's U-Boot would
// from the SD card, and the image is the board's SD card.
type DirectBoot struct {
	// Drive is QEMU's -drive options that attach the card where the
	// board boots from, without the file and format.
	Drive string
	// Cmdline is added to the boot script's command line.
	Cmdline string
	// FixDTB, if set, adapts the image's device tree to what QEMU's
	// model lacks, saying what it changed.
	FixDTB func(*dtb.Tree) ([]string, error)
}

// BootFiles are an image's host boot files, extracted, and the command
// line its boot script gives the kernel.
type BootFiles struct {
	Kernel, DTB, Initrd string
	Cmdline             string
	// Info is the image's tandem-image.json.
	Info *images.Info
}

// ErrNoBootargs: the boot script sets no bootargs.
var ErrNoBootargs = errors.New("boot script sets no bootargs")

// ReadBootFiles extracts the host's kernel, device tree and initramfs of
// the image img into dir, and reads the command line its boot script
// passes. The device tree is the one the image's board (its
// tandem-image.json) names in its profile.
func ReadBootFiles(img, dir string) (*BootFiles, error) {
	in, err := images.Inspect(img)
	if err != nil {
		return nil, err
	}
	if in.Info == nil {
		return nil, fmt.Errorf("%s: boot partition has no %s: build the image with tandem image build", img, images.InfoName)
	}
	b, err := all.Lookup(in.Info.Board)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: board: %w", img, images.InfoName, err)
	}
	cmdline, err := ScriptBootargs(in.Script)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img, err)
	}
	f, err := os.Open(img)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	boot, err := fat.Open(f, in.Partitions[0].Start)
	if err != nil {
		return nil, fmt.Errorf("%s: boot partition: %w", img, err)
	}
	bf := &BootFiles{Cmdline: cmdline, Info: in.Info}
	for _, x := range []struct {
		name string
		to   *string
	}{
		{images.KernelARM64, &bf.Kernel}, {images.InitrdName, &bf.Initrd}, {path.Base(b.Image.DTB), &bf.DTB},
	} {
		data, err := boot.ReadFile(x.name)
		if err != nil {
			return nil, fmt.Errorf("%s: boot partition: %s: %w", img, x.name, err)
		}
		*x.to = filepath.Join(dir, x.name)
		if err := os.WriteFile(*x.to, data, 0o644); err != nil {
			return nil, err
		}
	}
	return bf, nil
}

// ScriptBootargs returns the command line a U-Boot script sets with
// `setenv bootargs "..."` (images.BootScript writes one such line).
func ScriptBootargs(script string) (string, error) {
	for _, l := range strings.Split(script, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), `setenv bootargs "`); ok {
			if v, ok := strings.CutSuffix(v, `"`); ok {
				return v, nil
			}
		}
	}
	return "", ErrNoBootargs
}

// LoadArgs prepares in work what QEMU loads to boot f and image on b
// (b.Direct): the device tree as FixDTB leaves it and the image copied
// onto a card (CardCopy), so that the image stays as built. It returns
// QEMU's arguments, the serial console on standard input and output, and
// what FixDTB changed.
func (b *Board) LoadArgs(f *BootFiles, image, work string) (args, fixes []string, err error) {
	d := b.Direct
	if d == nil {
		return nil, nil, fmt.Errorf("board %s: its firmware boots the image (Board.Args)", b.Name)
	}
	for _, file := range []string{f.Kernel, f.DTB, f.Initrd, image} {
		if _, err := os.Stat(file); err != nil {
			return nil, nil, fmt.Errorf("board %s: %w", b.Name, err)
		}
	}
	dtbFile := f.DTB
	if d.FixDTB != nil {
		dtbFile = filepath.Join(work, filepath.Base(f.DTB))
		if fixes, err = FixDTBFile(f.DTB, dtbFile, d.FixDTB); err != nil {
			return nil, nil, fmt.Errorf("board %s: %w", b.Name, err)
		}
	}
	card := filepath.Join(work, "card.img")
	if err := CardCopy(image, card); err != nil {
		return nil, nil, fmt.Errorf("board %s: %w", b.Name, err)
	}
	args = append([]string{}, b.Machine...)
	args = append(args,
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "mon:stdio", "-no-reboot",
		"-kernel", f.Kernel, "-dtb", dtbFile, "-initrd", f.Initrd,
		"-drive", d.Drive+",format=raw,file="+strings.ReplaceAll(card, ",", ",,"),
		"-append", strings.Join(strings.Fields(f.Cmdline+" "+d.Cmdline), " "),
	)
	return args, fixes, nil
}

// FixDTBFile writes src, changed by fix, to dst, and returns what fix
// says it changed.
func FixDTBFile(src, dst string, fix func(*dtb.Tree) ([]string, error)) ([]string, error) {
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

// CardCopy copies an image onto a "card" file of the next power-of-two
// size: QEMU's SD card model takes no other size (hw/sd/sd.c,
// sd_realize), as real cards come, and an image is as large as its
// partitions.
func CardCopy(src, dst string) error {
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

// qemuFixedClockHz is the rate of the clock ZynqMPWithoutPMU gives the
// devices it frees: what the PMU firmware sets the UART and SD reference
// clocks to on the ZCU102 is about that, and QEMU's models ignore it.
const qemuFixedClockHz = 100000000

// ZynqMPWithoutPMU adapts a ZynqMP board's device tree to QEMU's model,
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
func ZynqMPWithoutPMU(t *dtb.Tree) ([]string, error) {
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
