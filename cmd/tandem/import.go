package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/xen"
)

func init() { subcommands = append(subcommands, newImportCmd) }

// newImportCmd is "tandem import": other hypervisors' guest
// configurations as a system manifest.
func newImportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "Convert Xen guest configurations (xl.cfg, dom0less device trees) into a system manifest",
	}
	cmd.AddCommand(newImportXLCmd(), newImportDom0lessCmd())
	return cmd
}

func newImportXLCmd() *cobra.Command {
	var out string
	var opt xen.XLOptions
	c := &cobra.Command{
		Use:   "xl guest.cfg",
		Short: "Convert an xl.cfg guest into a system.yaml guest",
		Long: `Read a Xen xl.cfg(5) guest file and print a system manifest holding that
guest: name, kernel, ramdisk, command line, memory, vCPUs, pinning (host-cpus),
disks, NICs and the restart policy its on_* actions come closest to. Keys with
no Tandem equivalent, and those that would behave differently, are reported
on stderr with their line. Paste the guest into a system.yaml, or load the
output as one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return interruptible(cmd, "import xl", outputNote(out), func(ctx context.Context) error {
				return importXL(ctx, cmd, args[0], opt, out)
			})
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write the manifest to `FILE` (atomically) instead of stdout")
	c.Flags().StringVar(&opt.Role, "role", "", "the guest's role: control or infotainment (xl has none)")
	return c
}

// outputNote says what an interrupted import left of its output: nothing
// when it writes a file.
func outputNote(out string) string {
	if out == "" {
		return ""
	}
	return notWritten(out)
}

// importXL converts the xl.cfg file and emits the manifest.
func importXL(ctx context.Context, cmd *cobra.Command, file string, opt xen.XLOptions, out string) error {
	switch opt.Role {
	case "", system.RoleControl, system.RoleInfotainment:
	default:
		return fmt.Errorf("import xl: --role %q: want %s or %s", opt.Role, system.RoleControl, system.RoleInfotainment)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("import xl: %w", err)
	}
	res, err := xen.ImportXL(file, data, opt)
	if err != nil {
		return err
	}
	return emitManifest(ctx, cmd, res, out)
}

func newImportDom0lessCmd() *cobra.Command {
	var out string
	var kernels, initrds []string
	c := &cobra.Command{
		Use:   "dom0less host.dtb",
		Short: "Convert a Xen dom0less device tree into a system manifest, one guest per domain",
		Long: `Read a Xen dom0less host device tree (domains as /chosen nodes with
compatible "xen,domain") and print a system manifest with one guest per
domain: memory, vCPUs, hard affinity (host-cpus), the kernel's bootargs.
The tree gives kernels and ramdisks as load addresses, not files: name the
files with --kernel DOMAIN=PATH and --initrd DOMAIN=PATH. Without them a
module's xen,uefi-binary file name is used, or a FILL-IN placeholder that
the warnings (and tandem system --check) point at.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return interruptible(cmd, "import dom0less", outputNote(out), func(ctx context.Context) error {
				return importDom0less(ctx, cmd, args[0], kernels, initrds, out)
			})
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "write the manifest to `FILE` (atomically) instead of stdout")
	c.Flags().StringArrayVar(&kernels, "kernel", nil, "the kernel file of a domain, as `DOMAIN=PATH` (repeatable)")
	c.Flags().StringArrayVar(&initrds, "initrd", nil, "the ramdisk file of a domain, as `DOMAIN=PATH` (repeatable)")
	return c
}

// importDom0less converts the dom0less device tree file, with the
// --kernel and --initrd files, and emits the manifest.
func importDom0less(ctx context.Context, cmd *cobra.Command, file string, kernels, initrds []string, out string) error {
	opt := xen.Dom0lessOptions{Kernels: map[string]string{}, Initrds: map[string]string{}}
	for _, f := range []struct {
		flag string
		vals []string
		dst  map[string]string
	}{{"--kernel", kernels, opt.Kernels}, {"--initrd", initrds, opt.Initrds}} {
		for _, v := range f.vals {
			name, path, ok := strings.Cut(v, "=")
			if !ok || name == "" || path == "" {
				return fmt.Errorf("import dom0less: %s %q: want DOMAIN=PATH, e.g. %s domU1=Image", f.flag, v, f.flag)
			}
			f.dst[name] = path
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("import dom0less: %w", err)
	}
	res, err := xen.ImportDom0less(file, data, opt)
	if err != nil {
		return err
	}
	return emitManifest(ctx, cmd, res, out)
}

// emitManifest prints the warnings on stderr and the manifest on stdout
// or into out (unless ctx is done by then).
func emitManifest(ctx context.Context, cmd *cobra.Command, res *xen.Result, out string) error {
	y, err := res.Manifest.YAML()
	if err != nil {
		return err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(cmd.ErrOrStderr(), w)
	}
	if out == "" {
		_, err := cmd.OutOrStdout().Write(y)
		return err
	}
	if err := writeFileAtomic(ctx, out, y); err != nil {
		return err
	}
	n := len(res.Manifest.Guests)
	plural := "s"
	if n == 1 {
		plural = ""
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: %d guest%s\n", out, n, plural)
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it into place, so path is either untouched or complete; once ctx is
// done it removes the temporary file instead.
func writeFileAtomic(ctx context.Context, path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("writing %s: %w", path, err)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = ctx.Err(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
