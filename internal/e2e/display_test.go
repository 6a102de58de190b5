package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// displayMode is the display TestDisplayArm64 gives the guest.
const displayMode = "1280x720"

// TestDisplayArm64 boots Debian's stock arm64 kernel with a display
// (tandem run --display) inside the emulated arm64 host, and checks that
// the kernel's own drivers took the devices: virtio_gpu made a DRM card
// whose preferred mode is the display's (the EDID's), with a framebuffer
// device, and virtio_input registered the keyboard and the touch screen.
func TestDisplayArm64(t *testing.T) {
	qemuhost.RequireArch(t, "arm64")
	g, tandem := buildArm64(t)
	initrd := filepath.Join(workDir, "initrd-arm64-display")
	if err := BuildDisplayGuestInitramfs(initrd, GuestTestinit, g.kernel, "arm64", "."); err != nil {
		t.Fatalf("building the arm64 display guest: %v", err)
	}
	run := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus %d --memory %s --console stdio --display %s",
		arm64GuestCmdline, guestCPUs, guestMemory, displayMode)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    "arm64",
		Files:   map[string]string{"/tandem": tandem, "/guest/vmlinuz": g.kernel.Image, "/guest/initrd": initrd},
		Script:  arm64Script(run),
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
	if facts.Find("done") == nil || res.ExitStatus != 0 {
		t.Errorf("guest done marker %v, VMM exit status %d: want done and 0", facts.Find("done"), res.ExitStatus)
	}
	if t.Failed() {
		t.Logf("last console lines:\n%s", res.Tail(60))
	}
}
