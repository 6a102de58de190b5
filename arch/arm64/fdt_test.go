package arm64

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
