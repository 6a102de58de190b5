// Command demo is `make demo`: it builds the qemu-virt-arm64 image with a
// control guest and an infotainment guest, boots it the way a board boots
// (QEMU's virt machine with EL2, Debian's U-Boot as firmware, the image
// as a virtio disk), and shows what happens: U-Boot runs boot.scr from
// the boot partition, the host kernel starts tandem as init, tandem init
// mounts the data partition and runs `tandem system`, both guests' consoles
// appear prefixed by their names, then the status table, then the board
// powers off.
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
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
)

// Where Debian's u-boot-qemu installs the firmware (scripts/deps.sh).
const ubootBin = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

// markers are the lines the demo waits for (e2e.DemoMarkers).
var markers = e2e.DemoMarkers

// untilParam is tandem.until= for markers.
func untilParam() string { return e2e.UntilParam(markers) }

func main() {
	o := options{Root: ".", Out: os.Stdout}
	flag.DurationVar(&o.Deadline, "deadline", 150*time.Second, "tandem.runfor: how long the system may run before both guests have printed their markers")
	flag.DurationVar(&o.Timeout, "timeout", 6*time.Minute, "bound on the whole boot")
	flag.StringVar(&o.Dir, "dir", "build/demo", "work directory")
	flag.BoolVar(&o.SilentGuests, "silent-guests", false, "give both guests an /init that prints nothing, to see the demo fail for want of their reports")
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
	// SilentGuests gives both guests an /init that prints nothing
	// (testdata/silent), so the markers never come: the demo's failure.
	SilentGuests bool
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
	dir, timeout := o.Dir, o.Timeout
	stage("checking prerequisites…")
	for _, c := range []struct{ cmd, pkg string }{{"qemu-system-aarch64", "qemu-system-arm"}, {"mke2fs", "e2fsprogs"}, {"debugfs", "e2fsprogs"}} {
		if _, err := exec.LookPath(c.cmd); err != nil {
			return fmt.Errorf("%s not found: run `make deps` (Debian's %s)", c.cmd, c.pkg)
		}
	}
	if _, err := os.Stat(ubootBin); err != nil {
		return fmt.Errorf("%s missing: run `make deps` (Debian's u-boot-qemu)", ubootBin)
	}
	k, err := e2e.Arm64Kernel("build/cache")
	if err != nil {
		return fmt.Errorf("%w (run `scripts/testdata.sh arm64`)", err)
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
	sys := filepath.Join(dir, "system")
	if o.SilentGuests {
		stage("building the guests' initramfs images (control, infotainment; arm64), both SILENT: their /init prints nothing…")
	} else {
		stage("building the guests' initramfs images (control, infotainment; arm64)…")
	}
	initPkg := e2e.DemoGuestPkg
	if o.SilentGuests {
		initPkg = func(string) string { return "github.com/tandem-hv/tandem/internal/cmd/demo/testdata/silent" }
	}
	if err := e2e.WriteDemoSystem(sys, k, initPkg, "."); err != nil {
		return err
	}

	cmdline := "tandem.runfor=" + o.Deadline.String() + " " + untilParam()
	stage("building image… (tandem image build --board qemu-virt-arm64 --cmdline %q)", cmdline)
	img := filepath.Join(dir, "tandem-qemu-virt-arm64.img")
	build := exec.Command(tandem, "image", "build", "--board", "qemu-virt-arm64",
		"--manifest", filepath.Join(sys, "system.yaml"), "-o", img, "--cmdline", cmdline)
	build.Stdout, build.Stderr = out, out
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		build.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	}
	if err := build.Run(); err != nil {
		return fmt.Errorf("tandem image build: %w", err)
	}

	w := newWatcher()
	stage("booting U-Boot… (qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu max,pauth-impdef=on -smp 2 -m 2G -bios %s)", ubootBin)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// -snapshot: the host mounts the data partition read-write; the
	// built image stays as built. pauth-impdef=on: Debian's kernels sign
	// return addresses (pointer authentication), and QEMU computes the
	// architected algorithm (QARMA) slowly; with pauth-impdef=on the CPU
	// offers an implementation-defined algorithm instead, which QEMU
	// computes cheaply.
	q := exec.CommandContext(ctx, "qemu-system-aarch64",
		"-M", "virt,virtualization=on,gic-version=3", "-cpu", "max,pauth-impdef=on", "-smp", "2", "-m", "2G",
		"-accel", "tcg,thread=multi",
		"-bios", ubootBin, "-nographic", "-no-reboot", "-snapshot",
		"-drive", "if=none,id=disk,format=raw,file="+img, "-device", "virtio-blk-device,drive=disk")
	q.WaitDelay = 5 * time.Second
	stdout, err := q.StdoutPipe()
	if err != nil {
		return err
	}
	q.Stderr = os.Stderr
	if err := q.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		w.line(strings.TrimRight(sc.Text(), "\r"))
	}
	werr := q.Wait()
	w.summary()
	missing := w.missing()
	for _, m := range missing {
		w.guilty(m)
	}
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("the board did not power off within %v: see the console above, or raise -timeout", timeout)
	case werr != nil && !errors.Is(werr, io.EOF):
		return fmt.Errorf("qemu: %w", werr)
	case len(missing) == 1:
		m := missing[0]
		return fmt.Errorf("%s never printed its marker %s:%s within tandem.runfor=%v: its console's last lines above show how far it got", m.Guest, m.Guest, m.Expr, o.Deadline)
	case len(missing) > 1:
		var names, l []string
		for _, m := range missing {
			names, l = append(names, m.Guest), append(l, m.Guest+":"+m.Expr)
		}
		return fmt.Errorf("%s never printed their markers %s within tandem.runfor=%v: their consoles' last lines above show how far they got", strings.Join(names, " and "), strings.Join(l, ", "), o.Deadline)
	case w.faults() > 0:
		return fmt.Errorf("the infotainment guest's last report counts faults=%d: messages were corrupted, repeated, reordered or lost on the channel; see its TANDEM-INFO lines above", w.faults())
	case !w.reached("poweroff"):
		return fmt.Errorf("QEMU ended without the host's clean power-off: see the console above")
	}
	stage("the board powered off cleanly: demo done in %.0fs", time.Since(start0).Seconds())
	return nil
}
