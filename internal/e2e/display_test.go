package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/guests/testpattern"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// displayMode is the display the display tests give the guest.
const displayMode = "1280x720"

// displayHost is an emulated host the display test runs in.
type displayHost struct {
	arch    string // qemuhost's
	goarch  string // the guests' programs' and the host's
	console string // the guests' console device
	cmdline string // the test guest's kernel command line
	memory  string // the host's RAM; "" for qemuhost's default
	// timeout bounds the host's run, guestTimeout tandem run's.
	timeout, guestTimeout time.Duration
	tandem                string // tandem built for the host
	kernel                Kernel // the guests' kernel
	// vncsnapshot are the files that run Debian's vncsnapshot in the
	// host, as /usr/bin/vncsnapshot.
	vncsnapshot map[string]string
}

// TestDisplayArm64 boots Debian's stock arm64 kernel with a display
// inside the emulated arm64 host: see runDisplay. The host's
// vncsnapshot is Debian's arm64 build.
func TestDisplayArm64(t *testing.T) {
	qemuhost.RequireArch(t, "arm64")
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(cache, "vncsnapshot-arm64", "root")
	testenv.RequireFile(t, filepath.Join(root, "usr/bin/vncsnapshot"), "scripts/testdata.sh vncsnapshot-arm64")
	files, err := qemuhost.UnpackedProgram(root, "/usr/bin/vncsnapshot")
	if err != nil {
		t.Fatal(err)
	}
	g, tandem := buildArm64(t)
	runDisplay(t, displayHost{arch: "arm64", goarch: "arm64", console: "ttyAMA0", cmdline: arm64GuestCmdline,
		memory: arm64HostMemory, timeout: arm64HostTimeout + displayExtra, guestTimeout: arm64GuestTimeout, tandem: tandem, kernel: g.kernel, vncsnapshot: files})
}

// TestDisplayX86 is TestDisplayArm64 in the emulated x86 host, with
// Debian's generic amd64 kernel (the cloud kernel the other x86 tests
// boot has no DRM; scripts/testdata.sh x86-generic) and this machine's
// vncsnapshot with its libraries.
func TestDisplayX86(t *testing.T) {
	qemuhost.Require(t)
	bin := testenv.RequireCommand(t, "vncsnapshot", "vncsnapshot")
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, filepath.Join(cache, "x86-generic", "release"), "scripts/testdata.sh x86-generic")
	k, err := CachedKernel(cache, "x86-generic")
	if err != nil {
		t.Fatal(err)
	}
	files, err := qemuhost.Program(bin)
	if err != nil {
		t.Fatal(err)
	}
	if bin != "/usr/bin/vncsnapshot" {
		files["/usr/bin/vncsnapshot"] = bin
	}
	runDisplay(t, displayHost{arch: "x86_64", goarch: "amd64", console: "ttyS0", cmdline: guestCmdline,
		timeout: hostBoot + 2*guestTimeout + displayExtra, guestTimeout: guestTimeout, tandem: buildTandem(t), kernel: k, vncsnapshot: files})
}

// displayExtra is what a display host's timeout allows beyond a guest
// run for the dashboard system: two guests' boots and a snapshot.
const displayExtra = 5 * time.Minute

// runDisplay boots the stock kernel of h with a display inside h's
// emulated host, three times in one host boot. Under tandem run
// --display it checks that the kernel's own drivers took the devices:
// virtio_gpu made a DRM card whose preferred mode is the display's (the
// EDID's), with a framebuffer device, and virtio_input registered the
// keyboard and the touch screen. Under tandem system, with the VMM as
// its own user and sandboxed, the guest draws guests/testpattern on
// /dev/fb0 and holds it; tandem screenshot, through the supervisor to
// the VMM, returns that picture pixel for pixel; then a VNC client
// (internal/cmd/vncinput) presses a key and touches the screen through
// the VNC socket display.vnc names, and the guest reads both from its
// evdev devices: the key's Linux code and the touch's position. Last,
// the demo system's control and infotainment guests run with the
// dashboard's VNC server on the host's loopback, and Debian's
// vncsnapshot saves the dashboard from it: a JPEG of the display's size
// with the dashboard's colours, not a blank screen.
func runDisplay(t *testing.T, h displayHost) {
	sys := filepath.Join(workDir, "display-"+h.arch)
	os.MkdirAll(sys, 0o755)
	initrd := filepath.Join(sys, "initrd")
	if err := BuildDisplayGuestInitramfs(initrd, GuestTestinit, h.kernel, h.goarch, "."); err != nil {
		t.Fatalf("building the %s display guest: %v", h.arch, err)
	}
	vncinput, err := hostProgram("github.com/tandem-hv/tandem/internal/cmd/vncinput", h.goarch)
	if err != nil {
		t.Fatal(err)
	}
	run := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus %d --memory %s --console stdio --display %s",
		h.cmdline, guestCPUs, guestMemory, displayMode)
	man := filepath.Join(sys, "display.yaml")
	if err := os.WriteFile(man, []byte(fmt.Sprintf(displayManifest, h.cmdline, guestCPUs, guestMemory)), 0o644); err != nil {
		t.Fatal(err)
	}
	dash, err := writeDashboardSystem(filepath.Join(sys, "dash"), h)
	if err != nil {
		t.Fatal(err)
	}
	files := maps.Clone(h.vncsnapshot)
	maps.Copy(files, dash)
	maps.Copy(files, map[string]string{"/tandem": h.tandem, "/vncinput": vncinput, "/guest/vmlinuz": h.kernel.Image, "/guest/initrd": initrd, "/s/system.yaml": man})
	// The first run, tandem run --display, is retried as a sequence's
	// guest is (retriedRun); the rest of the script runs once, after it.
	script := boundedFn + retriedRun(guestRun{name: "display", cmd: run}, h.guestTimeout) +
		"echo \"E2E end display\"\n" + displayScript + dashboardScript + "exit $status\n"
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    h.arch,
		Files:   files,
		Script:  script,
		Memory:  h.memory,
		Console: consoleLog{},
		Timeout: h.timeout,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	noteRetries(t, res)
	first := section(res, "display")
	facts := ParseFacts(first.Output)
	t.Logf("host booted in %v; %s; whole run %v", res.Boot, guestTiming(first), res.Total)
	if fails := ParseFacts(res.Output).Failures(); len(fails) > 0 {
		t.Errorf("guest reported failures: %q", fails)
	}
	want := map[string]string{"display": "card0", "driver": "virtio_gpu", "mode": displayMode, "fb": "yes"}
	if f := facts.Find("display"); fmt.Sprint(f) != fmt.Sprint(want) {
		t.Errorf("guest display marker = %v, want %v", f, want)
	}
	var inputs []string
	for _, f := range facts {
		if _, ok := f["input"]; ok {
			inputs = append(inputs, f["name"])
		}
	}
	for _, name := range []string{"Tandem_virtio_keyboard", "Tandem_virtio_touchscreen"} {
		if !slices.Contains(inputs, name) {
			t.Errorf("guest input devices %q lack %s", inputs, name)
		}
	}
	for _, want := range []string{"E2E screenshot-exit=0", "E2E vnc-socket=socket", "E2E vmm-status Uid:\t900", "E2E vncinput-exit=0", "E2E vncsnapshot-exit=0"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("host console lacks %q", want)
		}
	}
	checkScreenshot(t, res.Output)
	checkEvdev(t, res.Output)
	checkDashboard(t, res.Output)
	if facts.Find("done") == nil || first.ExitStatus != 0 || res.ExitStatus != 0 {
		t.Errorf("guest done marker %v, VMM exit status %d (host script %d): want done and 0", facts.Find("done"), first.ExitStatus, res.ExitStatus)
	}
	if t.Failed() {
		t.Logf("tandem run --display's last console lines:\n%s", first.Tail(40))
		t.Logf("last console lines:\n%s", res.Tail(80))
	}
}

// The input the VNC client sends: the keysym of a (Linux's KEY_A, 30)
// and a touch at a point of the 1280x720 screen.
const (
	inputKeysym = 0x61
	inputKey    = 30
	inputX      = 321
	inputY      = 123
)

// inputArgs are vncinput's arguments for that input.
var inputArgs = fmt.Sprintf("%#x %d %d", inputKeysym, inputX, inputY)

// checkEvdev checks that the guest read the VNC client's key and touch
// from its evdev devices (the script copies the guest's evdev markers
// to the host's console as "E2E evdev=...").
func checkEvdev(t *testing.T, console string) {
	t.Helper()
	var keys, touches []string
	for _, m := range regexp.MustCompile(`E2E evdev=(\S+) (key|touch)=(\S+)`).FindAllStringSubmatch(console, -1) {
		if m[2] == "key" {
			keys = append(keys, m[3])
		} else {
			touches = append(touches, m[3])
		}
	}
	if want := []string{fmt.Sprint(inputKey)}; !slices.Equal(keys, want) {
		t.Errorf("guest's evdev keys = %q, want %q (keysym %#x from the VNC client)", keys, want, inputKeysym)
	}
	if want := []string{fmt.Sprintf("%d,%d", inputX, inputY)}; !slices.Equal(touches, want) {
		t.Errorf("guest's evdev touches = %q, want %q", touches, want)
	}
}

// displayManifest runs the display guest under tandem system, holding
// its picture for the screenshot. Its verbs: the command line, vCPUs,
// memory.
const displayManifest = `guests:
  - name: shown
    kernel: /guest/vmlinuz
    initrd: /guest/initrd
    cmdline: %s tandem.hold=120s
    cpus: %d
    memory: %s
    display: {vnc: "unix:/run/tandem/shown.vnc"}
    restart: {policy: never}
`

// displayScript runs after tandem run: the system with the display
// guest, its VMM as the user tandem (uid 900), until the guest has
// drawn; then tandem screenshot, and the picture in base64 between
// markers.
var displayScript = `echo 'tandem:x:900:900:Tandem VMMs:/:/bin/false' >>/etc/passwd
echo 'tandem:x:900:' >>/etc/group
chgrp 900 /dev/kvm && chmod 660 /dev/kvm
/tandem system /s/system.yaml > /tmp/system.log 2>&1 &
SUP=$!
i=0
while [ $i -lt 300 ] && ! /tandem logs shown 2>/dev/null | grep -q 'TANDEM-TEST drew='; do
  sleep 1; i=$((i+1))
  if [ $((i % 30)) -eq 0 ]; then
    echo "E2E shown: no picture after ${i}s"
    /tandem ps
    tail -n 5 /tmp/system.log | sed 's/TANDEM-TEST/SYSTEM-TEST/'
  fi
done
P=$(/tandem ps | awk '$1=="shown" && $3=="running"{print $4}')
grep -E '^Uid:' /proc/$P/status | sed 's/^/E2E vmm-status /'
[ -S /run/tandem/shown.vnc ] && echo "E2E vnc-socket=socket"
/tandem screenshot shown -o /tmp/shot.png
echo "E2E screenshot-exit=$?"
/vncinput unix:/run/tandem/shown.vnc ` + inputArgs + `
echo "E2E vncinput-exit=$?"
i=0
while [ $i -lt 60 ] && ! /tandem logs shown 2>/dev/null | grep -q 'TANDEM-TEST evdev=.* touch='; do
  sleep 1; i=$((i+1))
done
/tandem logs shown | tr -d '\r' | grep -o 'TANDEM-TEST evdev=.*' | sed 's/^TANDEM-TEST/E2E/'
kill $SUP
wait $SUP
grep -v 'TANDEM-TEST module=' /tmp/system.log | tail -n 20 | sed 's/TANDEM-TEST/SYSTEM-TEST/'
echo
echo ` + shotBegin + `
base64 /tmp/shot.png
echo ` + shotEnd + `
`

// The markers around the screenshot's base64 on the host's console.
const (
	shotBegin = "E2E-SCREENSHOT-BEGIN"
	shotEnd   = "E2E-SCREENSHOT-END"
)

// checkScreenshot decodes the PNG the host printed between the markers
// and compares it with testpattern at the display's size.
func checkScreenshot(t *testing.T, console string) {
	t.Helper()
	data, err := consoleBase64(console, shotBegin, shotEnd)
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	var w, h int
	fmt.Sscanf(displayMode, "%dx%d", &w, &h)
	if img.Bounds() != image.Rect(0, 0, w, h) {
		t.Errorf("screenshot is %v, want %dx%d", img.Bounds(), w, h)
		return
	}
	bad := 0
	for y := range h {
		for x := range w {
			r, g, b, _ := img.At(x, y).RGBA()
			wr, wg, wb := testpattern.Pixel(x, y)
			if got := [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}; got != [3]uint8{wr, wg, wb} {
				if bad++; bad <= 5 {
					t.Errorf("screenshot pixel (%d, %d) = %v, want %v", x, y, got, [3]uint8{wr, wg, wb})
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d pixels differ from the pattern the guest drew", bad, w*h)
	}
}

// dashboardManifest is the demo system (DemoManifest) in a display
// test's host: its guests' consoles on the host's console device, and
// the infotainment guest's dashboard on a VNC server on the host's
// loopback, port 5900 (vncsnapshot's display 0).
func dashboardManifest(console string) (string, error) {
	const display = "display: {width: 640, height: 360}"
	if strings.Count(DemoManifest, display) != 1 || !strings.Contains(DemoManifest, "console=ttyAMA0") {
		return "", fmt.Errorf("DemoManifest has no single %q, or no console=ttyAMA0: update dashboardManifest", display)
	}
	return strings.NewReplacer(display, `display: {width: 640, height: 360, vnc: "tcp:127.0.0.1:5900"}`,
		"console=ttyAMA0", "console="+console).Replace(DemoManifest), nil
}

// writeDashboardSystem writes the demo system for h into dir and
// returns the files that put it in the host under /d.
func writeDashboardSystem(dir string, h displayHost) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	man, err := dashboardManifest(h.console)
	if err != nil {
		return nil, err
	}
	files := map[string]string{"/d/vmlinuz": h.kernel.Image, "/d/system.yaml": filepath.Join(dir, "system.yaml")}
	if err := os.WriteFile(files["/d/system.yaml"], []byte(man), 0o644); err != nil {
		return nil, err
	}
	for _, g := range DemoGuests {
		mods := DemoModules
		if g.Name == DemoDisplayGuest {
			mods = append(slices.Clone(DemoModules), DisplayModules...)
		}
		f := filepath.Join(dir, g.File)
		if err := buildDemoGuest(f, DemoGuestPkg(g.Name), h.goarch, h.kernel, ".", mods); err != nil {
			return nil, err
		}
		files["/d/"+g.File] = f
	}
	return files, nil
}

// dashboardScript runs the demo system until the infotainment guest has
// received messages and opened its framebuffer, lets it draw, saves its dashboard with
// vncsnapshot over the loopback (the largest of three pictures), and
// prints the JPEG in base64 between markers.
const dashboardScript = `ifconfig lo 127.0.0.1 up || ip link set lo up
/tandem system /d/system.yaml > /tmp/dash.log 2>&1 &
SUP=$!
i=0
dashboard() {
  /tandem logs infotainment 2>/dev/null > /tmp/info.log
  grep -q 'TANDEM-INFO received=[1-9]' /tmp/info.log && grep -q 'TANDEM-INFO display fb=' /tmp/info.log
}
while [ $i -lt 300 ] && ! dashboard; do
  sleep 1; i=$((i+1))
  [ $((i % 30)) -eq 0 ] && echo "E2E dashboard: no messages received and drawn after ${i}s"
done
# The dashboard draws every 100 ms once it has its framebuffer; on a
# loaded machine its first frames can come late. Three pictures 3 s
# apart: the largest JPEG is kept (a drawn dashboard has far more detail
# than a blank screen), so a slow first frame does not fail the test and
# a screen that stays blank still does.
sleep 3
tr -d '\r' < /tmp/info.log | grep -o 'TANDEM-INFO display.*' | head -n 1 | sed 's/^TANDEM-INFO/E2E dash/'
best=0 snaprc=1
for n in 1 2 3; do
  /usr/bin/vncsnapshot -quiet -encodings raw 127.0.0.1:0 /tmp/snap.jpg
  rc=$?
  size=$(wc -c < /tmp/snap.jpg 2>/dev/null || echo 0)
  echo "E2E vncsnapshot picture $n: exit $rc, $size bytes"
  if [ "$rc" -eq 0 ] && [ "$size" -gt "$best" ]; then best=$size; snaprc=0; cp /tmp/snap.jpg /tmp/dash.jpg; fi
  [ $n -lt 3 ] && sleep 3
done
echo "E2E vncsnapshot-exit=$snaprc"
kill $SUP
wait $SUP
grep -v 'TANDEM-TEST module=' /tmp/dash.log | tail -n 20 | sed 's/^/DASH-LOG /'
echo
echo ` + dashBegin + `
base64 /tmp/dash.jpg
echo ` + dashEnd + `
`

// The markers around the dashboard's JPEG on the host's console.
const (
	dashBegin = "E2E-DASHBOARD-BEGIN"
	dashEnd   = "E2E-DASHBOARD-END"
)

// checkDashboard decodes the JPEG vncsnapshot saved and checks it is
// the dashboard: the display's 640x360, in many colours (JPEG blurs a
// blank screen into a few at most).
func checkDashboard(t *testing.T, console string) {
	t.Helper()
	data, err := consoleBase64(console, dashBegin, dashEnd)
	if err != nil {
		t.Errorf("vncsnapshot's picture: %v", err)
		return
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Errorf("vncsnapshot's picture: %v", err)
		return
	}
	if img.Bounds() != image.Rect(0, 0, 640, 360) {
		t.Errorf("vncsnapshot's picture is %v, want 640x360", img.Bounds())
	}
	colours := map[[3]uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, b >> 8}] = true
		}
	}
	t.Logf("vncsnapshot saved a %v JPEG of %d bytes with %d colours", img.Bounds().Size(), len(data), len(colours))
	if len(colours) < minDashColours {
		t.Errorf("vncsnapshot's picture has %d colours, want at least %d: a blank screen, not the dashboard", len(colours), minDashColours)
	}
}

// minDashColours is the fewest colours the dashboard's JPEG has: its
// gauges and text through JPEG make 60 to 80; a blank screen, or the
// console's text before the dashboard draws, two.
const minDashColours = 20

// consoleBase64 decodes the base64 the host printed between the markers
// begin and end, keeping base64 lines only: a kernel message may come in
// between.
func consoleBase64(console, begin, end string) ([]byte, error) {
	_, after, ok := strings.Cut(console, begin)
	body, _, ok2 := strings.Cut(after, end)
	if !ok || !ok2 {
		return nil, fmt.Errorf("not on the host's console (no %s ... %s)", begin, end)
	}
	var b64 strings.Builder
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && strings.Trim(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == "" {
			b64.WriteString(l)
		}
	}
	return base64.StdEncoding.DecodeString(b64.String())
}

var (
	hostProgramsMu sync.Mutex
	hostPrograms   = map[string]string{}
)

// hostProgram builds the Go program pkg statically for an emulated host
// of goarch, once per run, and returns the binary.
func hostProgram(pkg, goarch string) (string, error) {
	hostProgramsMu.Lock()
	defer hostProgramsMu.Unlock()
	key := pkg + " " + goarch
	if bin, ok := hostPrograms[key]; ok {
		return bin, nil
	}
	bin := filepath.Join(workDir, filepath.Base(pkg)+"-"+goarch)
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s for %s: %v\n%s", pkg, goarch, err, out)
	}
	hostPrograms[key] = bin
	return bin, nil
}
