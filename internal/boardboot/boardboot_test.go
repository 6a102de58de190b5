package boardboot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
)

// Bounds of a board's run. Under QEMU's software emulation on two cores
// the ZCU102's host boots in seconds and both guests print their
// markers within about half a minute of starting.
const (
	// runFor is tandem.runfor: the system stops then, markers or not.
	runFor = 150 * time.Second
	// boardTimeout bounds one boot of the board, power-off included.
	boardTimeout = 6 * time.Minute
	// boardSilence: once up, the guests report every second, but their
	// kernels boot quietly, and on a machine whose two cores other work
	// shares a minute and a half of that has been seen: a frozen board
	// is one silent for longer.
	boardSilence = qemuhost.DefaultSilence
)

// TestZCU102 builds the ZCU102's image with the demo system and boots it
// on QEMU's xlnx-zcu102 with EL2: the image's own kernel, device tree
// (adapted only where QEMU's model has no PMU firmware, see qemuhost)
// and host initramfs, its boot script's command line, and the image as
// the SD card. The host must say it runs on the ZCU102 (the device
// tree's compatible, matched to the zcu102 profile), have KVM, mount the
// data partition from the SD card, start both guests, see the control
// guest's messages reach the infotainment guest with no fault, and power
// off cleanly.
func TestZCU102(t *testing.T) {
	qemuhost.RequireArch(t, qemuhost.ZCU102)
	start := time.Now()
	b, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	img, out := buildDemoImage(t, b, work)
	if !strings.Contains(out, "boot file BOOT.BIN left out") {
		t.Errorf("tandem image build did not say the image lacks BOOT.BIN:\n%s", out)
	}
	built := time.Since(start)
	bf, err := ReadBootFiles(img, work, b)
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
	// The serial line ends lines with CR LF.
	text := strings.ReplaceAll(res.Output, "\r\n", "\n")
	for _, re := range []string{
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
	} {
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

// buildDemoImage builds board b's image of the demo system in work, as a
// user would, with `tandem image build`, its host's command line naming
// the demo's markers (tandem.until) and deadline (tandem.runfor). It
// returns the image and what the build printed.
func buildDemoImage(t *testing.T, b *platforms.Board, work string) (img, out string) {
	t.Helper()
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	root, err := qemuhost.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, filepath.Join(cache, "boards", "arm64", b.DTB), "run `make testdata`")
	k, err := e2e.Arm64Kernel(cache)
	if err != nil {
		t.Fatal(err)
	}
	tandem := filepath.Join(work, "tandem")
	build := exec.Command("go", "build", "-o", tandem, "./cmd/tandem")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sys := filepath.Join(work, "system")
	if err := e2e.WriteDemoSystem(sys, k, e2e.DemoGuestPkg, root); err != nil {
		t.Fatal(err)
	}
	img = filepath.Join(work, "tandem-"+b.Name+".img")
	cmd := exec.Command(tandem, "image", "build", "--board", b.Name, "--manifest", filepath.Join(sys, "system.yaml"),
		"-o", img, "--cache", cache, "--cmdline", "tandem.runfor="+runFor.String()+" "+e2e.UntilParam(e2e.DemoMarkers))
	cmd.Dir, cmd.Env = root, append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	b2, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tandem image build: %v\n%s", err, b2)
	}
	return img, string(b2)
}

// consoleLog streams the board's console to stderr with -v.
type consoleLog struct{}

func (consoleLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

func TestScriptBootargs(t *testing.T) {
	for _, tt := range []struct {
		script, want string
		err          error
	}{
		{"# x\nsetenv bootargs \"console=ttyPS0,115200 quiet\"\nboot\n", "console=ttyPS0,115200 quiet", nil},
		{"  setenv bootargs \"\"\n", "", nil},
		{"setenv bootargs console=ttyS0\n", "", ErrNoBootargs},
		{"setenv bootargs \"unterminated\n", "", ErrNoBootargs},
		{"", "", ErrNoBootargs},
	} {
		got, err := ScriptBootargs(tt.script)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("ScriptBootargs(%q) = %q, %v; want %q, %v", tt.script, got, err, tt.want, tt.err)
		}
	}
}
