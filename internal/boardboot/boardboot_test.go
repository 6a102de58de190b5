package boardboot

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

// Bounds of a board's run. Under QEMU's software emulation on two cores
// the ZCU102's host boots in seconds and both guests print their
// markers within about half a minute of starting.
const (
	// runFor is tandem.runfor: the system stops then, markers or not.
	runFor = 300 * time.Second
	// boardTimeout bounds one boot of the board, power-off included.
	boardTimeout = 10 * time.Minute
	// boardSilence: once up, the guests report every second, but their
	// kernels boot quietly, and on a machine whose two cores other work
	// shares a minute and a half of that has been seen: a frozen board
	// is one silent for longer.
	boardSilence = qemuhost.DefaultSilence
)

// TestZCU102 builds the ZCU102's image with the demo system and boots it
// through the test harness (qemuhost, which retries a crashed host) on
// QEMU's xlnx-zcu102 with EL2, as tandem emulate boots it: the image's
// own kernel, device tree (adapted only where QEMU's model has no PMU
// firmware, emulate.ZynqMPWithoutPMU) and host initramfs, its boot
// script's command line, and the image as the SD card. The host must say it runs on the ZCU102 (the device
// tree's compatible, matched to the zcu102 profile), have KVM, mount the
// data partition from the SD card, start both guests, see the control
// guest's messages reach the infotainment guest with no fault, and power
// off cleanly.
func TestZCU102(t *testing.T) {
	qemuhost.RequireArch(t, qemuhost.ZCU102)
	start := time.Now()
	img, out := zcu102Image(t)
	if !strings.Contains(out, "boot file BOOT.BIN left out") {
		t.Errorf("tandem image build did not say the image lacks BOOT.BIN:\n%s", out)
	}
	built := time.Since(start)
	work := t.TempDir()
	bf, err := emulate.ReadBootFiles(img, work)
	if err != nil {
		t.Fatal(err)
	}
	if bf.Cmdline != bf.Info.Cmdline {
		t.Errorf("boot script's bootargs %q differ from %s's command line %q", bf.Cmdline, images.InfoName, bf.Info.Cmdline)
	}
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch: qemuhost.ZCU102,
		Board: &qemuhost.BoardImage{
			Kernel: bf.Kernel, DTB: bf.DTB, Initrd: bf.Initrd, Cmdline: bf.Cmdline, Disk: img,
			Booted: "tandem init: board", Done: "reboot: Power down",
		},
		Console: consoleLog{},
		Timeout: boardTimeout,
		Silence: boardSilence,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	for _, fix := range res.DTBFixes {
		t.Logf("device tree for QEMU: %s", fix)
	}
	text := consoleText(t, res.Output)
	for _, re := range zcu102Lines {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("console lacks %s; last lines:\n%s", re, res.Tail(40))
		}
	}
	if m := regexp.MustCompile(`(?m)^infotainment \| TANDEM-INFO received=\d+ faults=([1-9]\d*)`).FindStringSubmatch(text); m != nil {
		t.Errorf("the infotainment guest counted %s faults on the channel:\n%s", m[1], res.Tail(40))
	}
	t.Logf("image built in %v; board booted in %v (host init's first line), powered off after %v, %d attempt(s); whole test %v",
		built.Round(100*time.Millisecond), res.Boot.Round(100*time.Millisecond), res.Total.Round(100*time.Millisecond), res.Attempts, time.Since(start).Round(time.Second))
}

// splitByKernel is a line of the host's (tandem init's or the
// supervisor's) that a kernel message, printed to the same serial console
// while the line was being written, cut in two.
var splitByKernel = regexp.MustCompile(`(?m)^(tandem[^\n]*?)\[ *\d+\.\d+\] [^\n]*\n`)

// consoleText is the board's console as lines: the serial line's CR LF
// ends made LF, and a host line that a kernel message cut in two (the
// host kernel prints its warnings even when quiet) joined again, the
// kernel message left out and logged.
func consoleText(t *testing.T, raw string) string {
	t.Helper()
	text := strings.ReplaceAll(raw, "\r\n", "\n")
	return splitByKernel.ReplaceAllStringFunc(text, func(m string) string {
		t.Logf("a kernel message cut a host line in two; joined again: %q", m)
		return splitByKernel.ReplaceAllString(m, "$1")
	})
}

// zcu102Lines are what the ZCU102's console shows when its image boots
// on QEMU's model: the host's own findings, both guests' markers, the
// system's end and the power-off.
var zcu102Lines = []string{
	// The host found its own board, from the image's device tree.
	`(?m)^tandem init: board "ZynqMP ZCU102 Rev1.0" \(xlnx,zynqmp-zcu102-rev1\.0, xlnx,zynqmp-zcu102, xlnx,zynqmp\), profile zcu102$`,
	// The kernel was entered at EL2 and started KVM.
	`(?m)^tandem init: KVM ready \(/dev/kvm\)$`,
	// The data partition, from the SD card (the MMC block device).
	`(?m)^tandem init: data partition /dev/mmcblk0p2 mounted on /data$`,
	`(?m)^tandem: control: started`,
	`(?m)^tandem: infotainment: started`,
	// The guests' own markers: messages sent, and received with no
	// fault on the channel.
	`(?m)^control \| TANDEM-CONTROL .*sent=[1-9]`,
	`(?m)^infotainment \| TANDEM-INFO received=[1-9]\d* faults=0 `,
	`(?m)^tandem init: tandem\.until markers reached \(control at \d+\.\ds, infotainment at \d+\.\ds\)`,
	`(?m)^control\s+control\s+running`,
	`(?m)^infotainment\s+infotainment\s+running`,
	`(?m)^tandem init: system ended; powering off$`,
	`reboot: Power down`,
}

// TestEmulateZCU102 boots the ZCU102's demo image as a user's CI would:
// the board read from the image (tandem-image.json) and found among
// tandem emulate's boards, the demo's markers on the guests' consoles
// and the host's findings on the board's as expectations (emulate.Run,
// until the power-off). Every expectation must hold, the guests' lines
// must come split from the board's by their prefixes, the console must
// show what TestZCU102's does, and the board must power off.
func TestEmulateZCU102(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds the ZCU102 image and boots it under software emulation, a minute or more")
	}
	testenv.RequireCommand(t, emulate.ZCU102.QEMU, emulate.ZCU102.QEMUPackage)
	img, _ := zcu102Image(t)
	info, err := emulate.ReadImage(img)
	if err != nil {
		t.Fatal(err)
	}
	board, err := emulate.LookupBoard(info.Board)
	if err != nil || board != emulate.ZCU102 {
		t.Fatalf("LookupBoard(%q) = %v, %v; want the zcu102", info.Board, board, err)
	}
	var expect []*emulate.Check
	add := func(parse func(string, string) (*emulate.Check, error), spec string) {
		c, err := parse("expectation", spec)
		if err != nil {
			t.Fatal(err)
		}
		expect = append(expect, c)
	}
	for _, m := range e2e.DemoMarkers {
		add(emulate.ParseExpect, m.Guest+": "+m.Expr)
	}
	for _, spec := range []string{
		`board: ^tandem init: board "ZynqMP ZCU102 Rev1\.0" .*, profile zcu102$`,
		`board: ^tandem init: KVM ready`,
		`board: ^tandem init: data partition /dev/mmcblk0p2 mounted on /data$`,
	} {
		add(emulate.ParseExpect, spec)
	}
	add(emulate.ParseExpectNot, "Kernel panic")
	add(emulate.ParseExpectNot, "infotainment: faults=[1-9]")
	var console strings.Builder
	res, err := emulate.Run(context.Background(), emulate.Options{Image: img, Board: board, Guests: info.Guests,
		Expect: expect, UntilPowerOff: true, Timeout: boardTimeout, Out: io.MultiWriter(&console, consoleLog{}),
		Artifacts: filepath.Join(t.TempDir(), "artifacts")})
	if err != nil {
		t.Fatalf("emulate.Run() = %v\n%s", err, tail(console.String(), 40))
	}
	var report strings.Builder
	res.Report(&report)
	t.Logf("tandem emulate's report:\n%s", report.String())
	if !res.Passed() || !res.PoweredOff || res.End != emulate.EndPowerOff {
		t.Errorf("Run() = passed %v, powered off %v, ended by %q; want every expectation held and the board powered off\n%s",
			res.Passed(), res.PoweredOff, res.End, tail(console.String(), 40))
	}
	text := consoleText(t, console.String())
	for _, re := range zcu102Lines {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("console lacks %s; last lines:\n%s", re, tail(text, 40))
		}
	}
	for _, c := range res.Cases {
		if c.Passed && !c.Skipped && c.Line != "" && c.Console != "" && c.Console != emulate.BoardConsole &&
			!strings.HasPrefix(c.Line, c.Console+" | ") {
			t.Errorf("%s held on %q, not a line of %s's", c.Name, c.Line, c.Console)
		}
	}
	t.Logf("board powered off after %v", res.Duration.Round(100*time.Millisecond))
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

var (
	zcu102Once sync.Once
	zcu102Dir  string
	zcu102File string
	zcu102Out  string
	zcu102Err  error
)

// zcu102Image builds the ZCU102's image of the demo system once per test
// run (buildDemoImage), into a directory TestMain removes, and returns
// it and what the build printed.
func zcu102Image(t *testing.T) (img, out string) {
	t.Helper()
	b, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, filepath.Join(cache, "boards", "arm64", b.DTB), "run `make testdata`")
	zcu102Once.Do(func() {
		if zcu102Dir, zcu102Err = os.MkdirTemp("", "tandem-zcu102-"); zcu102Err == nil {
			zcu102File, zcu102Out, zcu102Err = buildDemoImage(b.Name, cache, zcu102Dir)
		}
	})
	if zcu102Err != nil {
		t.Fatal(zcu102Err)
	}
	return zcu102File, zcu102Out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if zcu102Dir != "" {
		os.RemoveAll(zcu102Dir)
	}
	os.Exit(code)
}

// buildDemoImage builds board's image of the demo system in work, as a
// user would, with `tandem image build`, its host's command line naming
// the demo's markers (tandem.until) and deadline (tandem.runfor). It
// returns the image and what the build printed.
func buildDemoImage(board, cache, work string) (img, out string, err error) {
	root, err := qemuhost.RepoRoot()
	if err != nil {
		return "", "", err
	}
	k, err := e2e.Arm64Kernel(cache)
	if err != nil {
		return "", "", err
	}
	tandem := filepath.Join(work, "tandem")
	build := exec.Command("go", "build", "-o", tandem, "./cmd/tandem")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	sys := filepath.Join(work, "system")
	if err := e2e.WriteDemoSystem(sys, k, e2e.DemoGuestPkg, root); err != nil {
		return "", "", err
	}
	img = filepath.Join(work, "tandem-"+board+".img")
	cmd := exec.Command(tandem, "image", "build", "--board", board, "--manifest", filepath.Join(sys, "system.yaml"),
		"-o", img, "--cache", cache, "--cmdline", "tandem.runfor="+runFor.String()+" "+e2e.UntilParam(e2e.DemoMarkers))
	cmd.Dir, cmd.Env = root, append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	b, err := cmd.CombinedOutput()
	if err != nil {
		return "", "", fmt.Errorf("tandem image build: %v\n%s", err, b)
	}
	return img, string(b), nil
}

// consoleLog streams the board's console to stderr with -v.
type consoleLog struct{}

func (consoleLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// TestConsoleText checks that a host line cut by a kernel message is
// joined again, and that kernel lines of their own and the guests'
// prefixed kernel lines are left as they are.
func TestConsoleText(t *testing.T) {
	for _, tc := range []struct {
		name, raw, want string
	}{
		{"a host line cut by a kernel message",
			"tandem init: KVM ready (/dev/k[    8.301234] mmc0: card stuck\r\nvm)\r\ntandem init: 3 modules loaded\r\n",
			"tandem init: KVM ready (/dev/kvm)\ntandem init: 3 modules loaded\n"},
		{"a supervisor line cut",
			"tandem: control: sta[   12.5] hrtimer: interrupt took 1 ns\r\nrted (pid 129)\r\n",
			"tandem: control: started (pid 129)\n"},
		{"a kernel line of its own is kept",
			"tandem init: system ended; powering off\r\n[   48.412345] reboot: Power down\r\n",
			"tandem init: system ended; powering off\n[   48.412345] reboot: Power down\n"},
		{"a guest's kernel lines are kept",
			"control | [    0.000000] Booting Linux\r\ncontrol | TANDEM-CONTROL sent=1\r\n",
			"control | [    0.000000] Booting Linux\ncontrol | TANDEM-CONTROL sent=1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := consoleText(t, tc.raw); got != tc.want {
				t.Errorf("consoleText(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}
