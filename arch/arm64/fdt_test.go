package arm64

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/devices"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedHardware is a 2-vCPU guest with a disk, a virtio console and an
// rng (the devices `tandem run --disk` gives), with fixed seeds so its
// tree is deterministic. The MPIDRs are those KVM gives vCPUs 0 and 1.
func fixedHardware(gic GICVersion) Hardware {
	var virtio []devices.Placement
	for i := range 3 {
		p, err := VirtioSlot(i)
		if err != nil {
			panic(err)
		}
		virtio = append(virtio, p)
	}
	seed := make([]byte, 64)
	for i := range seed {
		seed[i] = byte(i)
	}
	return Hardware{
		MPIDRs:      []uint64{0x80000000, 0x80000001},
		MemorySize:  256 << 20,
		GIC:         gic,
		PSCIVersion: PSCI11,
		Virtio:      virtio,
		Cmdline:     "console=ttyAMA0 quiet",
		InitrdStart: 0x43000000,
		InitrdEnd:   0x43400000,
		RNGSeed:     seed,
		KASLRSeed:   0x0123456789abcdef,
	}
}

// TestDeviceTreeGolden compares the generated tree, as DTS, with the
// golden files, and has dtc decode the blob without a warning.
func TestDeviceTreeGolden(t *testing.T) {
	tests := []struct {
		name   string
		gic    GICVersion
		golden string
	}{
		{"GICv3", GICv3, "guest-gicv3.dts"},
		{"GICv2", GICv2, "guest-gicv2.dts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := DeviceTree(fixedHardware(tt.gic))
			if err != nil {
				t.Fatalf("DeviceTree() = %v", err)
			}
			var dts bytes.Buffer
			if err := tr.WriteDTS(&dts); err != nil {
				t.Fatalf("WriteDTS() = %v", err)
			}
			golden := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(golden, dts.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (go test -update writes it): %v", err)
			}
			if dts.String() != string(want) {
				t.Errorf("DeviceTree() as DTS differs from %s:\n%s", golden, dts.String())
			}
			blob, err := tr.Bytes()
			if err != nil {
				t.Fatalf("Bytes() = %v", err)
			}
			if _, err := dtb.Parse(blob); err != nil {
				t.Errorf("Parse(DeviceTree().Bytes()) = %v", err)
			}
			dtcDecode(t, blob)
		})
	}
}

// dtcDecode runs dtc -I dtb -O dts on blob and fails on any warning.
func dtcDecode(t *testing.T, blob []byte) {
	t.Helper()
	if _, err := exec.LookPath("dtc"); err != nil {
		t.Logf("dtc not installed (device-tree-compiler): not cross-checked")
		return
	}
	f := filepath.Join(t.TempDir(), "guest.dtb")
	if err := os.WriteFile(f, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dtc", "-I", "dtb", "-O", "dts", "-o", os.DevNull, f)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("dtc -I dtb -O dts: %v\n%s", err, stderr.String())
	}
}

// TestDeviceTreeFacts checks what Linux reads, by querying the tree.
func TestDeviceTreeFacts(t *testing.T) {
	tests := []struct {
		name     string
		psci     uint64
		wantPSCI []string
	}{
		{"PSCI 1.1", PSCI11, []string{"arm,psci-1.0", "arm,psci-0.2"}},
		{"PSCI 1.0", PSCI10, []string{"arm,psci-1.0", "arm,psci-0.2"}},
		{"PSCI 0.2", PSCI02, []string{"arm,psci-0.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fixedHardware(GICv3)
			h.PSCIVersion = tt.psci
			tr, err := DeviceTree(h)
			if err != nil {
				t.Fatalf("DeviceTree() = %v", err)
			}
			psci, err := tr.Lookup("/psci")
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := psci.Strings("compatible"); strings.Join(got, ",") != strings.Join(tt.wantPSCI, ",") {
				t.Errorf("/psci compatible = %q, want %q", got, tt.wantPSCI)
			}
			uart, path, err := tr.StdoutPath()
			if err != nil || uart.BaseName() != "pl011" {
				t.Errorf("StdoutPath() = %v, %q, %v, want the pl011", uart, path, err)
			}
			if n := len(tr.FindCompatible("virtio,mmio")); n != 3 {
				t.Errorf("virtio,mmio nodes = %d, want 3", n)
			}
			cpu1, err := tr.Lookup("/cpus/cpu@1")
			if err != nil {
				t.Fatal(err)
			}
			if reg, _ := cpu1.U32("reg"); reg != 1 {
				t.Errorf("/cpus/cpu@1 reg = %#x, want 1 (MPIDR 0x80000001 without bit 31)", reg)
			}
		})
	}
}

func TestDeviceTreeErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Hardware)
		want string
	}{
		{"no vCPUs", func(h *Hardware) { h.MPIDRs = nil }, "no vCPUs"},
		{"PSCI 0.1", func(h *Hardware) { h.PSCIVersion = 1 }, "PSCI version 0x1"},
		{"GICv2 with 9 vCPUs", func(h *Hardware) { h.GIC = GICv2; h.MPIDRs = make([]uint64, 9) }, "at most 8"},
		{"GIC version 4", func(h *Hardware) { h.GIC = 4 }, "GIC version 4"},
		{"Aff3", func(h *Hardware) { h.MPIDRs = []uint64{1 << 32} }, "Aff3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fixedHardware(GICv3)
			tt.edit(&h)
			if _, err := DeviceTree(h); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("DeviceTree() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestDeviceTreeWatchdog checks the SP805 node against what its binding
// and sp805_wdt read: the PrimeCell compatibles, the register page, the
// interrupt, the counter's clock first and its rate, and timeout-sec.
func TestDeviceTreeWatchdog(t *testing.T) {
	h := fixedHardware(GICv3)
	h.Watchdog = &armvirt.Watchdog{TimeoutSec: 10}
	tr, err := DeviceTree(h)
	if err != nil {
		t.Fatalf("DeviceTree() = %v", err)
	}
	nodes := tr.FindCompatible("arm,sp805")
	if len(nodes) != 1 {
		t.Fatalf("arm,sp805 nodes = %d, want 1", len(nodes))
	}
	n := nodes[0]
	compat, _ := n.Strings("compatible")
	reg, _ := n.Reg()
	irq, _ := n.U32s("interrupts")
	names, _ := n.Strings("clock-names")
	clocks, _ := n.U32s("clocks")
	timeout, _ := n.U32("timeout-sec")
	checks := []struct {
		name      string
		got, want any
	}{
		{"compatible", strings.Join(compat, ","), "arm,sp805,arm,primecell"},
		{"reg", reg, []dtb.Region{{Address: armvirt.WatchdogBase, Size: armvirt.WatchdogSize}}},
		{"interrupts", irq, []uint32{0, armvirt.WatchdogSPI, 1}},
		{"clock-names", strings.Join(names, ","), "wdog_clk,apb_pclk"},
		{"timeout-sec", timeout, uint32(10)},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("watchdog %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(clocks) != 2 {
		t.Fatalf("watchdog clocks = %v, want two phandles", clocks)
	}
	var rate uint32
	tr.Root.Walk(func(c *dtb.Node) error {
		if c.PhandleOf() == clocks[0] {
			rate, _ = c.U32("clock-frequency")
		}
		return nil
	})
	if rate != armvirt.WatchdogClockHz {
		t.Errorf("wdog_clk rate = %d, want %d", rate, armvirt.WatchdogClockHz)
	}
	blob, err := tr.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	dtcDecode(t, blob)
	h.Watchdog = nil
	if tr, _ := DeviceTree(h); len(tr.FindCompatible("arm,sp805")) != 0 {
		t.Errorf("a guest without a watchdog has an arm,sp805 node")
	}
}

// TestDeviceTreeTPM checks the TPM's node against what tpm_tis reads
// (its of_match compatible and the register block) and that a guest
// without a TPM has none.
func TestDeviceTreeTPM(t *testing.T) {
	tests := []struct {
		name  string
		tpm   bool
		nodes int
	}{
		{"with a TPM", true, 1},
		{"without a TPM", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fixedHardware(GICv3)
			h.TPM = tt.tpm
			tr, err := DeviceTree(h)
			if err != nil {
				t.Fatalf("DeviceTree() = %v", err)
			}
			nodes := tr.FindCompatible("tcg,tpm-tis-mmio")
			if len(nodes) != tt.nodes {
				t.Fatalf("tcg,tpm-tis-mmio nodes = %d, want %d", len(nodes), tt.nodes)
			}
			if tt.nodes == 0 {
				return
			}
			n := nodes[0]
			reg, err := n.Reg()
			if err != nil {
				t.Fatalf("TPM reg: %v", err)
			}
			want := []dtb.Region{{Address: armvirt.TPMBase, Size: armvirt.TPMSize}}
			if fmt.Sprint(reg) != fmt.Sprint(want) {
				t.Errorf("TPM reg = %v, want %v", reg, want)
			}
			if n.Path() != "/tpm@90d0000" {
				t.Errorf("TPM node path = %s, want /tpm@90d0000", n.Path())
			}
			blob, err := tr.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			dtcDecode(t, blob)
		})
	}
}

// TestDeviceTreePMU checks the PMU node against its binding
// (Documentation/devicetree/bindings/arm/pmu.yaml) and what KVM was told:
// arm,armv8-pmuv3 with PPI 7, level-high, and on a GICv2 the mask of the
// CPUs it reaches, as the timer's PPIs have; no node without a PMU.
func TestDeviceTreePMU(t *testing.T) {
	tests := []struct {
		name      string
		gic       GICVersion
		pmu       bool
		wantIRQ   []uint32 // nil: no pmu node
		wantNodes int
	}{
		{"GICv3", GICv3, true, []uint32{1, armvirt.PMUPPI, 4}, 1},
		{"GICv2, two vCPUs", GICv2, true, []uint32{1, armvirt.PMUPPI, 0b11<<8 | 4}, 1},
		{"no PMU", GICv3, false, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := fixedHardware(tt.gic)
			h.PMU = tt.pmu
			tr, err := DeviceTree(h)
			if err != nil {
				t.Fatalf("DeviceTree() = %v", err)
			}
			nodes := tr.FindCompatible("arm,armv8-pmuv3")
			if len(nodes) != tt.wantNodes {
				t.Fatalf("arm,armv8-pmuv3 nodes = %d, want %d", len(nodes), tt.wantNodes)
			}
			if tt.wantNodes == 0 {
				return
			}
			irq, err := nodes[0].U32s("interrupts")
			if err != nil || fmt.Sprint(irq) != fmt.Sprint(tt.wantIRQ) {
				t.Errorf("pmu interrupts = %v, %v, want %v", irq, err, tt.wantIRQ)
			}
			if armvirt.PMUIntID != 16+irq[1] {
				t.Errorf("KVM's PMU INTID %d is not the device tree's PPI %d + 16", armvirt.PMUIntID, irq[1])
			}
			blob, err := tr.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			dtcDecode(t, blob)
		})
	}
}
