// Package boardboot proves board images on QEMU's emulations of the real
// boards. Its tests build a board's image with `tandem image build` and
// the demo system (internal/e2e), read back out of the image's boot
// partition what the board's U-Boot would load (the host kernel, the
// board's device tree, the host initramfs and the boot script's command
// line), and boot those on QEMU's model of the board with the image as
// its SD card (internal/qemuhost, BoardImage): the host must find its own
// board, start KVM, mount the data partition from the card and run both
// guests to their markers, then power off.
//
// What QEMU's model cannot do the board's firmware does (load BOOT.BIN,
// run U-Boot): QEMU loads the kernel itself, as U-Boot's booti would.
// docs/emulated-hosts.md says what each emulated board lacks.
package boardboot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/platforms"
)

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
// board b's image img into dir, and reads the command line its boot
// script passes.
func ReadBootFiles(img, dir string, b *platforms.Board) (*BootFiles, error) {
	in, err := images.Inspect(img)
	if err != nil {
		return nil, err
	}
	if in.Info == nil || in.Info.Board != b.Name {
		return nil, fmt.Errorf("%s: not an image for %s (its %s: %+v)", img, b.Name, images.InfoName, in.Info)
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
