package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/bsp"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

func init() { subcommands = append(subcommands, newBoardCmd) }

// hostFDT is where Linux exposes the device tree it booted with.
const hostFDT = "/sys/firmware/fdt"

// newBoardCmd is "tandem board": the board profiles and the host's own.
func newBoardCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "board", Short: "List, show and detect board profiles"}
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List the board profiles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tARCH\tKVM HOST\tDESCRIPTION")
			for _, b := range all.Boards() {
				host := "yes"
				if ok, _ := b.CanHostKVM(); !ok {
					host = "no"
					if !b.GuestOnly {
						host = "≤" + b.HostKernel.MaxVersion
					}
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", b.Name, b.Arch, host, b.Description)
			}
			return w.Flush()
		},
	})
	var asJSON bool
	show := &cobra.Command{
		Use:   "show NAME|DIR",
		Short: "Show one board profile: a built-in one, or a board directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := all.Find(args[0])
			if err != nil {
				return fmt.Errorf("board show: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), b)
			}
			return showBoard(cmd.OutOrStdout(), b)
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(show)
	var fdt string
	var detectJSON bool
	detect := &cobra.Command{
		Use:   "detect",
		Short: "Identify this host's board from its device tree (" + hostFDT + ") and hardware inventory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return detectBoard(cmd.OutOrStdout(), fdt, detectJSON)
		},
	}
	detect.Flags().StringVar(&fdt, "fdt", hostFDT, "device tree blob to read")
	detect.Flags().BoolVar(&detectJSON, "json", false, "print JSON")
	cmd.AddCommand(detect)
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	e := json.NewEncoder(w)
	e.SetIndent("", "  ")
	return e.Encode(v)
}

func showBoard(w io.Writer, b *platforms.Board) error {
	p := func(k string, v any) { fmt.Fprintf(w, "%-14s %v\n", k+":", v) }
	p("name", b.Name)
	if b.File != "" && b.Dir != "" {
		p("from", b.File)
	}
	p("description", b.Description)
	p("compatible", b.Compatible)
	p("arch", b.Arch)
	p("cpu", fmt.Sprintf("%d× %s (virtualization extensions: %v)", b.CPU.Count, b.CPU.Compatible, b.CPU.Virtualization))
	p("memory", b.Memory)
	if b.GIC.Version != 0 {
		var rs []string
		for _, r := range b.GIC.Regions() {
			rs = append(rs, fmt.Sprintf("%s %v", r.Name, r.Region))
		}
		p("gic", fmt.Sprintf("v%d %s %v maintenance PPI %d", b.GIC.Version, b.GIC.Compatible, rs, b.GIC.MaintenancePPI))
		p("timer", fmt.Sprintf("%s PPIs secure %d, physical %d, virtual %d, hypervisor %d", b.Timer.Compatible, b.Timer.SecurePPI, b.Timer.PhysPPI, b.Timer.VirtPPI, b.Timer.HypPPI))
	}
	p("console", fmt.Sprintf("%s at %#x, %s,%d", b.Console.Compatible, b.Console.Base, b.Console.Linux, b.Console.Baud))
	p("smp", b.SMP)
	p("reset", b.Reset)
	p("denylist", b.Denylist)
	if len(b.HostModules) > 0 {
		p("host modules", b.HostModules)
	}
	ok, why := b.CanHostKVM()
	if ok {
		why = "yes"
	}
	p("kvm host", why)
	p("dtb", b.DTB)
	p("image", fmt.Sprintf("%s, first partition at %#x, boot fs %s", b.Image.Table, b.Image.FirstPartition, b.Image.BootFS))
	for _, bl := range b.Image.Blobs {
		p("  blob", fmt.Sprintf("%s %s at %#x (max %d KiB)", bl.Name, bl.File, bl.Offset, bl.MaxLen>>10))
	}
	for _, bf := range b.Image.BootFiles {
		from := "from the user"
		if bf.Package != "" {
			from = "from " + bf.Package
		}
		if bf.Optional {
			from += ", optional"
		}
		p("  boot file", fmt.Sprintf("%s (%s)", bf.Name, from))
	}
	l := b.Image.Load
	if l.Kernel != 0 {
		p("  load", fmt.Sprintf("kernel %#x, dtb %#x, initrd %#x, script %#x", l.Kernel, l.DTB, l.Initrd, l.Script))
	}
	return nil
}

// detection is what "board detect" reports.
type detection struct {
	FDT   string        `json:"fdt,omitempty"`
	Facts *hostdt.Facts `json:"facts,omitempty"`
	// Verdict says from the device tree alone whether the board can
	// host KVM.
	Verdict   *bsp.Verdict   `json:"verdict,omitempty"`
	Board     string         `json:"board,omitempty"`
	Match     string         `json:"match,omitempty"`
	Inventory *bsp.Inventory `json:"inventory,omitempty"`
	Note      string         `json:"note,omitempty"`
}

func detectBoard(w io.Writer, fdt string, asJSON bool) error {
	d := detection{FDT: fdt}
	f, _, err := hostdt.ReadFile(fdt)
	switch {
	case errors.Is(err, fs.ErrNotExist) && kvm.HostArch == "x86_64":
		d.FDT = ""
		d.Note = fmt.Sprintf("no %s: this x86 host describes itself with ACPI, not a device tree", fdt)
		d.Board = "x86-pc"
	case err != nil:
		return fmt.Errorf("board detect: %w", err)
	default:
		d.Facts = f
		v := bsp.Judge(f)
		d.Verdict = &v
		if b, err := hostdt.Match(f, all.Boards()); err != nil {
			d.Match = err.Error()
		} else {
			d.Board = b.Name
			for _, fd := range hostdt.Mismatches(hostdt.Check(b, f)) {
				d.Match += fd.String() + "\n"
			}
		}
	}
	if inv, err := bsp.GHWInventory(); err == nil {
		d.Inventory = &inv
	} else {
		d.Note += "; " + err.Error()
	}
	if asJSON {
		return writeJSON(w, d)
	}
	if d.Note != "" {
		fmt.Fprintln(w, d.Note)
	}
	if f := d.Facts; f != nil {
		fmt.Fprintf(w, "device tree:  %s (%s, %q)\n", fdt, f.Model, f.Compatible)
		if len(f.CPUs) > 0 {
			fmt.Fprintf(w, "cpus:         %s, enable-method %q", hostdt.ClusterCounts(f.Clusters()), f.CPUs[0].EnableMethod)
		} else {
			fmt.Fprintf(w, "cpus:         none")
		}
		fmt.Fprintf(w, "\nmemory:       %v\n", f.Memory)
		if f.GIC != nil {
			fmt.Fprintf(w, "gic:          v%d %s, virtualization interface: %v\n", f.GIC.Version, f.GIC.Path, f.GIC.HasVirt())
		}
		switch {
		case f.Timer == nil:
		case f.Timer.OnGIC:
			fmt.Fprintf(w, "timer PPIs:   %v\n", f.Timer.PPIs)
		default:
			fmt.Fprintf(w, "timer:        %s, interrupts to %s\n", f.Timer.Path, f.Timer.Controller)
		}
		if f.Console != nil {
			fmt.Fprintf(w, "console:      %s at %#x (%s)\n", f.Console.Path, f.Console.Base, f.Console.Via)
		}
		if f.PSCI != nil {
			fmt.Fprintf(w, "psci:         %s, method %s\n", f.PSCI.Compatible, f.PSCI.Method)
		} else {
			fmt.Fprintln(w, "psci:         none")
		}
		for _, n := range f.Notes {
			fmt.Fprintf(w, "note:         %s\n", n)
		}
	}
	if d.Verdict != nil {
		fmt.Fprintf(w, "verdict:      %s\n", d.Verdict)
	}
	if d.Board != "" {
		fmt.Fprintf(w, "board:        %s\n", d.Board)
	}
	if d.Match != "" {
		fmt.Fprintf(w, "match:        %s\n", d.Match)
	}
	if inv := d.Inventory; inv != nil {
		fmt.Fprintf(w, "inventory:    %d cores, %d threads, %d MiB\n", inv.Cores, inv.Threads, inv.MemoryBytes>>20)
		for _, disk := range inv.Disks {
			fmt.Fprintf(w, "disk:         %s\n", disk)
		}
	}
	return nil
}

// readFile is os.ReadFile with the command's wording.
func readFile(what, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	return b, nil
}
