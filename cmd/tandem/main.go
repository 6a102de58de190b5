// Command tandem is the single CLI of the Tandem hypervisor distribution:
// it runs guests (run, vmm), supervises systems of guests (system), builds
// images and ports boards.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		// An error with nothing to say carries a status whose reason
		// was printed already (a child's).
		if msg := err.Error(); msg != "" {
			fmt.Fprintf(os.Stderr, "tandem: %s\n", msg)
		}
		os.Exit(exitCode(err))
	}
}

// subcommands is filled by each command's file in its init function, so
// that a command is added by adding one file.
var subcommands []func() *cobra.Command

// exitCoder is an error that carries its own exit status (a guest's end,
// or vmm.ExitFatal for an error no restart cures), wrapped or not.
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	var e exitCoder
	if errors.As(err, &e) {
		return e.ExitCode()
	}
	return 1
}

// run is the whole program: main only wires it to the process.
func run(args []string, stdout, stderr io.Writer) error {
	return runContext(context.Background(), args, stdout, stderr)
}

// runContext is run with a context the commands' long work honours (the
// tests cancel it to stand for a Ctrl-C).
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:           "tandem",
		Short:         "Tandem: a KVM hypervisor distribution for embedded and automotive boards",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, c := range subcommands {
		root.AddCommand(c())
	}
	return root.ExecuteContext(ctx)
}
