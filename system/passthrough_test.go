package system

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/arm64"
	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// TestManifestPassthrough reads a control guest's passthrough list, and
// breaks it one field at a time: each error names the line, the guest
// and the field.
func TestManifestPassthrough(t *testing.T) {
	good := string(goodManifest(t))
	const at = "    watchdog:\n"
	if !strings.Contains(good, at) {
		t.Fatalf("test bug: %q not in the good manifest", at)
	}
	with := func(list string) string { return strings.Replace(good, at, "    passthrough:\n"+list+at, 1) }
	line := strings.Count(good[:strings.Index(good, at)], "\n") + 1 // the passthrough: line
	tests := []struct {
		name string
		list string
		want string // "" for success
	}{
		{"good", "      - node: /pl031@9010000\n        interrupts: none\n      - node: /soc/can@1c2bc00\n", ""},
		{"bad interrupts", "      - node: /pl031@9010000\n        interrupts: polled\n",
			`system.yaml:` + strconv.Itoa(line+2) + `: guest "control": passthrough[0].interrupts: "polled": want none`},
		{"missing node", "      - interrupts: none\n", `system.yaml:` + strconv.Itoa(line+1) + `: guest "control": passthrough[0]: missing node`},
		{"relative node", "      - node: pl031@9010000\n", `guest "control": passthrough[0].node: "pl031@9010000": want the absolute path`},
		{"listed twice", "      - node: /pl031@9010000\n      - node: /pl031@9010000\n", `passthrough[1].node: /pl031@9010000 is listed twice`},
		{"unknown field", "      - path: /pl031@9010000\n", `system.yaml:` + strconv.Itoa(line+1) + `: unknown field "path"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeManifest(t, guestDir(t), []byte(with(tt.list)))
			m, err := LoadManifest(p)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrManifest) {
					t.Fatalf("LoadManifest() = %v, want an ErrManifest containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadManifest() = %v", err)
			}
			got := m.Guest("control").Passthrough
			want := []HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}, {Node: "/soc/can@1c2bc00"}}
			if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
				t.Errorf("Guest.Passthrough = %+v, want %+v", got, want)
			}
		})
	}
}

// qemuVirtDTB is the path of QEMU's own virt-board DTB
// (qemu-system-aarch64 -M virt,dumpdtb=...), the host tree of the
// emulated arm64 host.
func qemuVirtDTB(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("TANDEM_CACHE")
	if cache == "" {
		cache = filepath.Join("..", "build", "cache")
	}
	p := filepath.Join(cache, "boards", "qemu", "virt-arm64.dtb")
	testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
	return p
}

// qemuVirt reads qemuVirtDTB.
func qemuVirt(t *testing.T) *dtb.Tree {
	t.Helper()
	p := qemuVirtDTB(t)
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
		{name: "fw-cfg masters DMA", dev: HostDevice{Node: "/fw-cfg@9020000"},
			want: "it can master DMA (property dma-coherent: its DMA is coherent with the CPUs' caches); no IOMMU sits in front of it (the node has no iommus), so nothing would keep the guest from programming it to read and write all host memory: leave it to the host and give the guest a virtio device in its place"},
		{name: "virtio-mmio masters DMA", dev: HostDevice{Node: "/virtio_mmio@a000000", NoInterrupts: true}, want: "/virtio_mmio@a000000: refused for passthrough: it can master DMA (property dma-coherent"},
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
			nodes, err := planPassthrough(qemuVirt(t), []HostDevice{tt.dev}, guestWindow, sys)
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
	nodes, err := planPassthrough(qemuVirt(t), []HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}}, guestWindow, t.TempDir())
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

// TestResolvePassthrough resolves requests against QEMU's virt DTB read
// from a file, as from /sys/firmware/fdt: vmm gets the host and guest
// addresses and the guest's node.
func TestResolvePassthrough(t *testing.T) {
	devs, err := resolvePassthrough(qemuVirtDTB(t), t.TempDir(), []HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}})
	if err != nil {
		t.Fatalf("resolvePassthrough() = %v", err)
	}
	if len(devs) != 1 {
		t.Fatalf("resolvePassthrough() = %d devices, want 1", len(devs))
	}
	pl031 := devs[0]
	if pl031.HostPath != "/pl031@9010000" || len(pl031.MMIO) != 1 || pl031.Node == nil || pl031.Node.Name != "pl031@c000000" {
		t.Fatalf("PL031 = %+v, want /pl031@9010000 with one range and the guest node pl031@c000000", pl031)
	}
	if m := pl031.MMIO[0]; m.HostBase != 0x9010000 || m.Size != 0x1000 || m.GuestBase != armvirt.PassthroughBase {
		t.Errorf("PL031 MMIO = %+v, want host 0x9010000+0x1000 at guest %#x", m, armvirt.PassthroughBase)
	}
	if pl031.Node.Has("interrupts") {
		t.Errorf("PL031 guest node keeps its interrupts (passed with interrupts: none)")
	}
	// fw-cfg's DMA interface writes host memory: it is refused, and
	// nothing of the request is resolved.
	devs, err = resolvePassthrough(qemuVirtDTB(t), t.TempDir(), []HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}, {Node: "/fw-cfg@9020000"}})
	if devs != nil || !errors.Is(err, hostdt.ErrDMAMaster) {
		t.Errorf("resolvePassthrough(pl031, fw-cfg) = %v, %v, want hostdt.ErrDMAMaster", devs, err)
	}

	if devs, err := resolvePassthrough(filepath.Join(t.TempDir(), "fdt"), t.TempDir(), nil); devs != nil || err != nil {
		t.Errorf("resolvePassthrough(no requests) = %v, %v, want nothing read", devs, err)
	}
	_, err = resolvePassthrough(filepath.Join(t.TempDir(), "fdt"), t.TempDir(), []HostDevice{{Node: "/pl031@9010000"}})
	if err == nil || !strings.Contains(err.Error(), "the host has no device tree") {
		t.Errorf("resolvePassthrough(no host DTB) = %v, want an error saying the host has no device tree", err)
	}
	_, err = resolvePassthrough(qemuVirtDTB(t), t.TempDir(), []HostDevice{{Node: "/pl031@9010000"}, {Node: "/pl031@9010000"}})
	if err == nil || !strings.Contains(err.Error(), "passthrough 1: /pl031@9010000 is listed twice") {
		t.Errorf("resolvePassthrough(twice) = %v, want listed twice", err)
	}
}

// TestManifestConfigPassthrough resolves a manifest guest's passthrough
// list in Config, which the guest's VMM builds from.
func TestManifestConfigPassthrough(t *testing.T) {
	saved := passHost
	t.Cleanup(func() { passHost = saved })
	passHost.fdt, passHost.sys = qemuVirtDTB(t), t.TempDir()
	good := string(goodManifest(t))
	const at = "    watchdog:\n"
	for _, tt := range []struct {
		name, list, want string
	}{
		{"without interrupts", "      - node: /pl031@9010000\n        interrupts: none\n", ""},
		{"with interrupts", "      - node: /pl031@9010000\n",
			`system.yaml:22: guest "control": passthrough[0].node: /pl031@9010000: the host kernel cannot forward this device's interrupt to a guest`},
		{"refused", "      - node: /pl011@9000000\n        interrupts: none\n", "the host's console UART"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := LoadManifest(writeManifest(t, guestDir(t), []byte(strings.Replace(good, at, "    passthrough:\n"+tt.list+at, 1))))
			if err != nil {
				t.Fatalf("LoadManifest() = %v", err)
			}
			cfg, err := m.Guest("control").Config()
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Config() = %v, want an error containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Config() = %v", err)
			}
			if len(cfg.Passthrough) != 1 || cfg.Passthrough[0].HostPath != "/pl031@9010000" || cfg.Passthrough[0].MMIO[0].GuestBase != armvirt.PassthroughBase {
				t.Errorf("Config().Passthrough = %+v, want the PL031 at %#x", cfg.Passthrough, armvirt.PassthroughBase)
			}
		})
	}
}

// TestDMAMasterFix: a node that can master DMA is refused with what the
// host lacks to confine it, on ZynqMP's DTB (Debian's), whose devices sit
// behind an SMMU: no IOMMU in front of it, no VFIO platform driver, or
// Tandem's own missing VFIO path.
func TestDMAMasterFix(t *testing.T) {
	p := filepath.Join("..", "build", "cache", "boards", "arm64", "xilinx", "zynqmp-zcu102-rev1.0.dtb")
	testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, node string
		vfio       bool // the fake sysfs has vfio-platform
		want       string
	}{
		{"an RTC masters no DMA", "/axi/rtc@ffa60000", false, ""},
		{"behind an IOMMU, no VFIO platform", "/axi/ethernet@ff0e0000", false,
			"it sits behind an IOMMU, but the host kernel has no VFIO platform driver to hand it to a guest through it"},
		{"behind an IOMMU, VFIO platform loaded", "/axi/ethernet@ff0e0000", true,
			"does not program their IOMMU through VFIO yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := dtb.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			sys := t.TempDir()
			if tt.vfio {
				if err := os.MkdirAll(filepath.Join(sys, "bus", "platform", "drivers", "vfio-platform"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			_, err = planPassthrough(tr, []HostDevice{{Node: tt.node, NoInterrupts: true}}, guestWindow, sys)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("planPassthrough(%s) = %v, want it passed", tt.node, err)
				}
				return
			}
			if !errors.Is(err, hostdt.ErrDMAMaster) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "property iommus") {
				t.Errorf("planPassthrough(%s) = %v, want ErrDMAMaster naming iommus and containing %q", tt.node, err, tt.want)
			}
		})
	}
}
