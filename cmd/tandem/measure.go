package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/measure"
)

func init() { subcommands = append(subcommands, newMeasurementsCmd, newAttestCmd) }

// defaultMeasurementLog is where a supervisor run with the default run
// directory keeps its event log.
var defaultMeasurementLog = filepath.Join(system.DefaultRunDir, system.MeasurementLog)

func newMeasurementsCmd() *cobra.Command {
	var logFile, tpm string
	c := &cobra.Command{
		Use:   "measurements",
		Short: "Print the event log of what the supervisor measured into the TPM, and whether the TPM agrees",
		Long: fmt.Sprintf(`Print the TCG event log the supervisor keeps of each guest component it
extended into PCR %d (kernel, initrd, hardware, command line, manifest entry),
then the value the log replays to and, with a TPM, the PCR's value.`, measure.PCR),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			events, err := readMeasurementLog(logFile)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			io.WriteString(w, measure.FormatLog(events))
			replay := measure.Replay(events, measure.PCR)
			fmt.Fprintf(w, "PCR %d from the log: %x\n", measure.PCR, replay)
			if tpm == "" {
				return nil
			}
			value, err := readTPMPCR(tpm)
			if err != nil {
				fmt.Fprintf(w, "PCR %d in the TPM:  unknown (%v)\n", measure.PCR, err)
				return nil
			}
			fmt.Fprintf(w, "PCR %d in the TPM:  %x\n", measure.PCR, value)
			if value != replay {
				return fmt.Errorf("measurements: PCR %d of %s does not match the log %s: something else extended it, or the log is not this boot's", measure.PCR, tpm, logFile)
			}
			return nil
		},
	}
	c.Flags().StringVar(&logFile, "log", defaultMeasurementLog, "the supervisor's event log")
	c.Flags().StringVar(&tpm, "tpm", measure.DefaultTPM, `the TPM to read the PCR from ("" to read none)`)
	return c
}

func newAttestCmd() *cobra.Command {
	var logFile, tpm, expected string
	c := &cobra.Command{
		Use:   "attest --expected FILE",
		Short: "Compare this board's measurements with those tandem image build predicted, naming any component that differs",
		Long: fmt.Sprintf(`Read PCR %d from the TPM and the supervisor's event log, check that the log
accounts for the PCR's value, and compare both with the expected measurements
that tandem image build wrote beside the image (IMAGE.%s). Each component
that differs, was not measured or was not expected is named. The exit status
is 0 only when everything matches.`, measure.PCR, system.ExpectedMeasurements),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expected == "" {
				return errors.New("attest: --expected FILE is required (tandem image build writes IMAGE." + system.ExpectedMeasurements + ")")
			}
			x, err := measure.LoadExpected(expected)
			if err != nil {
				return fmt.Errorf("attest: %w", err)
			}
			events, err := readMeasurementLog(logFile)
			if err != nil {
				return fmt.Errorf("attest: %w", err)
			}
			value, err := readTPMPCR(tpm)
			if err != nil {
				return fmt.Errorf("attest: %w", err)
			}
			return attest(cmd.OutOrStdout(), x, events, value, tpm, logFile)
		},
	}
	c.Flags().StringVar(&expected, "expected", "", "the expected measurements (IMAGE."+system.ExpectedMeasurements+", written by tandem image build)")
	c.Flags().StringVar(&logFile, "log", defaultMeasurementLog, "the supervisor's event log")
	c.Flags().StringVar(&tpm, "tpm", measure.DefaultTPM, "the TPM")
	return c
}

// attest compares the TPM's PCR value and the log with the expectation
// and prints what it finds; the error lists every difference.
func attest(w io.Writer, x *measure.Expected, events []measure.Event, value [32]byte, tpm, logFile string) error {
	var problems []string
	if replay := measure.Replay(events, measure.PCR); replay != value {
		problems = append(problems, fmt.Sprintf("the log %s replays to %x, but PCR %d of %s holds %x: the log does not account for the PCR", logFile, replay, measure.PCR, tpm, value))
	}
	for _, d := range x.Compare(measure.Components(events)) {
		problems = append(problems, d.String())
	}
	if value != x.Value {
		problems = append(problems, fmt.Sprintf("PCR %d is %x, expected %x", measure.PCR, value, x.Value))
	}
	if len(problems) == 0 {
		fmt.Fprintf(w, "PCR %d = %x: as expected; the log's %d components all match\n", measure.PCR, value, len(x.Components))
		return nil
	}
	for _, p := range problems {
		fmt.Fprintf(w, "MISMATCH %s\n", p)
	}
	return fmt.Errorf("attest: %d mismatches: %s", len(problems), strings.Join(problems, "; "))
}

func readMeasurementLog(file string) ([]measure.Event, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading the event log: %w (is tandem system running with --run-dir %s?)", err, filepath.Dir(file))
	}
	events, err := measure.ParseLog(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return events, nil
}

func readTPMPCR(path string) ([32]byte, error) {
	tpm, err := measure.OpenTPM(path)
	if err != nil {
		return [32]byte{}, err
	}
	defer tpm.Close()
	return tpm.Read(measure.PCR)
}
