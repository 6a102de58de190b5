// Package hostinit builds the host's initramfs and is the host's init.
//
// The initramfs holds `tandem` itself as /init (built for the board's
// architecture), the kernel modules the host needs from the host kernel's
// module tree (virtio for the QEMU virt board, the SD/MMC controllers of
// the ARM boards and those the board's profile names, ext4 for the data
// partition), a load order for them, and optionally a static busybox for
// debugging.
//
// At boot, `tandem init` (Boot) mounts /proc, /sys, /dev, /run and /tmp,
// says which board it runs on (the device tree's model, compatible and
// matching profile), loads the modules in order, says whether KVM is
// there, waits for the data partition to appear (an ext4 file system
// labelled images.DataLabel, or what tandem.data= on the kernel command
// line names), mounts it on /data, and returns the manifest's path for
// `tandem system` to run.
package hostinit

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/tandem-hv/tandem/images/initramfs"
	"github.com/tandem-hv/tandem/platforms"
)

// Paths inside the host.
const (
	ModulesList = "/etc/tandem/modules" // module paths, one a line, in load order
	DataMount   = "/data"
	Manifest    = DataMount + "/system.yaml"
)

// Modules are what every host needs, by module name, besides its board's
// own (platforms.Board.HostModules); those a kernel lacks or has built in
// are skipped. The virtio drivers serve the QEMU virt board;
// the MMC host drivers the SD cards of the ARM boards; ext4 the data
// partition; tun the guests' network; tpm_tis the TPM the guests are
// measured into (the QEMU virt board's tpm-tis-device, or a board's TIS
// TPM; Debian builds it for amd64 and cloud-arm64, not its arm64 kernel).
var Modules = []string{
	"virtio_mmio", "virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio_rng",
	"sunxi_mmc", "dw_mmc_exynos", "omap_hsmmc", "sdhci_omap", "sdhci_pltfm", "mmc_block",
	"ahci", "sd_mod", "nvme",
	"ext4", "crc32c_generic",
	"tun",
	"tpm_tis",
}

// Options say what goes into a host initramfs.
type Options struct {
	Board *platforms.Board
	// ModulesDir is the host kernel's /lib/modules/RELEASE tree ("": no
	// modules: a kernel with everything built in).
	ModulesDir string
	// Busybox is a static busybox for the board's architecture, installed
	// as /bin/busybox with /bin/sh ("": none).
	Busybox string
	// Tandem is a prebuilt tandem binary for the board ("": build
	// ./cmd/tandem from GoDir).
	Tandem string
	GoDir  string
	// Gzip compresses the archive: smaller boot partition, slower boot
	// under emulation.
	Gzip bool
	// Epoch is every mtime in the archive, and the gzip header's (0:
	// SOURCE_DATE_EPOCH, or 0, as initramfs.Options.MTime).
	Epoch uint32
}

// GOARCH is the Go architecture of a board's host.
func GOARCH(a platforms.Arch) string {
	switch a {
	case platforms.ARM:
		return "arm"
	case platforms.X86:
		return "amd64"
	}
	return "arm64"
}

// CheckStatic reports why the program at path cannot be the host's init:
// the host initramfs holds no shared libraries, so a dynamically linked
// program (one with an ELF interpreter) fails there with "Failed to
// execute /init (error -2)".
func CheckStatic(path string) error {
	f, err := elf.Open(path)
	var notELF *elf.FormatError
	if errors.As(err, &notELF) || errors.Is(err, io.EOF) {
		return nil // not an ELF program: nothing to say of its linking
	}
	if err != nil {
		return fmt.Errorf("tandem binary %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
			return fmt.Errorf("tandem binary %s is dynamically linked (interpreter %s), and the host initramfs has no shared libraries: build it static (CGO_ENABLED=0 go build, as make build does) or pass --tandem with a static one", path, strings.TrimRight(string(interp), "\x00"))
		}
	}
	return nil
}

// Build writes the host initramfs to file, atomically. Cancelling ctx
// stops it and leaves file as it was.
func Build(ctx context.Context, file string, opt Options) error {
	if opt.Board == nil {
		return fmt.Errorf("host initramfs: no board")
	}
	ents := initramfs.Console()
	if opt.Tandem != "" {
		if err := CheckStatic(opt.Tandem); err != nil {
			return err
		}
		ents = append(ents, initramfs.File("/init", opt.Tandem, 0o755))
	} else {
		ents = append(ents, initramfs.GoProgram("/init", "./cmd/tandem", GOARCH(opt.Board.Arch)))
	}
	ents = append(ents,
		initramfs.Symlink("/bin/tandem", "/init"),
		initramfs.Dir(DataMount), initramfs.Dir("/proc"), initramfs.Dir("/sys"),
		initramfs.Dir("/run"), initramfs.Dir("/tmp"),
	)
	if opt.Busybox != "" {
		ents = append(ents, initramfs.File("/bin/busybox", opt.Busybox, 0o755), initramfs.Symlink("/bin/sh", "busybox"))
	}
	var order []string
	if opt.ModulesDir != "" {
		names := append(append([]string{}, Modules...), opt.Board.HostModules...)
		mods, o, err := initramfs.Modules(opt.ModulesDir, names, true)
		if err != nil {
			return fmt.Errorf("host modules from %s: %w", opt.ModulesDir, err)
		}
		ents = append(ents, mods...)
		dir := "/lib/modules/" + path.Base(opt.ModulesDir)
		for _, p := range o {
			order = append(order, path.Join(dir, p))
		}
	}
	ents = append(ents, initramfs.Bytes(ModulesList, []byte(strings.Join(order, "\n")+"\n"), 0o644))
	wo := initramfs.Options{Gzip: opt.Gzip, GoDir: opt.GoDir}
	if opt.Epoch != 0 {
		wo.MTime = &opt.Epoch
	}
	return initramfs.WriteContext(ctx, file, ents, wo)
}
