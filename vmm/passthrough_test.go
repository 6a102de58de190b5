package vmm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
)

// fakeSysfs builds the sysfs of a host whose PL031 is bound to
// rtc-pl031 on the AMBA bus.
func fakeSysfs(t *testing.T) (sys, dev string) {
	t.Helper()
	sys = t.TempDir()
	dev = filepath.Join(sys, "devices", "platform", "9010000.pl031")
	drv := filepath.Join(sys, "bus", "amba", "drivers", "rtc-pl031")
	for _, d := range []string{filepath.Join(sys, "firmware", "devicetree", "base", "pl031@9010000"), dev, drv, filepath.Join(sys, "bus", "amba", "devices"), filepath.Join(sys, "bus", "platform", "devices")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		filepath.Join(dev, "of_node"):                                 "../../../firmware/devicetree/base/pl031@9010000",
		filepath.Join(dev, "driver"):                                  "../../../bus/amba/drivers/rtc-pl031",
		filepath.Join(sys, "bus", "amba", "devices", "9010000.pl031"): "../../../devices/platform/9010000.pl031",
	}
	for l, target := range links {
		if err := os.Symlink(target, l); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(dev, "driver_override"), filepath.Join(drv, "unbind"), filepath.Join(sys, "bus", "amba", "drivers_probe")} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return sys, dev
}

// TestDetachHostDriver takes the PL031 from rtc-pl031 in a fake sysfs
// and gives it back: driver_override first (so nothing rebinds it), then
// unbind; on restore, driver_override cleared and the bus asked to probe.
func TestDetachHostDriver(t *testing.T) {
	sys, dev := fakeSysfs(t)
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	var log bytes.Buffer
	d, err := detachHostDriver(sys, "/pl031@9010000", &log)
	if err != nil || d == nil {
		t.Fatalf("detachHostDriver() = %v, %v", d, err)
	}
	checks := []struct{ file, want string }{
		{filepath.Join(dev, "driver_override"), overrideName},
		{filepath.Join(sys, "bus", "amba", "drivers", "rtc-pl031", "unbind"), "9010000.pl031"},
	}
	for _, c := range checks {
		if got := read(c.file); got != c.want {
			t.Errorf("after detach, %s = %q, want %q", c.file, got, c.want)
		}
	}
	if want := "detached host driver rtc-pl031 from amba device 9010000.pl031"; !strings.Contains(log.String(), want) {
		t.Errorf("detach said %q, want it to contain %q", log.String(), want)
	}
	if err := d.restore(); err != nil {
		t.Fatalf("restore() = %v", err)
	}
	checks = []struct{ file, want string }{
		{filepath.Join(dev, "driver_override"), "\n"},
		{filepath.Join(sys, "bus", "amba", "drivers_probe"), "9010000.pl031"},
	}
	for _, c := range checks {
		if got := read(c.file); got != c.want {
			t.Errorf("after restore, %s = %q, want %q", c.file, got, c.want)
		}
	}
	// A node the host made no device for needs nothing.
	if d, err := detachHostDriver(sys, "/fw-cfg@9020000", &log); d != nil || err != nil {
		t.Errorf("detachHostDriver(no device) = %v, %v, want nil, nil", d, err)
	}
}

// TestMapRange maps a passed range from a file standing in for /dev/mem:
// whole pages, the guest address moved back by the range's offset into
// its page, and a guest address at another offset refused.
func TestMapRange(t *testing.T) {
	page := uint64(os.Getpagesize())
	f := filepath.Join(t.TempDir(), "mem")
	data := make([]byte, 3*page)
	copy(data[page+0x10:], "registers")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m := PassRange{HostBase: page + 0x10, Size: 0x20, GuestBase: armvirt.PassthroughBase + 0x10}
	p, gpa, err := mapRange(f, m)
	if err != nil {
		t.Fatalf("mapRange(%+v) = %v", m, err)
	}
	defer p.Close()
	if p.Base != page || uint64(len(p.Host)) != page || gpa != armvirt.PassthroughBase {
		t.Errorf("mapRange(%+v) mapped %#x+%#x as guest %#x, want %#x+%#x as guest %#x", m, p.Base, len(p.Host), gpa, page, page, armvirt.PassthroughBase)
	}
	if !bytes.HasPrefix(p.Host[0x10:], []byte("registers")) {
		t.Errorf("mapping at offset 0x10 = %q, want the file's bytes", p.Host[0x10:0x19])
	}
	m.GuestBase = armvirt.PassthroughBase + 0x20
	if _, _, err := mapRange(f, m); err == nil || !strings.Contains(err.Error(), "offset") {
		t.Errorf("mapRange(%+v) = %v, want an error about the offset into the page", m, err)
	}
}

// TestInWindow keeps passed ranges inside the guest's passthrough window.
func TestInWindow(t *testing.T) {
	const base, size = armvirt.PassthroughBase, armvirt.PassthroughSize
	tests := []struct {
		m    PassRange
		want bool
	}{
		{PassRange{GuestBase: base, Size: 0x1000}, true},
		{PassRange{GuestBase: base + size - 0x1000, Size: 0x1000}, true},
		{PassRange{GuestBase: base + size - 0x1000, Size: 0x2000}, false},
		{PassRange{GuestBase: base - 0x1000, Size: 0x1000}, false},
		{PassRange{GuestBase: armvirt.RAMBase, Size: 0x1000}, false},
		{PassRange{GuestBase: base, Size: 0}, false},
		{PassRange{GuestBase: base, Size: ^uint64(0)}, false},
	}
	for _, tt := range tests {
		if got := inWindow(tt.m); got != tt.want {
			t.Errorf("inWindow(%+v) = %v, want %v", tt.m, got, tt.want)
		}
	}
}

// TestValidatePassthrough checks the resolved devices a Config carries.
func TestValidatePassthrough(t *testing.T) {
	node := func(name string) *dtb.Node { return dtb.New().Root.AddNode(name) }
	tests := []struct {
		name string
		devs []PassDevice
		want string
	}{
		{"relative path", []PassDevice{{HostPath: "pl031@9010000", Node: node("pl031@c000000")}}, "passthrough 0: \"pl031@9010000\": want the absolute path"},
		{"no guest node", []PassDevice{{HostPath: "/pl031@9010000"}}, "passthrough 0: /pl031@9010000 has no guest device tree node"},
		{"listed twice", []PassDevice{{HostPath: "/pl031@9010000", Node: node("a")}, {HostPath: "/pl031@9010000", Node: node("b")}}, "passthrough 1: /pl031@9010000 is listed twice"},
	}
	kernel := filepath.Join(t.TempDir(), "Image")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Kernel: kernel, CPUs: 1, Memory: MinMemory, Passthrough: tt.devs}
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
