// Command demo is `make demo`: it builds the qemu-virt-arm64 image with a
// control guest and an infotainment guest, boots it the way a board boots
// through tandem emulate's code (package emulate: QEMU's virt machine with
// EL2, Debian's U-Boot as firmware, the image as a virtio disk), and shows
// what happens: U-Boot runs boot.scr from the boot partition, the host
// kernel starts tandem as init, tandem init mounts the data partition and
// runs `tandem system`, both guests' consoles appear prefixed by their
// names, then the status table, then the board powers off.
//
// The demo succeeds only on what the guests themselves print: the control
// loop's report with messages sent, and the infotainment receiver's with
// messages received and no faults. The host kernel boots with
// tandem.until= naming those two lines (tandem init stops the system once
// both have come) and tandem.runfor= as the deadline. The demo ends with a
// summary: each boot stage's time, messages, faults and restarts.
// Everything runs under software emulation on two host cores: the guests
// are small and their kernels quiet.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/measure"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// markers are the lines the demo waits for (e2e.DemoMarkers).
var markers = e2e.DemoMarkers

// untilParam is tandem.until= for markers.
func untilParam() string { return e2e.UntilParam(markers) }

func main() {
	o := options{Root: ".", Out: os.Stdout}
	flag.DurationVar(&o.Deadline, "deadline", 300*time.Second, "tandem.runfor: how long the system may run before both guests have printed their markers")
	flag.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "bound on the whole boot")
	flag.StringVar(&o.Dir, "dir", "build/demo", "work directory")
	flag.StringVar(&o.Artifacts, "artifacts", "", "keep every console's log and the boot's timeline in this directory (tandem emulate --artifacts)")
	flag.BoolVar(&o.SilentGuests, "silent-guests", false, "give both guests an /init that prints nothing, to see the demo fail for want of their reports")
	flag.BoolVar(&o.RT, "rt", false, "boot the control guest on Debian's PREEMPT_RT arm64 kernel (scripts/testdata.sh arm64-rt; make demo RT=1)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		os.Exit(1)
	}
}

// options configure a run.
type options struct {
	// Root is the source tree; Dir the work directory (relative to Root).
	Root, Dir string
	// Tandem is the tandem binary (default Root/build/tandem).
	Tandem string
	// Deadline is tandem.runfor: the system is stopped after that long
	// if the guests' markers have not all come.
	Deadline time.Duration
	// Timeout bounds the boot, from QEMU's start to its end.
	Timeout time.Duration
	Out     io.Writer
	// Artifacts is as for tandem emulate --artifacts.
	Artifacts string
	// SilentGuests gives both guests an /init that prints nothing
	// (testdata/silent), so the markers never come: the demo's failure.
	SilentGuests bool
	// RT boots the control guest on Debian's PREEMPT_RT arm64 kernel
	// (e2e.RTKernel), and the demo then also waits for the guest to say
	// its kernel is PREEMPT_RT.
	RT bool
}

var (
	start0 time.Time
	out    io.Writer = os.Stdout
)

func stage(format string, args ...any) {
	fmt.Fprintf(out, "\n==> [%5.1fs] %s\n", time.Since(start0).Seconds(), fmt.Sprintf(format, args...))
}

func run(o options) error {
	start0, out = time.Now(), o.Out
	if err := os.Chdir(o.Root); err != nil {
		return err
	}
	board := emulate.QEMUVirtARM64
	stage("checking prerequisites…")
	if err := board.Check(); err != nil {
		return fmt.Errorf("%w (or run `make deps`)", err)
	}
	for _, c := range []struct{ cmd, pkg string }{{"mke2fs", "e2fsprogs"}, {"debugfs", "e2fsprogs"}, {swtpm.Program, "swtpm"}} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			return fmt.Errorf("%s not found: run `make deps` (Debian's %s)", c.cmd, c.pkg)
		}
	}
	k, err := e2e.Arm64Kernel("build/cache")
	if err != nil {
		return fmt.Errorf("%w (run `scripts/testdata.sh arm64`)", err)
	}
	// The board has a TPM: its host kernel is Debian's cloud-arm64 one,
	// which drives it (tpm_tis).
	hostKernel, err := e2e.Arm64CloudKernel("build/cache")
	if err != nil {
		return err
	}
	var rtKernel *e2e.Kernel
	if o.RT {
		rk, err := e2e.RTKernel("build/cache", "arm64")
		if err != nil {
			return fmt.Errorf("-rt: %w", err)
		}
		rtKernel = &rk
	}
	if o.Tandem == "" {
		o.Tandem = "build/tandem"
	}
	tandem, err := filepath.Abs(o.Tandem)
	if err != nil {
		return err
	}
	if _, err := os.Stat(tandem); err != nil {
		return fmt.Errorf("%s missing: run `make build`", tandem)
	}
	// The board's own display shows the infotainment guest's: trixie's
	// U-Boot drives the board's bochs-display and hands it to the host
	// kernel (efifb, /dev/fb0), where tandem system shows the guest's
	// scanout (display.board).
	firmware, err := e2e.VirtDisplayFirmware("build/cache")
	if err != nil {
		return err
	}
	// tandem.kill: once the markers came, tandem init kills the control
	// guest's VMM and waits for the supervisor to restart it; the
	// board's screen is saved before (screen.png) and after
	// (screen-2.png), at the lines init prints for it.
	cmdline := "tandem.runfor=" + o.Deadline.String() + " " + untilParam() + " tandem.kill=control"
	initPkg, silent := e2e.DemoGuestPkg, ""
	if o.SilentGuests {
		initPkg = func(string) string { return "github.com/tandem-hv/tandem/internal/cmd/demo/testdata/silent" }
		silent = ", both SILENT: their /init prints nothing"
	}
	if o.RT {
		silent += "; the control guest on Debian's PREEMPT_RT kernel " + filepath.Base(rtKernel.Modules)
	}
	stage("building the guests' initramfs images (control, infotainment; arm64%s), then the image (tandem image build --board %s --cmdline %q)…", silent, board.Name, cmdline)
	img, err := e2e.BuildDemoImage(e2e.DemoImage{Dir: o.Dir, Tandem: tandem, Kernel: k, InitPkg: initPkg, Cmdline: cmdline, GoDir: ".", Out: out,
		TPMHost: &hostKernel, BoardDisplay: true, RTKernel: rtKernel})
	if err != nil {
		return err
	}
	predicted, err := measure.LoadExpected(strings.TrimSuffix(img, ".img") + "." + system.ExpectedMeasurements)
	if err != nil {
		return err
	}
	tpm, stopTPM, err := startTPM()
	if err != nil {
		return err
	}
	defer stopTPM()
	stage("a software TPM (swtpm) is the board's TPM: the host measures each guest into PCR %d before it starts, the control guest only if it matches (measured: required), and attests at the end; the image predicts PCR %d = %x",
		measure.PCR, measure.PCR, predicted.Value)

	// The boot is tandem emulate's: the demo's markers are its
	// expectations, and it runs until the board powers off (tandem init
	// stops the system once the markers came, or at tandem.runfor), so
	// that the status table and the power-off show too.
	expect, err := expectations()
	if err != nil {
		return err
	}
	attested, err := emulate.ParseExpect("--expect", fmt.Sprintf("board: tandem init: attest: PCR %d = %x: as expected", measure.PCR, predicted.Value))
	if err != nil {
		return err
	}
	expect = append(expect, attested)
	if o.RT {
		// The control guest's first line names its kernel.
		rt, err := emulate.ParseExpect("--expect", rtMarker)
		if err != nil {
			return err
		}
		expect = append(expect, rt)
	}
	dumps, err := screendumps(o.Dir)
	if err != nil {
		return err
	}
	w := newWatcher()
	shown := *board
	shown.Firmware = firmware
	stage("booting U-Boot… (tandem emulate %s --until %s: %s %s %s)", img, emulate.PowerOff, board.QEMU, strings.Join(shown.Args(img, tpm.Ctrl()), " "), strings.Join(board.Display, " "))
	lines := emulate.NewLines(w.line)
	res, err := emulate.Run(context.Background(), emulate.Options{Image: img, Board: board, Guests: guestNames(),
		Expect: expect, UntilPowerOff: true, Timeout: o.Timeout, Out: lines, Artifacts: o.Artifacts, TPM: tpm.Ctrl(),
		Firmware: firmware, Screendumps: dumps})
	lines.Flush()
	if err != nil {
		return err
	}
	w.summary()
	var missing []e2e.Marker
	for i, m := range markers {
		if !res.Cases[i].Passed {
			missing = append(missing, m)
			w.guilty(m)
		}
	}
	switch {
	case res.End == emulate.EndTimeout:
		return fmt.Errorf("the board did not power off within %v: see the console above, or raise -timeout", o.Timeout)
	case len(missing) == 1:
		m := missing[0]
		return fmt.Errorf("%s never printed its marker %s:%s within tandem.runfor=%v: its console's last lines above show how far it got", m.Guest, m.Guest, m.Expr, o.Deadline)
	case len(missing) > 1:
		var names, l []string
		for _, m := range missing {
			names, l = append(names, m.Guest), append(l, m.Guest+":"+m.Expr)
		}
		return fmt.Errorf("%s never printed their markers %s within tandem.runfor=%v: their consoles' last lines above show how far they got", strings.Join(names, " and "), strings.Join(l, ", "), o.Deadline)
	case !res.Cases[len(markers)].Passed:
		return fmt.Errorf("the board's TPM did not attest PCR %d as the image predicted (%x): see the tandem init: attest lines above", measure.PCR, predicted.Value)
	case o.RT && !res.Cases[len(markers)+1].Passed:
		return fmt.Errorf("the control guest never said it runs a PREEMPT_RT kernel (%s): see its first lines above", rtMarker)
	case w.faults() > 0:
		return fmt.Errorf("the infotainment guest's last report counts faults=%d: messages were corrupted, repeated, reordered or lost on the channel; see its TANDEM-INFO lines above", w.faults())
	case !res.Passed():
		return fmt.Errorf("QEMU ended without the host's clean power-off (%s): see the console above", res.End)
	}
	if err := checkScreendumps(res.Screendumps); err != nil {
		return err
	}
	stage("the board powered off cleanly: demo done in %.0fs", time.Since(start0).Seconds())
	return nil
}

// screendumps are the board's screen as the demo saves it, through
// QEMU's monitor: screen.png while both guests run, screen-2.png once
// the control guest was killed and is back (the lines tandem init prints
// for tandem.kill).
func screendumps(dir string) ([]*emulate.Screendump, error) {
	var l []*emulate.Screendump
	for _, d := range []struct{ line, file string }{
		{"board: ^tandem init: board screen 1:", "screen.png"},
		{"board: ^tandem init: board screen 2:", "screen-2.png"},
	} {
		c, err := emulate.ParseExpect("--screendump", d.line)
		if err != nil {
			return nil, err
		}
		f := filepath.Join(dir, d.file)
		os.Remove(f) // an old picture must not pass for this run's
		l = append(l, &emulate.Screendump{At: c, File: f})
	}
	return l, nil
}

// checkScreendumps fails the demo on a picture of the board's screen it
// could not take.
func checkScreendumps(rs []emulate.ScreendumpResult) error {
	var saved []string
	for _, r := range rs {
		if r.Err != "" {
			return fmt.Errorf("the board's screen %s: %s", r.File, r.Err)
		}
		saved = append(saved, r.File)
	}
	stage("the board's screen, as QEMU shows it (screendump): %s while both guests ran, then after the control guest was killed and restarted", strings.Join(saved, " "))
	return nil
}

// startTPM starts a fresh software TPM for the board, its state and
// control socket in a temporary directory (a socket path must be short).
// stop ends it and removes the directory.
func startTPM() (tpm *swtpm.TPM, stop func(), err error) {
	dir, err := os.MkdirTemp("", "tandem-demo-tpm-")
	if err != nil {
		return nil, nil, err
	}
	tpm, err = swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(dir, "state"), Ctrl: filepath.Join(dir, "ctrl.sock"),
		Log: filepath.Join(dir, "swtpm.log")})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("starting the board's software TPM: %w", err)
	}
	return tpm, func() { tpm.Stop(); os.RemoveAll(dir) }, nil
}

// rtMarker is what the control guest prints first on a PREEMPT_RT
// kernel (guests/control's TANDEM-KERNEL marker), as tandem emulate's
// --expect.
const rtMarker = "control: TANDEM-KERNEL.*preempt-rt=yes"

// expectations are the demo's markers as tandem emulate's --expect.
func expectations() ([]*emulate.Check, error) {
	var l []*emulate.Check
	for _, m := range markers {
		c, err := emulate.ParseExpect("--expect", m.Guest+": "+m.Expr)
		if err != nil {
			return nil, err
		}
		l = append(l, c)
	}
	return l, nil
}

// guestNames are the demo system's guests.
func guestNames() []string {
	var l []string
	for _, g := range e2e.DemoGuests {
		l = append(l, g.Name)
	}
	return l
}
