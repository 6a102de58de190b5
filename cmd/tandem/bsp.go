package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/bsp"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

func init() { subcommands = append(subcommands, newBSPCmd) }

// errNotReady is returned after a report that found a blocker, so that
// scripts and CI see a failure.
var errNotReady = errors.New("not ready")

// newBSPCmd is "tandem bsp": the board porting kit.
func newBSPCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bsp", Short: "Port a board: import a vendor DTB, check a board, kernel config and host"}
	var name, out string
	imp := &cobra.Command{
		Use:   "import VENDOR.dtb --name NAME [-o DIR]",
		Short: "Write a new board package from a vendor device tree",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return interruptible(cmd, "bsp import", "board package not written, temporary files removed", func(ctx context.Context) error {
				return bspImport(ctx, cmd, args[0], name, out)
			})
		},
	}
	imp.Flags().StringVar(&name, "name", "", "board name (lower case, dashes)")
	imp.Flags().StringVarP(&out, "output", "o", "", "directory to write (default platforms/NAME)")
	_ = imp.MarkFlagRequired("name")
	cmd.AddCommand(imp)

	var dtbFile, kconfig string
	var host, asJSON bool
	check := &cobra.Command{
		Use:   "check BOARD [--dtb F] [--kernel-config F] [--host] [--json]",
		Short: "Check a board profile against its DTB, a kernel .config and the live host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := checkBoard(args[0], dtbFile, kconfig, host)
			if err != nil {
				return fmt.Errorf("bsp check: %w", err)
			}
			if asJSON {
				err = r.WriteJSON(cmd.OutOrStdout())
			} else {
				err = r.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return fmt.Errorf("bsp check: writing the report: %w", err)
			}
			if !r.Ready {
				return fmt.Errorf("bsp check: board %s: %w (%d blockers)", r.Board, errNotReady, len(r.Missing()))
			}
			return nil
		},
	}
	check.Flags().StringVar(&dtbFile, "dtb", "", "device tree blob to check the profile against")
	check.Flags().StringVar(&kconfig, "kernel-config", "", "host kernel .config to check")
	check.Flags().BoolVar(&host, "host", false, "check this machine as the host")
	check.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(check)
	return cmd
}

// bspImport writes a board package from the vendor DTB file into out
// (default platforms/PACKAGE); ctx stops it before anything is in place.
func bspImport(ctx context.Context, cmd *cobra.Command, file, name, out string) error {
	data, err := readFile("vendor DTB", file)
	if err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	g, err := bsp.Import(data, file, name)
	if err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	dir := out
	if dir == "" {
		dir = filepath.Join("platforms", g.Package)
	}
	if err := g.Write(ctx, dir); err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "wrote package %s in %s\n", g.Package, dir)
	for _, m := range g.Missing {
		fmt.Fprintf(w, "  TODO %s\n", m)
	}
	return nil
}

func checkBoard(name, dtbFile, kconfig string, host bool) (*bsp.Report, error) {
	b, lookupErr := all.Lookup(name)
	r := &bsp.Report{Board: name}
	if dtbFile != "" {
		f, _, err := hostdt.ReadFile(dtbFile)
		if err != nil {
			return nil, err
		}
		var s bsp.Section
		if b == nil {
			// A board without a profile yet: check the DTB against
			// whatever it matches, or judge the DTB alone and say how to
			// start its profile.
			var matchErr error
			if b, matchErr = hostdt.Match(f, all.Boards); matchErr != nil {
				s = bsp.CheckDTB(nil, f)
				s.Items = append(s.Items, bsp.Item{Check: "board profile", Detail: fmt.Sprintf("%v; and %v", lookupErr, matchErr),
					Fix: fmt.Sprintf("tandem bsp import %s --name %s", dtbFile, name)})
			}
		}
		if b != nil {
			s = bsp.CheckDTB(b, f)
		}
		r.Add(s)
	}
	if b == nil && len(r.Sections) == 0 {
		return nil, lookupErr
	}
	if b != nil {
		if err := b.Validate(); err != nil {
			r.Add(bsp.Section{Title: "Profile", Items: []bsp.Item{{Check: "invariants", Detail: err.Error(), Fix: "fix the profile"}}})
		}
	}
	if kconfig != "" {
		data, err := readFile("kernel config", kconfig)
		if err != nil {
			return nil, err
		}
		c, err := bsp.ParseKernelConfig(data, kconfig)
		if err != nil {
			return nil, err
		}
		r.Add(bsp.CheckKernelConfig(c, b))
	}
	if host {
		r.Add(bsp.Host{Arch: kvm.HostArch, KVM: probeKVM}.CheckHost(b))
	}
	if len(r.Sections) == 0 {
		ok, why := b.CanHostKVM()
		if ok {
			why = "can host KVM with a current kernel"
		}
		r.Add(bsp.Section{Title: "Profile " + b.Name, Verdict: why, Items: []bsp.Item{{Check: "profile invariants", OK: true}}})
	}
	return r, nil
}

// probeKVM opens this host's /dev/kvm for the porting kit's host check
// and asks it for the named capabilities.
func probeKVM(caps []string) bsp.KVMProbe {
	sys, err := kvm.Open()
	if err != nil {
		return bsp.KVMProbe{Err: err, Absent: errors.Is(err, kvm.ErrNoKVM)}
	}
	defer sys.Close()
	p := bsp.KVMProbe{Caps: map[string]int{}}
	for _, name := range caps {
		if c, ok := kvm.CapByName(name); ok {
			p.Caps[name] = sys.CheckExtension(c)
		}
	}
	return p
}
