package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/guests/testpattern"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// displayMode is the display TestDisplayArm64 gives the guest.
const displayMode = "1280x720"

// TestDisplayArm64 boots Debian's stock arm64 kernel with a display
// inside the emulated arm64 host, twice in one host boot. Under tandem
// run --display it checks that the kernel's own drivers took the
// devices: virtio_gpu made a DRM card whose preferred mode is the
// display's (the EDID's), with a framebuffer device, and virtio_input
// registered the keyboard and the touch screen. Under tandem system,
// with the VMM as its own user and sandboxed, the guest draws
// guests/testpattern on /dev/fb0 and holds it; tandem screenshot, through
// the supervisor to the VMM, returns that picture pixel for pixel, and
// the VNC socket display.vnc names is there.
func TestDisplayArm64(t *testing.T) {
	qemuhost.RequireArch(t, "arm64")
	g, tandem := buildArm64(t)
	initrd := filepath.Join(workDir, "initrd-arm64-display")
	if err := BuildDisplayGuestInitramfs(initrd, GuestTestinit, g.kernel, "arm64", "."); err != nil {
		t.Fatalf("building the arm64 display guest: %v", err)
	}
	run := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus %d --memory %s --console stdio --display %s",
		arm64GuestCmdline, guestCPUs, guestMemory, displayMode)
	man := filepath.Join(workDir, "display.yaml")
	if err := os.WriteFile(man, []byte(fmt.Sprintf(displayManifest, arm64GuestCmdline, guestCPUs, guestMemory)), 0o644); err != nil {
		t.Fatal(err)
	}
	script := strings.Replace(arm64Script(run), "exit $status\n", displayScript+"exit $status\n", 1)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    "arm64",
		Files:   map[string]string{"/tandem": tandem, "/guest/vmlinuz": g.kernel.Image, "/guest/initrd": initrd, "/s/system.yaml": man},
		Script:  script,
		Memory:  arm64HostMemory,
		Console: consoleLog{},
		Timeout: arm64HostTimeout,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	facts := ParseFacts(res.Output)
	t.Logf("host booted in %v; %s; whole run %v", res.Boot, arm64Timing(res), res.Total)
	if fails := facts.Failures(); len(fails) > 0 {
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
	for _, want := range []string{"E2E screenshot-exit=0", "E2E vnc-socket=socket", "E2E vmm-status Uid:\t900"} {
		if !strings.Contains(res.Output, want) {
			t.Errorf("host console lacks %q", want)
		}
	}
	checkScreenshot(t, res.Output)
	if facts.Find("done") == nil || res.ExitStatus != 0 {
		t.Errorf("guest done marker %v, VMM exit status %d: want done and 0", facts.Find("done"), res.ExitStatus)
	}
	if t.Failed() {
		t.Logf("last console lines:\n%s", res.Tail(60))
	}
}

// displayManifest runs the display guest under tandem system, holding
// its picture for the screenshot. Its verbs: the command line, vCPUs,
// memory.
const displayManifest = `guests:
  - name: shown
    kernel: /guest/vmlinuz
    initrd: /guest/initrd
    cmdline: %s tandem.hold=60s
    cpus: %d
    memory: %s
    display: {vnc: "unix:/run/tandem/shown.vnc"}
    restart: {policy: never}
`

// displayScript runs after tandem run: the system with the display
// guest, its VMM as the user tandem (uid 900), until the guest has
// drawn; then tandem screenshot, and the picture in base64 between
// markers.
const displayScript = `echo 'tandem:x:900:900:Tandem VMMs:/:/bin/false' >>/etc/passwd
echo 'tandem:x:900:' >>/etc/group
chgrp 900 /dev/kvm && chmod 660 /dev/kvm
/tandem system /s/system.yaml > /tmp/system.log 2>&1 &
SUP=$!
i=0
while [ $i -lt 300 ] && ! /tandem logs shown 2>/dev/null | grep -q 'TANDEM-TEST drew='; do
  sleep 1; i=$((i+1))
done
P=$(/tandem ps | awk '$1=="shown" && $3=="running"{print $4}')
grep -E '^Uid:' /proc/$P/status | sed 's/^/E2E vmm-status /'
[ -S /run/tandem/shown.vnc ] && echo "E2E vnc-socket=socket"
/tandem screenshot shown -o /tmp/shot.png
echo "E2E screenshot-exit=$?"
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
	_, after, ok := strings.Cut(console, shotBegin)
	body, _, ok2 := strings.Cut(after, shotEnd)
	if !ok || !ok2 {
		t.Errorf("no screenshot on the host's console")
		return
	}
	// Keep base64 lines only: a kernel message may come in between.
	var b64 strings.Builder
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && strings.Trim(l, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") == "" {
			b64.WriteString(l)
		}
	}
	data, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		t.Errorf("screenshot: base64: %v", err)
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
