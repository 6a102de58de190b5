package arm32

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/devices"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedHardware is a 2-vCPU guest with a disk, a virtio console and an
// rng, with a fixed seed so its tree is deterministic.
func fixedHardware(gic armvirt.GICVersion) Hardware {
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
		PSCIVersion: armvirt.PSCI11,
		Virtio:      virtio,
		Cmdline:     "console=ttyAMA0 quiet",
		InitrdStart: RAMBase + SafeOffset + MaxDTBSize,
		InitrdEnd:   RAMBase + SafeOffset + MaxDTBSize + 4<<20,
		RNGSeed:     seed,
		KASLRSeed:   0x0123456789abcdef, // not written: no KASLR on arm32
	}
}

// TestDeviceTreeGolden compares the generated tree, as DTS, with the
// golden files, and has dtc decode the blob without a warning.
func TestDeviceTreeGolden(t *testing.T) {
	tests := []struct {
		name   string
		gic    armvirt.GICVersion
		golden string
	}{
		{"GICv3", armvirt.GICv3, "guest-gicv3.dts"},
		{"GICv2", armvirt.GICv2, "guest-gicv2.dts"},
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
			if _, err := exec.LookPath("dtc"); err == nil {
				f := filepath.Join(t.TempDir(), "guest.dtb")
				os.WriteFile(f, blob, 0o644)
				if out, err := exec.Command("dtc", "-I", "dtb", "-O", "dts", "-o", os.DevNull, f).CombinedOutput(); err != nil || len(out) > 0 {
					t.Errorf("dtc -I dtb -O dts: %v\n%s", err, out)
				}
			}
		})
	}
}

// TestDeviceTreeFacts checks what a 32-bit kernel reads.
func TestDeviceTreeFacts(t *testing.T) {
	tr, err := DeviceTree(fixedHardware(armvirt.GICv3))
	if err != nil {
		t.Fatalf("DeviceTree() = %v", err)
	}
	tests := []struct {
		path, prop, want string
	}{
		{"/cpus/cpu@1", "compatible", "arm,cortex-a15"},
		{"/timer", "compatible", "arm,armv7-timer"},
		{"/psci", "method", "hvc"},
		{"/chosen", "bootargs", "console=ttyAMA0 quiet"},
		{"/", "model", "tandem,arm32"},
	}
	for _, tt := range tests {
		n, err := tr.Lookup(tt.path)
		if err != nil {
			t.Errorf("Lookup(%q) = %v", tt.path, err)
			continue
		}
		if got, _ := n.Strings(tt.prop); len(got) == 0 || got[0] != tt.want {
			t.Errorf("%s %s = %q, want %q", tt.path, tt.prop, got, tt.want)
		}
	}
	chosen, _ := tr.Lookup("/chosen")
	if chosen.Prop("kaslr-seed") != nil {
		t.Errorf("/chosen has a kaslr-seed; 32-bit kernels have no KASLR")
	}
}
