package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/dtb"
)

func init() { subcommands = append(subcommands, newDTBCmd) }

// newDTBCmd is "tandem dtb": tools for flattened device trees.
func newDTBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dtb",
		Short: "Inspect flattened device trees (DTB files)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "dump FILE.dtb",
		Short: "Print a DTB as device tree source, as dtc -I dtb -O dts does",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return dumpDTB(cmd, args[0])
		},
	})
	return cmd
}

func dumpDTB(cmd *cobra.Command, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("dtb dump: %w", err)
	}
	defer f.Close()
	t, err := dtb.Read(f)
	if err != nil {
		return fmt.Errorf("dtb dump: %s: %w", file, err)
	}
	// The tree parsed, so WriteDTS can only fail on the output.
	if err := t.WriteDTS(cmd.OutOrStdout()); err != nil {
		return fmt.Errorf("dtb dump: writing %s as DTS: %w", file, err)
	}
	return nil
}
