package hv

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/arm64"
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

var testWindow = hostdt.Window{Base: armvirt.PassthroughBase, Size: armvirt.PassthroughSize, FirstSPI: armvirt.PassthroughFirstSPI}

// qemuVirt reads QEMU's own virt-board DTB (qemu-system-aarch64 -M
// virt,dumpdtb=...), the host tree of the emulated arm64 host.
func qemuVirt(t *testing.T) *dtb.Tree {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "build", "cache", "boards", "qemu", "virt-arm64.dtb")
	testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := dtb.Parse(b)
	if err != nil {
		t.Fatalf("Parse(%s) = %v", p, err)
	}
	return tr
}

// TestPlanPassthrough decides passthrough for nodes of QEMU's virt
// board: what the host needs is refused, a device with an interrupt is
// refused unless passed without it, and a PL031 passed without its
// interrupt lands in the guest window.
func TestPlanPassthrough(t *testing.T) {
	tests := []struct {
		name     string
		dev      HostDevice
		vfio     string // a VFIO driver directory the fake sysfs has
		want     string // "" for success, else a part of the error
		wantIRQs bool   // the error is ErrNoInterruptForwarding
	}{
		{name: "PL031 without its interrupt", dev: HostDevice{Node: "/pl031@9010000", NoInterrupts: true}},
		{name: "fw-cfg has no interrupt", dev: HostDevice{Node: "/fw-cfg@9020000"}},
		{name: "PL031 with its interrupt, no VFIO", dev: HostDevice{Node: "/pl031@9010000"},
			want: "vfio-amba driver (CONFIG_VFIO_AMBA; platform devices need vfio-platform, CONFIG_VFIO_PLATFORM)", wantIRQs: true},
		{name: "PL031 with its interrupt, VFIO AMBA loaded", dev: HostDevice{Node: "/pl031@9010000"}, vfio: "bus/amba/drivers/vfio-amba",
			want: "forwarding its interrupt (host SPI 2) through vfio-amba is not supported yet", wantIRQs: true},
		{name: "the opt-out is named", dev: HostDevice{Node: "/pl031@9010000"}, want: "--passthrough /pl031@9010000,interrupts=none", wantIRQs: true},
		{name: "GIC", dev: HostDevice{Node: "/intc@8000000", NoInterrupts: true}, want: "the host's interrupt controller"},
		{name: "console UART", dev: HostDevice{Node: "/pl011@9000000", NoInterrupts: true}, want: "the host's console UART"},
		{name: "timer", dev: HostDevice{Node: "/timer", NoInterrupts: true}, want: "the host's timer"},
		{name: "PSCI", dev: HostDevice{Node: "/psci"}, want: "PSCI"},
		{name: "memory", dev: HostDevice{Node: "/memory@40000000"}, want: "host memory"},
		{name: "CPU", dev: HostDevice{Node: "/cpus/cpu@0"}, want: "host cpu"},
		{name: "GPIO controller with the power button", dev: HostDevice{Node: "/pl061@9030000", NoInterrupts: true}, want: "gpio-controller"},
		{name: "no such node", dev: HostDevice{Node: "/can@0"}, want: "no node"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := t.TempDir()
			if tt.vfio != "" {
				if err := os.MkdirAll(filepath.Join(sys, tt.vfio), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			nodes, err := planPassthrough(qemuVirt(t), []HostDevice{tt.dev}, testWindow, sys)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("planPassthrough(%s) = %v, want an error containing %q", tt.dev.Node, err, tt.want)
				}
				if got := errors.Is(err, ErrNoInterruptForwarding); got != tt.wantIRQs {
					t.Errorf("planPassthrough(%s) = %v: errors.Is(ErrNoInterruptForwarding) = %v, want %v", tt.dev.Node, err, got, tt.wantIRQs)
				}
				if !tt.wantIRQs && tt.want != "no node" && !errors.Is(err, hostdt.ErrRefused) {
					t.Errorf("planPassthrough(%s) = %v, want hostdt.ErrRefused", tt.dev.Node, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("planPassthrough(%s) = %v", tt.dev.Node, err)
			}
			if len(nodes) != 1 || nodes[0].MMIO[0].Guest.Base != armvirt.PassthroughBase {
				t.Fatalf("planPassthrough(%s) = %+v, want one node at %#x", tt.dev.Node, nodes, armvirt.PassthroughBase)
			}
			for _, p := range []string{"interrupts", "clocks", "phandle"} {
				if nodes[0].Node.Has(p) {
					t.Errorf("guest node %s keeps %s", nodes[0].Node.Name, p)
				}
			}
		})
	}
}

// TestPassthroughDeviceTree puts the host's PL031 into an arm64 guest's
// tree: it sits in the passthrough window beside the guest's own PL031,
// with the guest's bus clock and no interrupt, and dtc reads the tree
// without a warning.
func TestPassthroughDeviceTree(t *testing.T) {
	nodes, err := planPassthrough(qemuVirt(t), []HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}}, testWindow, t.TempDir())
	if err != nil {
		t.Fatalf("planPassthrough() = %v", err)
	}
	if m := nodes[0].MMIO[0]; m.Host.Base != 0x9010000 || m.Guest.Base != 0xc000000 || m.Host.Size != 0x1000 {
		t.Errorf("MMIO = %+v, want host 0x9010000 -> guest 0xc000000, 4 KiB", m)
	}
	tr, err := arm64.DeviceTree(arm64.Hardware{
		MPIDRs: []uint64{0x80000000}, MemorySize: 64 << 20, GIC: armvirt.GICv3, PSCIVersion: arm64.PSCI11,
		Cmdline: "console=ttyAMA0", Passthrough: []*dtb.Node{nodes[0].Node},
	})
	if err != nil {
		t.Fatalf("DeviceTree() = %v", err)
	}
	own, err := tr.Lookup("/pl031@9010000")
	if err != nil {
		t.Fatalf("the guest's own PL031: %v", err)
	}
	if !own.Has("interrupts") {
		t.Errorf("the guest's own PL031 lost its interrupt")
	}
	n, err := tr.Lookup("/pl031@c000000")
	if err != nil {
		t.Fatalf("the passed PL031: %v", err)
	}
	if regs, err := n.Reg(); err != nil || len(regs) != 1 || regs[0].Address != 0xc000000 || regs[0].Size != 0x1000 {
		t.Errorf("passed PL031 reg = %v, %v, want 0xc000000+0x1000", regs, err)
	}
	if n.Has("interrupts") {
		t.Errorf("passed PL031 has interrupts, want none (passed with interrupts: none)")
	}
	clk, err := tr.Lookup("/apb-pclk")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := n.U32s("clocks"); len(got) != 1 || got[0] != clk.PhandleOf() {
		t.Errorf("passed PL031 clocks = %v, want the guest's apb-pclk <%#x>", got, clk.PhandleOf())
	}
	if c, _ := n.Strings("compatible"); len(c) != 2 || c[0] != "arm,pl031" {
		t.Errorf("passed PL031 compatible = %q, want the host's", c)
	}
	blob, err := tr.Bytes()
	if err != nil {
		t.Fatalf("Bytes() = %v", err)
	}
	if _, err := exec.LookPath("dtc"); err != nil {
		t.Logf("dtc not installed (device-tree-compiler): not cross-checked")
		return
	}
	f := filepath.Join(t.TempDir(), "guest.dtb")
	if err := os.WriteFile(f, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command("dtc", "-I", "dtb", "-O", "dts", "-o", os.DevNull, f)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("dtc -I dtb -O dts: %v\n%s", err, stderr.String())
	}
}

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

func TestParseHostDevice(t *testing.T) {
	tests := []struct {
		in   string
		want HostDevice
		err  string
	}{
		{in: "/pl031@9010000", want: HostDevice{Node: "/pl031@9010000"}},
		{in: "/pl031@9010000,interrupts=none", want: HostDevice{Node: "/pl031@9010000", NoInterrupts: true}},
		{in: "/pl031@9010000,irq=off", err: `unknown option "irq=off"`},
		{in: "pl031@9010000", err: "absolute path"},
		{in: "/", err: "absolute path"},
		{in: "/soc/qcom,pmic@0", want: HostDevice{Node: "/soc/qcom,pmic@0"}},
		{in: "/soc/qcom,pmic@0,interrupts=none", want: HostDevice{Node: "/soc/qcom,pmic@0", NoInterrupts: true}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHostDevice(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseHostDevice(%q) = %v, want an error containing %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseHostDevice(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}
