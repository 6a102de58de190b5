package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/images/hostinit"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/measure"
)

func init() {
	subcommands = append(subcommands, newInitCmd)
	// The kernel starts /init as PID 1 with no arguments: in the host
	// initramfs that is tandem itself, which then runs as `tandem init`.
	if os.Getpid() == 1 && len(os.Args) == 1 {
		os.Args = append(os.Args, "init")
	}
}

// stopGrace is how long the supervisor gets to stop its guests.
const stopGrace = 15 * time.Second

// newInitCmd is the host's init (hidden: only the kernel runs it). It
// prepares the host (hostinit.Boot), runs `tandem system` on the data
// partition's manifest, and powers off when the supervisor ends.
//
// tandem.runfor=DURATION on the kernel command line (demos, tests) stops
// the system after that long: init prints the status table (`tandem
// ps`), stops the supervisor with SIGTERM, and powers off.
//
// tandem.until=GUEST:REGEX,… stops it sooner: init reads each named
// guest's console log (`tandem logs GUEST`) every 500 ms and stops the
// system the same way once every guest has printed a line matching its
// regexp. tandem.runfor stays the deadline: when it expires first, init
// names each marker that never came, with the last 10 lines of that
// guest's log, before it stops the system.
func newInitCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "init",
		Short:  "Run as the host's init: mount, load modules, mount the data partition, run tandem system",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, out := cmd.ErrOrStderr(), cmd.OutOrStdout()
			if os.Getpid() != 1 {
				return fmt.Errorf("init: runs only as PID 1, in the host initramfs")
			}
			status := "system ended"
			manifest, err := hostinit.Boot(log)
			if err == nil {
				err = runSystem(manifest, out, log)
			}
			if err != nil {
				status = err.Error()
				fmt.Fprintf(log, "tandem init: %v\n", err)
				if _, serr := os.Stat("/bin/sh"); serr == nil {
					fmt.Fprintln(log, "tandem init: debug shell on the console; exit it to power off")
					sh := exec.Command("/bin/sh")
					sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, out, log
					sh.Run()
				} else {
					time.Sleep(5 * time.Second) // leave the message on the console
				}
			}
			fmt.Fprintf(log, "tandem init: %s; powering off\n", status)
			// PID 1 must not return: the kernel would panic.
			for {
				if err := hostinit.PowerOff(); err != nil {
					fmt.Fprintf(log, "tandem init: power off: %v\n", err)
				}
				time.Sleep(time.Second)
			}
		},
	}
}

func runSystem(manifest string, out, log io.Writer) error {
	runFor, err := cmdlineDuration("tandem.runfor")
	if err != nil {
		return err
	}
	var markers []*marker
	if v, ok := cmdlineValue("tandem.until"); ok {
		if markers, err = parseUntil(v); err != nil {
			return err
		}
	}
	// The supervisor reports a manifest error itself, when it starts.
	control := system.DefaultControlSocket
	if m, err := system.LoadManifest(manifest); err == nil {
		if m.ControlSocket != "" {
			control = m.ControlSocket
		}
		var names []string
		for _, g := range m.Guests {
			names = append(names, g.Name)
		}
		if err := checkGuests(markers, manifest, names); err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "tandem init: starting tandem system %s\n", manifest)
	sys := exec.Command("/proc/self/exe", "system", manifest)
	sys.Stdin, sys.Stdout, sys.Stderr = os.Stdin, out, log
	commands := consoleCommandsOn()
	if commands {
		sys.Stdin = nil // the console's lines are init's
	}
	if err := sys.Start(); err != nil {
		return fmt.Errorf("starting tandem system: %w", err)
	}
	if commands {
		fmt.Fprintf(log, "tandem init: console commands on (%s=1): %s\n", commandsParam, consoleHelp)
		go serveConsoleCommands(os.Stdin, int(os.Stdin.Fd()), control, log)
	}
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- sys.Wait() }()
	var deadline, poll <-chan time.Time
	if runFor > 0 {
		t := time.NewTimer(runFor)
		defer t.Stop()
		deadline = t.C
	}
	if len(markers) > 0 {
		t := time.NewTicker(untilPoll)
		defer t.Stop()
		poll = t.C
	}
	if deadline == nil && poll == nil {
		return <-done
	}
	logs := func(guest string) ([]byte, error) {
		var b bytes.Buffer
		err := system.Control(control, "logs "+guest, nil, &b)
		return b.Bytes(), err
	}
	reached := func() bool { return checkMarkers(markers, logs, time.Since(start)) }
	for {
		select {
		case err := <-done:
			return err
		case <-poll:
			if !reached() {
				continue
			}
		case <-deadline:
			// A line may have come since the last poll.
			if len(markers) == 0 || !reached() {
				for _, m := range markers {
					if !m.reached {
						reportMissing(log, m, runFor, logs)
					}
				}
				fmt.Fprintf(log, "\ntandem init: tandem.runfor=%v is up: status, then stopping the system\n", runFor)
				stopSystem(sys, done, manifest, control, out, log)
				return nil
			}
		}
		// Every marker is reached.
		var at []string
		for _, m := range markers {
			at = append(at, fmt.Sprintf("%s at %.1fs", m.guest, m.at.Seconds()))
		}
		fmt.Fprintf(log, "\ntandem init: tandem.until markers reached (%s): status, then stopping the system\n", strings.Join(at, ", "))
		if guest, ok := cmdlineValue("tandem.kill"); ok {
			killAndWait(guest, markers, runDeadline(start, runFor), screenGap, boardScreen(manifest), logs, controlText(control), log)
		}
		stopSystem(sys, done, manifest, control, out, log)
		return nil
	}
}

// untilPoll is how often init reads the guests' logs for tandem.until.
const untilPoll = 500 * time.Millisecond

// reportMissing says that m's line never came and shows the end of its
// guest's log, in one write, so the guests' lines, which the supervisor
// prints on the same console meanwhile, do not land inside it.
func reportMissing(w io.Writer, m *marker, runFor time.Duration, logs func(string) ([]byte, error)) {
	var b bytes.Buffer
	log, err := logs(m.guest)
	switch tail := lastLines(log, 10); {
	case err != nil:
		fmt.Fprintf(&b, "tandem init: tandem.until: no line of %s matched %s within tandem.runfor=%v, and its log cannot be read: %v\n", m.guest, m.re, runFor, err)
	case len(tail) == 0:
		fmt.Fprintf(&b, "tandem init: tandem.until: no line of %s matched %s within tandem.runfor=%v: its console printed nothing\n", m.guest, m.re, runFor)
	default:
		fmt.Fprintf(&b, "tandem init: tandem.until: no line of %s matched %s within tandem.runfor=%v; its last %d lines:\n", m.guest, m.re, runFor, len(tail))
		for _, l := range tail {
			fmt.Fprintf(&b, "tandem init:   %s | %s\n", m.guest, l)
		}
	}
	w.Write(b.Bytes())
}

// stopSystem prints the status table (`tandem ps`) and stops the
// supervisor, killing it if it does not end within stopGrace. The table
// goes out in one write, so the guests' lines, which the supervisor
// prints on the same console meanwhile, do not land inside it.
func stopSystem(sys *exec.Cmd, done <-chan error, manifest, control string, out, log io.Writer) {
	var ps bytes.Buffer
	if err := system.Control(control, "ps", nil, &ps); err != nil {
		fmt.Fprintf(log, "tandem init: tandem ps: %v\n", err)
	}
	out.Write(ps.Bytes())
	attestBoard(manifest, log)
	printScreens(manifest, control, log)
	sys.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopGrace):
		fmt.Fprintf(log, "tandem init: the supervisor did not stop within %v: killing it\n", stopGrace)
		sys.Process.Kill()
		<-done
	}
}

// cmdlineValue reads KEY=VALUE from the kernel command line.
func cmdlineValue(key string) (string, bool) {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// cmdlineDuration reads KEY=DURATION from the kernel command line (0 when
// absent).
func cmdlineDuration(key string) (time.Duration, error) {
	v, ok := cmdlineValue(key)
	if !ok {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("kernel command line %s=%q: want a duration such as 30s", key, v)
	}
	return d, nil
}

// attestBoard compares the board's measurements with the prediction
// tandem image build wrote into the image, as `tandem attest` does, when
// the board has a TPM: the console then says whether what ran is what
// was built. A board without a TPM, or an image without a prediction,
// gets one line saying so.
func attestBoard(manifest string, log io.Writer) {
	if _, err := os.Stat(measure.DefaultTPM); err != nil {
		fmt.Fprintf(log, "tandem init: attest: no TPM (%s): the guests were not measured\n", measure.DefaultTPM)
		return
	}
	m, err := system.LoadManifest(manifest)
	if err != nil {
		fmt.Fprintf(log, "tandem init: attest: %v\n", err)
		return
	}
	var b bytes.Buffer
	err = func() error {
		x, err := measure.LoadExpected(m.DefaultExpected())
		if err != nil {
			return err
		}
		events, err := readMeasurementLog(defaultMeasurementLog)
		if err != nil {
			return err
		}
		value, err := readTPMPCR(measure.DefaultTPM)
		if err != nil {
			return err
		}
		return attest(&b, x, events, value, measure.DefaultTPM, defaultMeasurementLog)
	}()
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if l != "" {
			fmt.Fprintf(log, "tandem init: attest: %s\n", l)
		}
	}
	if err != nil && b.Len() == 0 {
		fmt.Fprintf(log, "tandem init: attest: %v\n", err)
	}
}

// screenGap is the time before the first picture of a display and
// between two: a guest's dashboard draws a few frames a second, and a
// board under software emulation is slow to show them.
const screenGap = 2 * time.Second

// printScreens prints, when the kernel command line has tandem.screens=N,
// N pictures two seconds apart of each guest's display on the console, as
// base64 lines that tandem emulate reads back (emulate.WriteScreen): the
// way a board under CI, whose only way out is its serial console, shows
// its screens.
func printScreens(manifest, control string, log io.Writer) {
	v, ok := cmdlineValue("tandem.screens")
	if !ok {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 10 {
		fmt.Fprintf(log, "tandem init: tandem.screens=%q: want a number of pictures from 1 to 10\n", v)
		return
	}
	m, err := system.LoadManifest(manifest)
	if err != nil {
		return
	}
	for shot := 1; shot <= n; shot++ {
		time.Sleep(screenGap)
		for _, g := range m.Guests {
			if g.Display == nil {
				continue
			}
			var png bytes.Buffer
			if err := system.Control(control, "screenshot "+g.Name, nil, &png); err != nil {
				fmt.Fprintf(log, "tandem init: screen %s: %v\n", g.Name, err)
				continue
			}
			emulate.WriteScreen(log, g.Name, shot, n, png.Bytes())
		}
	}
}
