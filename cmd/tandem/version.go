package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func init() { subcommands = append(subcommands, newVersionCmd) }

// newVersionCmd is "tandem version": the module version, the commit the
// binary was built from (and whether the tree had changes), and the Go
// toolchain, from the build information Go records in every binary.
func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print Tandem's version and the commit it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, _ := debug.ReadBuildInfo()
			writeVersion(cmd.OutOrStdout(), info)
			return nil
		},
	}
}

// writeVersion prints what info says of the build: "tandem VERSION
// (commit REV[, modified], TIME) GO OS/ARCH". A binary built outside a
// git checkout has no commit and says so.
func writeVersion(w io.Writer, info *debug.BuildInfo) {
	version, rev, when, modified := "(devel)", "", "", false
	if info != nil {
		if v := info.Main.Version; v != "" {
			version = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	commit := "commit unknown: not built from a git checkout"
	if rev != "" {
		commit = "commit " + rev
		if modified {
			commit += ", with uncommitted changes"
		}
		if when != "" {
			commit += ", " + when
		}
	}
	fmt.Fprintf(w, "tandem %s (%s) %s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
