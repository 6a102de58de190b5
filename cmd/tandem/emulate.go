package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/system/swtpm"
)

func init() { subcommands = append(subcommands, newEmulateCmd) }

// emulateFlags are the inputs of `tandem emulate`.
type emulateFlags struct {
	board, until, junit, artifacts, test, firmware string
	expect, expectNot, screendump                  []string
	timeout                                        time.Duration
	tpm                                            bool
}

// newEmulateCmd is "tandem emulate IMAGE": boot an image on QEMU's model
// of its board and check its consoles (package emulate).
func newEmulateCmd() *cobra.Command {
	var f emulateFlags
	cmd := &cobra.Command{
		Use:   "emulate IMAGE [--expect 'CONSOLE: REGEX']... [--expect-not REGEX]... [--test FILE.yaml]",
		Short: "Boot an image on an emulated board and check what the board and its guests print",
		Long: `Boot an image that tandem image build wrote on QEMU's model of its board, the way
the board boots it, and stream its serial console: the board's own lines and
each guest's, prefixed by its name. The run ends once every expectation held
(or at the --until line, or when the board powers off), or at the timeout.
It exits 0 only when every expectation held and no --expect-not line came;
otherwise 1, with each failure's console tail.

CONSOLE is a guest's name, "board" (the lines that are no guest's) or "*" (any).
A test file (--test) has steps run in order: wait for a line on a console within
a time, send text to the board's console, or run a console command on the
running system (tandem ps, tandem stop|start|restart|kill NAME, input on a
guest's console, a screenshot), which an image built with --cmdline
tandem.commands=1 takes; see docs/ci.md.

Boards: qemu-virt-arm64 (Debian's U-Boot), zcu102 (QEMU loads the image's
files), x86-pc (Debian's OVMF).

It installs nothing: it names the Debian package that is missing.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return interruptible(cmd, "emulate", "QEMU was stopped; the image is as it was (QEMU ran it with -snapshot)", func(ctx context.Context) error {
				return runEmulate(ctx, cmd, args[0], f)
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.board, "board", "", "the board to emulate (default: the board the image was built for, from its boot partition's tandem-image.json)")
	fl.StringArrayVar(&f.expect, "expect", nil, "a line that must come: 'CONSOLE: REGEX' (repeatable)")
	fl.StringArrayVar(&f.expectNot, "expect-not", nil, "a line that must not come: '[CONSOLE: ]REGEX', any console without one (repeatable)")
	fl.StringVar(&f.until, "until", "", "end the run at this line ('CONSOLE: REGEX'), or at the board's power-off ('"+emulate.PowerOff+"'), instead of once every expectation held")
	fl.DurationVar(&f.timeout, "timeout", emulate.DefaultTimeout, "bound on the whole run, from QEMU's start (a test file's timeout: overrides it)")
	fl.StringVar(&f.junit, "junit", "", "write the results as JUnit XML to this file, one test case per expectation and step")
	fl.StringVar(&f.artifacts, "artifacts", "", "keep every console's log and the timeline in this directory")
	fl.StringVar(&f.test, "test", "", "a test file (YAML): steps run in order, and expect-not lines")
	fl.StringArrayVar(&f.screendump, "screendump", nil, "save the board's own display as a PNG at a line: 'CONSOLE: REGEX=FILE', through QEMU's monitor (screendump); the board gets its display device (repeatable)")
	fl.StringVar(&f.firmware, "firmware", "", "boot firmware to start instead of the board's (e.g. Debian trixie's u-boot.bin for the virt board, which drives its display)")
	fl.BoolVar(&f.tpm, "tpm", false, "give the board a TPM 2.0: a fresh software TPM (Debian's swtpm) behind the board's TPM interface, into which the host measures its guests (its kernel needs tpm_tis: Debian's cloud-arm64 kernel, tandem image build --host-kernel)")
	return cmd
}

// emulateOptions turns the flags into the run's options, checked against
// the image.
func emulateOptions(image string, f emulateFlags, timeoutSet bool) (emulate.Options, error) {
	opt := emulate.Options{Image: image, Timeout: f.timeout}
	info, err := emulate.ReadImage(image)
	if err != nil {
		return opt, fmt.Errorf("emulate: %w", err)
	}
	name := f.board
	switch {
	case name == "" && info.Board == "":
		return opt, fmt.Errorf("emulate: %s has no tandem-image.json on its boot partition to name its board: pass --board NAME", image)
	case name == "":
		name = info.Board
	case info.Board != "" && info.Board != name:
		return opt, fmt.Errorf("emulate: --board %s, but %s was built for %s: leave --board out, or build the image for %s", name, image, info.Board, name)
	}
	if opt.Board, err = emulate.LookupBoard(name); err != nil {
		return opt, fmt.Errorf("emulate: %w", err)
	}
	opt.Guests = info.Guests
	for _, s := range f.expect {
		c, err := emulate.ParseExpect("--expect", s)
		if err != nil {
			return opt, fmt.Errorf("emulate: %w", err)
		}
		opt.Expect = append(opt.Expect, c)
	}
	for _, s := range f.expectNot {
		c, err := emulate.ParseExpectNot("--expect-not", s)
		if err != nil {
			return opt, fmt.Errorf("emulate: %w", err)
		}
		opt.Expect = append(opt.Expect, c)
	}
	switch f.until {
	case "":
	case emulate.PowerOff:
		opt.UntilPowerOff = true
	default:
		if opt.Until, err = emulate.ParseExpect("--until", f.until); err != nil {
			return opt, fmt.Errorf("emulate: %w", err)
		}
	}
	checks := append([]*emulate.Check{}, opt.Expect...)
	if opt.Until != nil {
		checks = append(checks, opt.Until)
	}
	opt.Firmware = f.firmware
	for _, s := range f.screendump {
		i := strings.LastIndex(s, "=")
		if i < 0 || i == len(s)-1 {
			return opt, fmt.Errorf("emulate: --screendump %q: want 'CONSOLE: REGEX=FILE', the PNG's file after the last =", s)
		}
		c, err := emulate.ParseExpect("--screendump", s[:i])
		if err != nil {
			return opt, fmt.Errorf("emulate: %w", err)
		}
		opt.Screendumps = append(opt.Screendumps, &emulate.Screendump{At: c, File: s[i+1:]})
		checks = append(checks, c)
	}
	if f.test != "" {
		tf, err := emulate.ReadTestFile(f.test)
		if err != nil {
			return opt, fmt.Errorf("emulate: --test: %w", err)
		}
		opt.Expect = append(opt.Expect, tf.ExpectNot...)
		opt.Steps = tf.Steps
		if tf.Timeout > 0 && !timeoutSet {
			opt.Timeout = tf.Timeout
		}
		checks = append(checks, tf.ExpectNot...)
		for _, st := range tf.Steps {
			if st.Wait != nil {
				checks = append(checks, st.Wait)
			}
			if st.Guest != "" {
				// The guest a command names must be the image's too.
				checks = append(checks, &emulate.Check{Console: st.Guest, Spec: st.Name})
			}
		}
	}
	if err := emulate.CheckConsoles("emulate", checks, opt.Guests); err != nil {
		return opt, err
	}
	return opt, nil
}

func runEmulate(ctx context.Context, cmd *cobra.Command, image string, f emulateFlags) error {
	opt, err := emulateOptions(image, f, cmd.Flags().Changed("timeout"))
	if err != nil {
		return err
	}
	opt.Out, opt.Artifacts = cmd.OutOrStdout(), f.artifacts
	if f.tpm {
		dir, err := os.MkdirTemp("", "tandem-emulate-tpm-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		tpm, err := swtpm.Start(ctx, swtpm.Options{StateDir: filepath.Join(dir, "state"), Ctrl: filepath.Join(dir, "ctrl.sock"),
			Log: filepath.Join(dir, "swtpm.log")})
		if err != nil {
			return fmt.Errorf("emulate: --tpm: %w", err)
		}
		defer tpm.Stop()
		opt.TPM = tpm.Ctrl()
	}
	started := time.Now()
	res, err := emulate.Run(ctx, opt)
	if res == nil {
		return fmt.Errorf("emulate: %w", err)
	}
	res.Report(cmd.ErrOrStderr())
	if f.junit != "" {
		if jerr := emulate.WriteJUnitFile(f.junit, emulate.JUnitRun{Image: image, Board: opt.Board.Name, Started: started}, res); jerr != nil && err == nil {
			err = jerr
		}
	}
	var dumpErrs []string
	for _, d := range res.Screendumps {
		if d.Err != "" {
			dumpErrs = append(dumpErrs, d.File+": "+d.Err)
		} else {
			fmt.Fprintf(cmd.ErrOrStderr(), "screendump: %s: the board's display at %.1fs\n", d.File, d.At.Seconds())
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("emulate: %w", err)
	case res.End == emulate.EndCancelled:
		return errors.New("emulate: cancelled")
	case !res.Passed():
		var names []string
		skipped := 0
		for _, c := range res.Failed() {
			if c.Skipped {
				skipped++
			} else {
				names = append(names, c.Name)
			}
		}
		msg := fmt.Sprintf("emulate: %d of %d checks failed: %s", len(names), len(res.Cases), strings.Join(names, "; "))
		if skipped > 0 {
			msg += fmt.Sprintf(" (%d steps after it not run)", skipped)
		}
		return errors.New(msg)
	case len(dumpErrs) > 0:
		return fmt.Errorf("emulate: no screendump %s", strings.Join(dumpErrs, "; "))
	}
	return nil
}
