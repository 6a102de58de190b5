package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/bsp"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/platforms"
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
	var name, out, uboot string
	imp := &cobra.Command{
		Use:   "import VENDOR.dtb -o DIR [--name NAME] [--uboot FILE|DIR]",
		Short: "Write a board directory (board.yaml and the DTB) from a vendor device tree",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return interruptible(cmd, "bsp import", "board directory not written, temporary files removed", func(ctx context.Context) error {
				return bspImport(ctx, cmd, args[0], name, out, uboot)
			})
		},
	}
	imp.Flags().StringVar(&name, "name", "", "board name (lower case, dashes; default: the directory's name)")
	imp.Flags().StringVarP(&out, "output", "o", "", "board directory to write (default: ./NAME)")
	imp.Flags().StringVar(&uboot, "uboot", "", "the board's U-Boot (u-boot.bin), or a directory of U-Boot builds (/usr/lib/u-boot) to find it in by the DTB's compatible: fills the load addresses from its default environment, and the blobs where Tandem knows the SoC family")
	cmd.AddCommand(imp)

	var dtbFile, kconfig string
	var host, asJSON bool
	check := &cobra.Command{
		Use:   "check BOARD|DIR [--dtb F] [--kernel-config F] [--host] [--json]",
		Short: "Say whether an image for a board can be built and boot: its profile, its DTB, a kernel .config, the live host",
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
	check.Flags().StringVar(&dtbFile, "dtb", "", "device tree blob to check the profile against (default: the board's own, in its directory or the test-data cache)")
	check.Flags().StringVar(&kconfig, "kernel-config", "", "host kernel .config to check")
	check.Flags().BoolVar(&host, "host", false, "check this machine as the host")
	check.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(check)
	return cmd
}

// bspImport writes a board directory from the vendor DTB file into out
// (default ./NAME); ctx stops it before anything is in place.
func bspImport(ctx context.Context, cmd *cobra.Command, file, name, out, uboot string) error {
	switch {
	case name == "" && out == "":
		return fmt.Errorf("bsp import: give the board directory to write (-o DIR), or its --name")
	case name == "":
		name = filepath.Base(filepath.Clean(out))
	case out == "":
		out = name
	}
	data, err := readFile("vendor DTB", file)
	if err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	u, err := readUBoot(uboot, data, file)
	if err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	g, err := bsp.ImportUBoot(data, file, name, u)
	if err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	if err := g.Write(ctx, out); err != nil {
		return fmt.Errorf("bsp import: %w", err)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "wrote board %s in %s\n", g.Name, out)
	if u != nil {
		l, _, _ := u.LoadAddrs()
		fmt.Fprintf(w, "  from U-Boot %s: load addresses kernel %#x, dtb %#x, initrd %#x, script %#x", u.File, l.Kernel, l.DTB, l.Initrd, l.Script)
		if u.Family != nil {
			fmt.Fprintf(w, "; %s blobs and layout", u.Family.Name)
		}
		fmt.Fprintln(w)
	}
	for _, m := range g.Missing {
		fmt.Fprintf(w, "  TODO %s\n", m)
	}
	fmt.Fprintf(w, "fill in the TODOs of %s, then: tandem bsp check %s; tandem image build --board %s ...\n",
		filepath.Join(out, platforms.BoardFile), out, out)
	return nil
}

// checkBoard reports on the board name names (a built-in board or a
// board directory): its profile, the DTB it is checked against (dtbFile,
// else its own where it can be found), a kernel config and this host, as
// asked.
func checkBoard(name, dtbFile, kconfig string, host bool) (*bsp.Report, error) {
	var b *platforms.Board
	var lookupErr error
	if all.IsPath(name) {
		// Read, not Load: a profile that breaks invariants is reported,
		// each problem a blocker at its line.
		var err error
		if b, err = platforms.Read(name); err != nil {
			return nil, err
		}
	} else {
		b, lookupErr = all.Lookup(name)
	}
	r := &bsp.Report{Board: name}
	if b != nil {
		r.Add(bsp.CheckProfile(b))
		if dtbFile == "" {
			dtbFile = ownDTB(b)
		}
	}
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
			if b, matchErr = hostdt.Match(f, all.Boards()); matchErr != nil {
				s = bsp.CheckDTB(nil, f)
				s.Items = append(s.Items, bsp.Item{Check: "board profile", Detail: fmt.Sprintf("%v; and %v", lookupErr, matchErr),
					Fix: fmt.Sprintf("tandem bsp import %s --name %s", dtbFile, name)})
			} else {
				r.Add(bsp.CheckProfile(b))
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
	return r, nil
}

// ownDTB returns the board's own device tree when there is one to check
// the profile against: in its board directory, or Debian's in the
// test-data cache; else "".
func ownDTB(b *platforms.Board) string {
	p := b.DTBPath(b.DTB, filepath.Join(cacheDir(""), "boards"))
	if st, err := os.Stat(p); p == "" || err != nil || !st.Mode().IsRegular() {
		return ""
	}
	return p
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

// readUBoot reads the U-Boot arg names for bsp import: a U-Boot binary,
// or a directory of builds searched for the one whose control DTB is the
// vendor DTB's board; nil for "".
func readUBoot(arg string, data []byte, file string) (*bsp.UBoot, error) {
	if arg == "" {
		return nil, nil
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("--uboot: %w", err)
	}
	if !st.IsDir() {
		return bsp.ReadUBoot(arg)
	}
	t, err := dtb.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	compat, _ := t.Root.Strings("compatible")
	return bsp.FindUBoot(arg, compat)
}
