package main

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// bootSetup skips unless this machine can boot the demo, and builds
// tandem into a temporary directory: it returns the source tree, the
// binary and the work directory.
func bootSetup(t *testing.T) (root, tandem, work string) {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: boots an emulated board for a minute or two")
	}
	testenv.RequireCommand(t, "qemu-system-aarch64", "qemu-system-arm")
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireFile(t, "../../../build/cache/pkgs/u-boot-qemu-trixie_all/usr/lib/u-boot/qemu_arm64/u-boot.bin", "run `scripts/testdata.sh u-boot-qemu-trixie`")
	root, _ = filepath.Abs("../../..")
	testenv.RequireFile(t, filepath.Join(root, "build/cache/arm64/release"), "run `scripts/testdata.sh arm64`")
	work = t.TempDir()
	tandem = filepath.Join(work, "tandem")
	build := exec.Command("go", "build", "-o", tandem, "./cmd/tandem")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	wd, _ := os.Getwd()
	t.Cleanup(func() { os.Chdir(wd) })
	return root, tandem, work
}

// TestDemo runs `make demo` end to end: the image is built, U-Boot boots
// it under QEMU with a software TPM as the board's TPM, both guests print
// their markers on their consoles (prefixed by name; the control guest
// starts only because the TPM measured it as the image predicted), tandem
// init stops the system on them, the status table shows both running,
// the board's PCR 15 and event log match the image's prediction, the
// board powers off cleanly, and the summary gives every stage's time, the
// messages, faults and restarts.
func TestDemo(t *testing.T) {
	root, tandem, work := bootSetup(t)
	var console bytes.Buffer
	start := time.Now()
	err := run(options{Root: root, Dir: filepath.Join(work, "demo"), Tandem: tandem, Deadline: 300 * time.Second, Timeout: 10 * time.Minute, Out: &console})
	if err != nil {
		t.Fatalf("run() = %v; console:\n%s", err, tail(console.String(), 60))
	}
	text := console.String()
	for _, re := range []string{
		`(?m)^control \| TANDEM-CONTROL misses=\d+ .* sent=[1-9]`,
		`(?m)^infotainment \| TANDEM-INFO received=[1-9]\d* faults=0 `,
		`(?m)^tandem init: tandem.until markers reached \(control at \d+\.\ds, infotainment at \d+\.\ds\)`,
		// tandem.kill: the control guest is killed and restarted.
		`(?m)^tandem init: board screen 1: every guest runs`,
		`(?m)^tandem init: tandem.kill: killed control's VMM \(pid \d+\)`,
		`(?m)^tandem init: tandem.kill: control is back: its marker came again \d+\.\ds after the kill`,
		`(?m)^tandem init: board screen 2: control restarted`,
		`(?m)^control\s+control\s+running\s+\d+\s+\S+\s+1\s`,
		`(?m)^NAME\s+ROLE\s+STATE`,
		`(?m)^control\s+control\s+running`,
		`(?m)^infotainment\s+infotainment\s+running`,
		// Measured boot, end to end: the board's TPM holds what the image
		// predicted (the stage line says the value).
		`(?m)^tandem init: attest: PCR 15 = [0-9a-f]{64}: as expected; the log's \d+ components all match`,
		`the image predicts PCR 15 = [0-9a-f]{64}`,
		`reboot: Power down`,
		// The summary.
		`(?m)^\s*stage\s+at\s+took$`,
		`(?m)^\s*image built\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*U-Boot found boot\.scr\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*host kernel started\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*data partition mounted\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*system started\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*markers reached\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*TPM attested\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*powered off\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^messages received\s+[1-9]\d*$`,
		`(?m)^faults\s+0$`,
		`(?m)^restarts\s+control 1, infotainment 0$`,
		`(?m)^\s*control killed\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*control back\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^control loop\s+\d+ of [1-9]\d* cycles woke a period`,
		`demo done in \d+s`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("console lacks %s; last lines:\n%s", re, tail(text, 60))
		}
	}
	if strings.Contains(text, "deadline, no markers") {
		t.Errorf("the summary has a deadline row though the markers came:\n%s", tail(text, 30))
	}
	failedBefore := t.Failed()
	checkScreens(t, filepath.Join(work, "demo"))
	if t.Failed() && !failedBefore {
		t.Logf("the guests' reports and init's lines from the kill to the second picture:\n%s", restartLines(text))
	}
	t.Logf("demo took %v; its end:\n%s", time.Since(start).Round(time.Second), tail(text, 20))
}

// TestDemoSilentGuests runs the demo with guests that print nothing: the
// markers never come, tandem init names them when tandem.runfor is up,
// and the demo fails naming them, with each guest's console tail, after
// the summary.
func TestDemoSilentGuests(t *testing.T) {
	root, tandem, work := bootSetup(t)
	var console bytes.Buffer
	err := run(options{Root: root, Dir: filepath.Join(work, "demo"), Tandem: tandem, Deadline: 40 * time.Second, Timeout: 5 * time.Minute, Out: &console, SilentGuests: true})
	text := console.String()
	t.Logf("run() = %v; the console's end:\n%s", err, tail(text, 40))
	if err == nil {
		t.Fatalf("run() = nil with silent guests; want the missing markers named")
	}
	for _, m := range markers {
		if !strings.Contains(err.Error(), m.Guest+":"+m.Expr) {
			t.Errorf("run() = %q; want it to name marker %s:%s", err, m.Guest, m.Expr)
		}
	}
	if !strings.HasPrefix(err.Error(), "control and infotainment never printed their markers") || strings.Contains(err.Error(), "\n") {
		t.Errorf("run() = %q; want one line naming both guests", err)
	}
	for _, re := range []string{
		`(?m)^tandem init: tandem.until: no line of control matched TANDEM-CONTROL`,
		`(?m)^tandem init: tandem.until: no line of infotainment matched TANDEM-INFO`,
		`(?m)^tandem init: tandem.runfor=40s is up`,
		`(?m)^NAME\s+ROLE\s+STATE`,
		`reboot: Power down`,
		`(?m)^\s*deadline, no markers\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*markers reached\s+—\s+—$`,
		`(?m)^messages received\s+— \(no report\)$`,
		// The guilty guests, with their consoles' tails (or the word
		// that they printed nothing).
		`==> \[ *\d+\.\ds\] FAILED: control never printed TANDEM-CONTROL\.\*sent=\[1-9\] \(the control loop's report with messages sent\); its console('s last (line|\d+ lines)[^\n]*:\n(control \| .*\n)+| shows nothing)`,
		`==> \[ *\d+\.\ds\] FAILED: infotainment never printed TANDEM-INFO\S+ \(the infotainment receiver's report[^)]*\); its console('s last (line|\d+ lines)[^\n]*:\n(infotainment \| .*\n)+| shows nothing)`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("console lacks %s", re)
		}
	}
}

// TestWatcher feeds the watcher a console: the supervisor's and the VMM's
// own lines on a guest's console are kept in its tail, and the summary
// takes the last reports and the status table. (Whether a marker came is
// tandem emulate's verdict: emulate's TestSessionVMMLines.)
func TestWatcher(t *testing.T) {
	var buf bytes.Buffer
	start0, out = time.Now(), &buf
	feed := func(w *watcher, lines string) {
		for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
			w.line(l)
		}
	}
	w := newWatcher()
	feed(w, `
Found U-Boot script /boot.scr
Tandem: starting the host
tandem init: data partition /dev/vda2 mounted on /data
tandem init: starting tandem system /data/system.yaml
control | tandem: guest ended: watchdog expired (TANDEM-CONTROL sent=5)
tandem: control ended; restarting
infotainment | tandem: guest ended: TANDEM-INFO received=12 faults=0 crc=0
control TANDEM-CONTROL misses=0 p50-us=1 p99-us=2 max-us=3 cycles=1000 sent=100 dropped=0 connected=true
infotainment: TANDEM-INFO received=12 faults=0 crc=0
tandem init:   control | TANDEM-CONTROL misses=0 p50-us=1 p99-us=2 max-us=3 cycles=1000 sent=100 dropped=0 connected=true
control | TANDEM-CONTROL misses=0 p50-us=1 p99-us=2 max-us=3 cycles=1000 sent=0 dropped=100 connected=false
infotainment | TANDEM-INFO received=0 faults=0 crc=0 repeated=0 reordered=0 lost=0 connections=0 seq=0 speed=0.0 rpm=0 gear=0
`)
	feed(w, `
control | TANDEM-CONTROL misses=7 p50-us=80 p99-us=2500 max-us=9000 cycles=3000 sent=200 dropped=100 connected=true
infotainment | TANDEM-INFO received=180 faults=0 crc=0 repeated=0 reordered=0 lost=0 connections=1 seq=179 speed=50.0 rpm=2000 gear=3

tandem init: tandem.until markers reached (control at 20.1s, infotainment at 20.6s): status, then stopping the system
NAME           ROLE          STATE        PID     UPTIME RESTARTS       CPU      RSS
control        control       running      201        21s        1     9.12s      40M
infotainment   infotainment  running      202        20s        0     3.40s      52M
tandem init: attest: PCR 15 = f2ea9ea57040e1e1692a17ae007b5965298e7b9650b349cb1561c165b9adc2c3: as expected; the log's 10 components all match
tandem init: system ended; powering off
reboot: Power down
`)
	if len(w.tail["control"]) != 3 || w.tail["control"][0] != "control | tandem: guest ended: watchdog expired (TANDEM-CONTROL sent=5)" {
		t.Errorf("control's tail = %q; want its 3 console lines", w.tail["control"])
	}
	w.summary()
	text := buf.String()
	for _, re := range []string{
		`(?m)^\s*markers reached\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*TPM attested\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^\s*powered off\s+\d+\.\ds\s+\d+\.\ds$`,
		`(?m)^messages received\s+180$`,
		`(?m)^faults\s+0$`,
		`(?m)^restarts\s+control 1, infotainment 0$`,
		`(?m)^control loop\s+7 of 3000 cycles woke a period \(1 ms\) or more late; wake-up lateness in its last second p99 2500 µs, max 9000 µs$`,
		`(?m)^missed deadlines: the board is emulated in software on this machine`,
		`(?m)^restarts: the supervisor restarted a guest`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("summary lacks %s:\n%s", re, text)
		}
	}
	if strings.Contains(text, "deadline, no markers") {
		t.Errorf("summary has a deadline row though the markers came:\n%s", text)
	}
}

// TestGuilty checks what the demo shows for a missing marker: the marker,
// and its guest's last console lines, at most tailLines of them, saying
// when they are only the VMM's.
func TestGuilty(t *testing.T) {
	var buf bytes.Buffer
	start0, out = time.Now(), &buf
	w := newWatcher()
	for i := 1; i <= 20; i++ {
		w.line(fmt.Sprintf("control | booting %d", i))
	}
	w.line("infotainment | tandem: guest ended: stopped: terminated signal received")
	buf.Reset()
	for _, m := range markers {
		w.guilty(m)
	}
	text := buf.String()
	for _, re := range []string{
		`(?m)^==> \[ *\d+\.\ds\] FAILED: control never printed TANDEM-CONTROL\.\*sent=\[1-9\] \(the control loop's report with messages sent\); its console's last 15 lines:\ncontrol \| booting 6\n(control \| booting \d+\n){13}control \| booting 20\n`,
		`(?m)^==> \[ *\d+\.\ds\] FAILED: infotainment never printed \S+ \(.*\); its console's last line \(the VMM's: the guest itself printed nothing\):\ninfotainment \| tandem: guest ended`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("guilty() output lacks %s:\n%s", re, text)
		}
	}
}

// TestUntilParam checks the host's tandem.until: no character the kernel
// command line, tandem.until or U-Boot's quoted boot script would take.
func TestUntilParam(t *testing.T) {
	p := untilParam()
	if strings.ContainsAny(p, " \t\"'\\$") || strings.Count(p, ",") != len(markers)-1 {
		t.Errorf("untilParam() = %q: want no spaces, quotes, backslashes or $, and commas only between markers", p)
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// restartLines is what a screen that shows the link down needs beside
// it: from the control guest's kill to the second picture, init's lines,
// the control loop's reports and the infotainment guest's counts and
// connections, at most the last 80.
func restartLines(text string) string {
	i := strings.Index(text, "tandem init: tandem.kill: killed")
	j := strings.Index(text, "tandem init: board screen 2:")
	if i < 0 || j < i {
		return "(no kill, or no second picture, in the console)"
	}
	keep := regexp.MustCompile(`^(tandem init: |control \| TANDEM-CONTROL|infotainment \| TANDEM-INFO (received|connection))`)
	var l []string
	for _, line := range strings.Split(text[i:j+len("tandem init: board screen 2:")], "\n") {
		if keep.MatchString(line) {
			l = append(l, line)
		}
	}
	return tail(strings.Join(l, "\n"), 80)
}

// linkOK is the dashboard's status bar while messages arrive
// (guests/infotainment's good colour).
var linkOK = [3]byte{0x20, 0x90, 0x40}

// checkScreens checks the demo's pictures of the board's own screen
// (QEMU's screendump): the infotainment guest's 640x360 dashboard, shown
// centred on the board's larger framebuffer with black around it (the
// board display sink draws the whole screen), not blank, its link up in
// both, and different after the control guest's restart (its values
// moved on).
func checkScreens(t *testing.T, dir string) {
	t.Helper()
	const w, h = 640, 360 // e2e.DemoManifest's display
	var pics []*image.RGBA
	for _, name := range []string{"screen.png", "screen-2.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("the demo saved no %s: %v", name, err)
			return
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		rgba := image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
		size := rgba.Bounds().Size()
		if size.X < w || size.Y < h {
			t.Errorf("%s is %v, smaller than the guest's %dx%d display", name, size, w, h)
			return
		}
		inner := image.Rect((size.X-w)/2, (size.Y-h)/2, (size.X-w)/2+w, (size.Y-h)/2+h)
		colours, lit := map[uint32]bool{}, 0
		for y := 0; y < size.Y; y++ {
			for x := 0; x < size.X; x++ {
				o := rgba.PixOffset(x, y)
				c := uint32(rgba.Pix[o])<<16 | uint32(rgba.Pix[o+1])<<8 | uint32(rgba.Pix[o+2])
				if image.Pt(x, y).In(inner) {
					colours[c] = true
				} else if c != 0 {
					lit++
				}
			}
		}
		if len(colours) < 4 {
			t.Errorf("%s (%v): the centre %v has %d colours: a blank screen, not the dashboard", name, size, inner, len(colours))
		}
		if lit > 0 {
			t.Errorf("%s (%v): %d pixels outside the centred dashboard %v are not black: the board's screen shows more than the guest's", name, size, lit, inner)
		}
		// The status bar's first pixel (the bar is the dashboard's
		// bottom rows, the text inset): the link's state, green while
		// messages come, red once they stopped. The second picture is
		// taken once the restarted control guest's messages arrive
		// again, so both show the link up.
		o := rgba.PixOffset(inner.Min.X, inner.Max.Y-1)
		if got := [3]byte(rgba.Pix[o : o+3]); got != linkOK {
			t.Errorf("%s: the dashboard's status bar is #%02x%02x%02x, want the link-up green #%02x%02x%02x: the infotainment guest was not receiving the control guest's messages", name, got[0], got[1], got[2], linkOK[0], linkOK[1], linkOK[2])
		}
		pics = append(pics, rgba.SubImage(inner).(*image.RGBA))
	}
	same := true
	for y := pics[0].Rect.Min.Y; y < pics[0].Rect.Max.Y && same; y++ {
		a := pics[0].Pix[pics[0].PixOffset(pics[0].Rect.Min.X, y):][:4*w]
		b := pics[1].Pix[pics[1].PixOffset(pics[1].Rect.Min.X, y):][:4*w]
		same = bytes.Equal(a, b)
	}
	if same {
		t.Errorf("screen.png and screen-2.png show the same dashboard: its values did not move across the control guest's restart")
	}
}
