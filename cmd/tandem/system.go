package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/measure"
	"github.com/tandem-hv/tandem/vmm"
)

func init() {
	subcommands = append(subcommands, newSystemCmd, newVMMCmd, newPsCmd,
		controlCmd("logs", "Print a guest's recent console output"),
		controlCmd("stop", "Stop a guest (it is not restarted)"),
		controlCmd("start", "Start a stopped guest"),
		controlCmd("restart", "Restart a guest now"),
		controlCmd("kill", "Kill a guest's VMM, as a crash would (its restart policy answers)"),
		controlCmd("threads", "List a guest's VMM threads: scheduling policy, priority and cores"),
		controlCmd("console", "Attach to a guest's console (output and input)"),
		newInputCmd, newScreenshotCmd)
}

// controlSocket is the default of every control command's --control.
func controlSocket() string {
	if s := os.Getenv("TANDEM_CONTROL"); s != "" {
		return s
	}
	return system.DefaultControlSocket
}

func newSystemCmd() *cobra.Command {
	var control, runDir, stateDir, tpm, expected string
	var checkOnly bool
	c := &cobra.Command{
		Use:   "system system.yaml",
		Short: "Run every guest of a system manifest, one VMM process each",
		Long: `Check the manifest against this host (each guest as 'tandem run' checks it
before opening /dev/kvm, one control guest at most, a core left to the host),
then start one 'tandem vmm' per guest in dependency order, restart guests by
their policies, watch them, route the inter-VM channel (vsock) by the
manifest's allow-lists, and serve the control socket for ps, logs, console,
stop, start and restart. Each guest's console
lines are printed with its name in front. Nothing starts if the manifest has
an error.

Before the first VMM starts, every guest is measured into the TPM (--tpm):
its kernel, initrd, hardware, command line and manifest entry, each extended
into PCR 15 and logged (tandem measurements). A guest with measured: required
starts only when each component matches the expected measurements
(--expected) and there is a TPM; the others start regardless.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := system.LoadManifest(args[0])
			if err != nil {
				return err
			}
			host, err := system.DetectHost()
			if err != nil {
				return err
			}
			if err := m.CheckHost(host); err != nil {
				return err
			}
			if checkOnly {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d guests, fits this host\n", args[0], len(m.Guests))
				for _, g := range m.Guests {
					p, err := m.Privileges(g)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s: its VMM %s\n", g.Name, p)
				}
				return nil
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			s := &system.Supervisor{M: m, VMM: []string{exe, "vmm", "--manifest", args[0]},
				RunDir: runDir, ControlSocket: control, Out: cmd.OutOrStdout(), Log: cmd.ErrOrStderr(),
				TPM: tpm, Expected: expected, StateDir: stateDir}
			return s.Run(ctx)
		},
	}
	c.Flags().StringVar(&control, "control", "", "control socket (default: the manifest's control-socket, else "+system.DefaultControlSocket+")")
	c.Flags().StringVar(&runDir, "run-dir", system.DefaultRunDir, "directory for the per-guest vsock sockets")
	c.Flags().StringVar(&stateDir, "state-dir", "", "directory for what guests keep across restarts, such as their virtual TPMs (default: state beside the manifest)")
	c.Flags().StringVar(&tpm, "tpm", measure.DefaultTPM, `the TPM each guest is measured into before it starts: a TPM device or a software TPM's socket ("" for none)`)
	c.Flags().StringVar(&expected, "expected", "", "the expected measurements, for guests with measured: required (default: "+system.ExpectedMeasurements+" beside the manifest, as tandem image build puts it)")
	c.Flags().BoolVar(&checkOnly, "check", false, "check the manifest, and each guest as its VMM would before opening /dev/kvm, against this host and exit")
	return c
}

func newVMMCmd() *cobra.Command {
	var o system.VMMOptions
	var manifest string
	vsockIn, boardDisplay, displayFD, vncFD := -1, -1, -1, -1
	c := &cobra.Command{
		Use:    "vmm --manifest system.yaml --guest NAME",
		Short:  "Run one guest of a manifest (started by tandem system)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := system.LoadManifest(manifest)
			if err != nil {
				// The supervisor checked it; it changed since, and will
				// not change back by itself.
				return &vmm.FatalError{Err: err}
			}
			// The supervisor reads the console (standard output) and
			// the VMM's own lines (standard error) from two pipes, a
			// whole line at a time: a line the guest left open is ended
			// at the end, as tandem run does.
			out := &lineEnder{w: os.Stdout}
			o.Console = vmm.Console{Out: out, In: os.Stdin}
			if o.NoSandbox {
				warnNoSandbox(cmd.ErrOrStderr())
			}
			if vsockIn >= 0 {
				f := os.NewFile(uintptr(vsockIn), "vsock-in")
				l, err := net.FileListener(f)
				f.Close()
				if err != nil {
					return &vmm.FatalError{Err: fmt.Errorf("--vsock-in-fd %d: the supervisor's listening socket: %w", vsockIn, err)}
				}
				defer l.Close()
				o.VsockIn = l
			}
			if boardDisplay >= 0 {
				o.BoardDisplay = os.NewFile(uintptr(boardDisplay), "board-display")
			}
			for _, in := range []struct {
				fd   int
				flag string
				to   *net.Listener
			}{{displayFD, "--display-fd", &o.Display}, {vncFD, "--vnc-fd", &o.VNC}} {
				if in.fd < 0 {
					continue
				}
				f := os.NewFile(uintptr(in.fd), in.flag)
				l, err := net.FileListener(f)
				f.Close()
				if err != nil {
					return &vmm.FatalError{Err: fmt.Errorf("%s %d: the supervisor's listening socket: %w", in.flag, in.fd, err)}
				}
				defer l.Close()
				*in.to = l
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			err = system.RunVMM(ctx, m, o)
			out.end()
			return err
		},
	}
	c.Flags().StringVar(&manifest, "manifest", "", "the system manifest")
	c.Flags().StringVar(&o.Guest, "guest", "", "the guest to run")
	c.Flags().StringVar(&o.VsockOut, "vsock-out", "", "the supervisor's socket for the guest's vsock connections")
	c.Flags().IntVar(&vsockIn, "vsock-in-fd", -1, "the listening socket, inherited from the supervisor, that takes vsock connections into the guest")
	c.Flags().IntVar(&boardDisplay, "board-display-fd", -1, "the board's framebuffer, opened by the supervisor, to show the guest's display on")
	c.Flags().IntVar(&displayFD, "display-fd", -1, "the listening socket, inherited from the supervisor, on which the VMM answers screenshot requests")
	c.Flags().IntVar(&vncFD, "vnc-fd", -1, "the guest's VNC listening socket, inherited from the supervisor")
	c.Flags().BoolVar(&o.NoSandbox, "no-sandbox", false, "run the guest without the VMM's sandbox (seccomp filter, Landlock, limits, dropped capabilities): for debugging only")
	c.Flags().StringVar(&o.VTPM, "vtpm", "", "the command socket of the guest's software TPM")
	c.MarkFlagRequired("manifest")
	c.MarkFlagRequired("guest")
	return c
}

func newPsCmd() *cobra.Command {
	var control string
	c := &cobra.Command{
		Use:   "ps",
		Short: "List the guests of the running system: state, uptime, restarts, CPU time, RSS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return system.Control(control, "ps", nil, cmd.OutOrStdout())
		},
	}
	c.Flags().StringVar(&control, "control", controlSocket(), "the supervisor's control socket")
	return c
}

func controlCmd(name, short string) func() *cobra.Command {
	return func() *cobra.Command {
		var control string
		c := &cobra.Command{
			Use:   name + " NAME",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var in *os.File
				if name == "console" {
					in = os.Stdin
				}
				if in == nil {
					return system.Control(control, name+" "+args[0], nil, cmd.OutOrStdout())
				}
				return system.Control(control, name+" "+args[0], in, cmd.OutOrStdout())
			},
		}
		c.Flags().StringVar(&control, "control", controlSocket(), "the supervisor's control socket")
		return c
	}
}

func newInputCmd() *cobra.Command {
	var control string
	c := &cobra.Command{
		Use:   "input NAME TEXT",
		Short: "Type TEXT on a guest's console (Go escapes such as \\n are read)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := unescape(args[1])
			if err != nil {
				return fmt.Errorf("input %s: TEXT %q: %v: write it as a Go string's inside, e.g. 'ls\\n'", args[0], args[1], err)
			}
			answer, err := system.Input(control, args[0], []byte(text))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), answer)
			return nil
		},
	}
	c.Flags().StringVar(&control, "control", controlSocket(), "the supervisor's control socket")
	return c
}

// unescape reads Go's escapes (\n, \t, \x1b, \") in s; a bare " is
// itself.
func unescape(s string) (string, error) {
	var b strings.Builder
	b.WriteByte('"')
	esc := false
	for _, r := range s {
		if r == '"' && !esc {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		esc = r == '\\' && !esc
	}
	b.WriteByte('"')
	return strconv.Unquote(b.String())
}

func newScreenshotCmd() *cobra.Command {
	var control, out string
	c := &cobra.Command{
		Use:   "screenshot NAME -o FILE",
		Short: "Save what a guest's display shows as a PNG",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			err = system.Control(control, "screenshot "+args[0], nil, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				os.Remove(out)
			}
			return err
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "the PNG file to write")
	c.Flags().StringVar(&control, "control", controlSocket(), "the supervisor's control socket")
	c.MarkFlagRequired("output")
	return c
}
