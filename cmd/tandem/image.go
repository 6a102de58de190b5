package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/images/hostinit"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/system"
)

func init() { subcommands = append(subcommands, newImageCmd) }

// newImageCmd is "tandem image": build, inspect and flash board images.
func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Build, inspect and flash a board's image"}
	cmd.AddCommand(newImageBuildCmd(), newImageInspectCmd(), newImageFlashCmd())
	return cmd
}

// imageBuildFlags are the inputs of `tandem image build`.
type imageBuildFlags struct {
	board, manifest, out            string
	hostKernel, hostModules, initrd string
	hostKernelConfig                string
	dtb, tandem, busybox, cmdline   string
	cache, dataSize                 string
	blobs                           []string
	fetch                           bool
}

func newImageBuildCmd() *cobra.Command {
	var f imageBuildFlags
	cmd := &cobra.Command{
		Use:   "build --board B --manifest M -o out.img",
		Short: "Build a flashable image (and its .bmap) for a board from a system manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return interruptible(cmd, "image build", notWritten(f.out), func(ctx context.Context) error {
				return imageBuild(ctx, cmd, f)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.board, "board", "", "board: a built-in one (tandem board list) or a board directory (holding board.yaml)")
	fl.StringVar(&f.manifest, "manifest", "", "system manifest (system.yaml); the files it names go into the data partition")
	fl.StringVarP(&f.out, "output", "o", "", "image file to write; its block map goes beside it (.bmap)")
	fl.StringVar(&f.hostKernel, "host-kernel", "", "host kernel (default: Debian's from the cache, make testdata); a board vendor's BSP kernel where Debian's cannot host KVM (ARMv7: Linux 5.6 or older)")
	fl.StringVar(&f.hostKernelConfig, "host-kernel-config", "", "the host kernel's .config, checked for KVM (default: a config-* file beside the kernel, else the kernel's own, CONFIG_IKCONFIG)")
	fl.StringVar(&f.hostModules, "host-modules", "", "the host kernel's /lib/modules/RELEASE tree (default: beside the cached kernel)")
	fl.StringVar(&f.initrd, "host-initrd", "", "a prebuilt host initramfs (default: build one with tandem as init)")
	fl.StringVar(&f.dtb, "dtb", "", "the board's device tree (default: the board directory's, else Debian's from the cache)")
	fl.StringVar(&f.tandem, "tandem", "", "tandem binary for the board (default: this one if the architecture matches, else built from the source tree)")
	fl.StringVar(&f.busybox, "busybox", "", "a static busybox for the board, added to the host initramfs for debugging")
	fl.StringVar(&f.cmdline, "cmdline", "", "extra host kernel command line")
	fl.StringVar(&f.cache, "cache", "", "test-data cache (default: $TANDEM_CACHE or build/cache)")
	fl.StringVar(&f.dataSize, "data-size", "", "minimum data partition size (e.g. 512M, 4G)")
	fl.StringSliceVar(&f.blobs, "blobs", nil, "directory holding the board's bootloader blobs and boot files (repeatable; a board directory's blobs/ is searched after these)")
	fl.BoolVar(&f.fetch, "fetch", true, "download Debian's bootloader packages with apt-get when not cached")
	return cmd
}

// imageBuild builds the image; ctx stops it (see interruptible), and every
// temporary file is removed on the way out.
func imageBuild(ctx context.Context, cmd *cobra.Command, f imageBuildFlags) error {
	start := time.Now()
	if f.board == "" || f.manifest == "" || f.out == "" {
		return fmt.Errorf("image build: --board, --manifest and -o are required (--board: a board directory, or one of %s)", strings.Join(all.Names(), ", "))
	}
	b, err := all.Find(f.board)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	if b.GuestOnly {
		_, why := b.CanHostKVM()
		return fmt.Errorf("image build: board %s cannot be a Tandem host: %s", b.Name, why)
	}
	// Before the host initramfs takes its time: a board an image cannot
	// be built for (an imported one without load addresses) fails here.
	if err := images.CheckBoard(b); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	m, err := system.LoadManifest(f.manifest)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	epoch, epochSource, err := images.Epoch()
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	if err := checkGuestArchs(b, m); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	cache := cacheDir(f.cache)
	sub := map[platforms.Arch]string{platforms.ARM64: "arm64", platforms.ARM: "armhf", platforms.X86: "x86"}[b.Arch]
	debianKernel := f.hostKernel == ""
	if debianKernel {
		f.hostKernel = filepath.Join(cache, sub, "vmlinuz")
		if _, err := os.Stat(f.hostKernel); err != nil {
			return fmt.Errorf("image build: no --host-kernel, and no cached %s kernel at %s (run `scripts/testdata.sh %s`)", sub, f.hostKernel, sub)
		}
		if f.hostModules == "" {
			if rel, err := os.ReadFile(filepath.Join(cache, sub, "release")); err == nil {
				f.hostModules = filepath.Join(cache, sub, "modules", strings.TrimSpace(string(rel)))
			}
		}
	}
	if err := checkHostKernel(b, f.hostKernel, f.hostKernelConfig, debianKernel); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	if f.dtb == "" && b.Image.DTB != "" && !images.FirmwareDTB(b) {
		if f.dtb, err = boardDTB(cache, b); err != nil {
			return fmt.Errorf("image build: no --dtb, and %w (run `make testdata`, or pass --dtb)", err)
		}
	}
	var dataSize int64
	if f.dataSize != "" {
		if dataSize, err = parseSize(f.dataSize); err != nil {
			return fmt.Errorf("image build: --data-size %q: %w", f.dataSize, err)
		}
	}
	blobs, err := images.FindBlobs(ctx, b, f.blobs, cache, f.fetch)
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	stderr := cmd.ErrOrStderr()
	pr := images.NewProgress(stderr)
	if f.initrd == "" {
		// The host initramfs is built beside the output and removed after.
		tmp, err := os.CreateTemp(filepath.Dir(f.out), ".host-initrd*")
		if err != nil {
			return fmt.Errorf("image build: %w", err)
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		opt := hostinit.Options{Board: b, ModulesDir: f.hostModules, Busybox: f.busybox, Tandem: f.tandem, Epoch: uint32(epoch)}
		if opt.Tandem == "" && hostinit.GOARCH(b.Arch) == runtime.GOARCH {
			// This binary, if it can run there: a dynamically linked
			// one (a plain go build) cannot; then it is built.
			if self, err := os.Executable(); err == nil && hostinit.CheckStatic(self) == nil {
				opt.Tandem = self
			}
		}
		if opt.Tandem == "" {
			if opt.GoDir, err = moduleRoot(); err != nil {
				return fmt.Errorf("image build: tandem for %s: pass --tandem BIN built for it, or run from the source tree (%v)", hostinit.GOARCH(b.Arch), err)
			}
		}
		pr.Stage("building the host initramfs (tandem as init, "+hostinit.GOARCH(b.Arch)+")", 0)
		if err := hostinit.Build(ctx, tmp.Name(), opt); err != nil {
			pr.Stop()
			return fmt.Errorf("image build: host initramfs: %w", err)
		}
		f.initrd = tmp.Name()
	}
	// What the board's supervisor will measure, predicted from the same
	// files: it goes into the data partition, where the supervisor
	// checks measured: required guests against it, and beside the image,
	// for tandem attest.
	pr.Stage("predicting the guests' measurements", 0)
	expected, err := m.Predict()
	if err != nil {
		pr.Stop()
		return fmt.Errorf("image build: predicting measurements: %w", err)
	}
	res, err := images.Build(ctx, f.out, images.Config{
		Board: b, HostKernel: f.hostKernel, HostInitrd: f.initrd, DTB: f.dtb, Blobs: blobs,
		Manifest: f.manifest, ManifestFiles: m.Files(), Cmdline: strings.TrimSpace(m.IsolationCmdline() + " " + f.cmdline), DataSize: dataSize,
		Epoch: epoch, EpochSource: epochSource, Progress: pr,
		DataExtra: []images.DataFile{{Path: system.ExpectedMeasurements, Data: expected.Marshal()}},
	})
	if err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	expectedFile := expectedPath(f.out)
	if err := os.WriteFile(expectedFile, expected.Marshal(), 0o644); err != nil {
		return fmt.Errorf("image build: %w", err)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: %s image for %s, %d MiB (%d MiB mapped), block map %s, built in %.1fs\n",
		res.Image, res.Table, b.Name, res.Size>>20, res.Mapped>>20, res.Bmap, time.Since(start).Seconds())
	fmt.Fprintf(w, "  epoch: %d (%s), from %s\n", epoch, time.Unix(epoch, 0).UTC().Format(time.RFC3339), epochSource)
	for i, p := range res.Partitions {
		fmt.Fprintf(w, "  partition %d: %-4s at %#x, %d MiB\n", i+1, p.Name, p.Start, p.Size>>20)
	}
	for _, bl := range res.Blobs {
		fmt.Fprintf(w, "  blob %s (%s): %d bytes at %#x (slot %d)\n", bl.Name, bl.File, bl.Size, bl.Offset, bl.MaxLen)
	}
	for _, name := range res.Skipped {
		fmt.Fprintf(w, "  boot file %s left out (optional, in no --blobs directory): the board's boot ROM needs it, so rebuild with --blobs DIR holding it before flashing\n", name)
	}
	for _, fix := range res.DTBFixes {
		fmt.Fprintf(w, "  board DTB fixed: %s\n", fix)
	}
	fmt.Fprintf(w, "  expected measurements: %s (PCR %d = %x, %d components; tandem attest --expected)\n",
		expectedFile, expected.PCR, expected.Value, len(expected.Components))
	return nil
}

// expectedPath is where image build writes the expected measurements,
// beside the image as its block map is.
func expectedPath(image string) string {
	return strings.TrimSuffix(image, ".img") + "." + system.ExpectedMeasurements
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("want a size such as 512M or 4G")
	}
	return v * mult, nil
}

// cacheDir is the test-data cache: flag when set, else $TANDEM_CACHE,
// else build/cache.
func cacheDir(flag string) string {
	if flag != "" {
		return flag
	}
	if c := os.Getenv("TANDEM_CACHE"); c != "" {
		return c
	}
	return "build/cache"
}

// moduleRoot finds the tandem source tree above the working directory.
func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/tandem-hv/tandem\n") {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("no tandem source tree (go.mod) above the working directory")
		}
		d = p
	}
}

func newImageInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show an image's partitions, blobs (checked at their offsets), boot files, boot script and manifest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			in, err := images.Inspect(args[0])
			if in != nil {
				in.Print(cmd.OutOrStdout())
			}
			if err != nil {
				return fmt.Errorf("image inspect: %w", err)
			}
			for _, b := range in.Blobs {
				if !b.OK {
					return fmt.Errorf("image inspect: %s: blob %s at %#x does not match its recorded sha256", args[0], b.Name, b.Offset)
				}
			}
			return nil
		},
	}
}

func newImageFlashCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "flash IMAGE DEVICE",
		Short: "Write an image to a disk (only its mapped blocks), then read it back and verify",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			note := fmt.Sprintf("%s may hold part of %s: flash it again before booting from it", args[1], args[0])
			return interruptible(cmd, "image flash", note, func(ctx context.Context) error {
				if err := images.Flash(ctx, args[0], args[1], images.FlashOptions{Force: force, Progress: images.NewProgress(cmd.ErrOrStderr())}); err != nil {
					return fmt.Errorf("image flash: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s written to %s and verified in %.1fs\n", args[0], args[1], time.Since(start).Seconds())
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "write even to a mounted disk or the disk holding /")
	return cmd
}

// boardDTB finds the board's device tree: the board directory's own copy,
// else Debian's in the cache: first where scripts/testdata-boards.sh unpacks them (boards/armhf,
// boards/arm64), then beside the kernel scripts/testdata.sh unpacks
// (armhf/dtbs, arm64/dtbs). Debian keeps arm64 DTBs in a folder per
// vendor, which a profile's DTB name may leave out (one `tandem bsp
// import` wrote): platforms.FindDTB looks there too.
func boardDTB(cache string, b *platforms.Board) (string, error) {
	if p := b.DTBPath(b.Image.DTB, ""); b.Dir != "" && isRegular(p) {
		return p, nil
	}
	sub := "armhf"
	if b.Arch == platforms.ARM64 {
		sub = "arm64"
	}
	var tried []string
	for _, dir := range []string{filepath.Join(cache, "boards", sub), filepath.Join(cache, sub, "dtbs")} {
		p, err := platforms.FindDTB(dir, b.Image.DTB)
		if err == nil {
			return p, nil
		}
		tried = append(tried, err.Error())
	}
	return "", fmt.Errorf("board %s: %s", b.Name, strings.Join(tried, "; "))
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
