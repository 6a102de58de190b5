package platforms

import (
	"errors"
	"strings"
	"testing"
)

func good() *Board {
	return &Board{
		Name: "test", Arch: ARM, SMP: SMPPSCI,
		CPU:    CPU{Compatible: "arm,cortex-a7", Count: 2, Virtualization: true},
		Memory: []Region{{0x40000000, 1 << 30}},
		GIC: GIC{Version: 2, Dist: Region{0x1c81000, 0x1000}, CPU: Region{0x1c82000, 0x2000},
			Hyp: Region{0x1c84000, 0x2000}, VCPU: Region{0x1c86000, 0x2000}, MaintenancePPI: 9},
		Image: Image{Table: MBR, FirstPartition: 1 << 20, BootFS: "vfat",
			Blobs: []Blob{{Name: "SPL", Offset: 8 << 10, MaxLen: 1016 << 10}}},
	}
}

// TestValidate breaks a good profile one field at a time.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(b *Board)
		want   string // "" for valid
	}{
		{"good", func(b *Board) {}, ""},
		{"no name", func(b *Board) { b.Name = "" }, "no name"},
		{"bad arch", func(b *Board) { b.Arch = "mips" }, "architecture"},
		{"no cpus", func(b *Board) { b.CPU.Count = 0 }, "CPU count"},
		{"no virt, not guest-only", func(b *Board) { b.CPU.Virtualization = false }, "not guest-only"},
		{"big.LITTLE", func(b *Board) {
			b.CPU = CPU{Compatible: "arm,cortex-a53", Count: 6, Virtualization: true,
				Clusters: []Cluster{{"arm,cortex-a53", 4}, {"arm,cortex-a72", 2}}}
		}, ""},
		{"clusters short of the count", func(b *Board) { b.CPU.Clusters = []Cluster{{"arm,cortex-a7", 1}} }, "the clusters hold 1 cores"},
		{"clusters led by another core", func(b *Board) {
			b.CPU.Clusters = []Cluster{{"arm,cortex-a15", 1}, {"arm,cortex-a7", 1}}
		}, "the first cluster is"},
		{"memory overlap", func(b *Board) { b.Memory = append(b.Memory, Region{0x7fff0000, 0x20000}) }, "memory bank"},
		{"GIC overlap", func(b *Board) { b.GIC.Hyp = Region{0x1c82800, 0x2000} }, "GIC region"},
		{"GIC in memory", func(b *Board) { b.GIC.Dist.Base = 0x40001000 }, "overlaps memory"},
		{"no GICH", func(b *Board) { b.GIC.Hyp = Region{} }, "virtualization interface"},
		{"blob overlaps MBR", func(b *Board) { b.Image.Blobs[0].Offset = 0 }, "overlaps the mbr"},
		{"blob in GPT", func(b *Board) { b.Image.Table = GPT }, "overlaps the gpt"},
		{"blob into partition", func(b *Board) { b.Image.Blobs[0].MaxLen = 1 << 20 }, "runs into the first partition"},
		{"blobs overlap", func(b *Board) {
			b.Image.Blobs = append(b.Image.Blobs, Blob{Name: "X", Offset: 16 << 10, MaxLen: 512})
		}, "blob SPL"},
		{"unaligned blob", func(b *Board) { b.Image.Blobs[0].Offset = 8<<10 + 1 }, "not sector aligned"},
		{"no table", func(b *Board) { b.Image.Table = "" }, "partition table"},
		{"partition in MBR", func(b *Board) { b.Image.FirstPartition = 0; b.Image.Blobs = nil }, "first partition"},
		{"boot files", func(b *Board) {
			b.Image.BootFiles = []BootFile{{Name: "MLO"}, {Name: "config.txt", Content: "arm_64bit=1\n"}}
		}, ""},
		{"boot file in a folder", func(b *Board) { b.Image.BootFiles = []BootFile{{Name: "overlays/x.dtbo"}} }, "boot file name"},
		{"boot file without a name", func(b *Board) { b.Image.BootFiles = []BootFile{{Package: "p:/f"}} }, "boot file name"},
		{"boot file twice", func(b *Board) { b.Image.BootFiles = []BootFile{{Name: "MLO"}, {Name: "MLO"}} }, "listed twice"},
		{"boot file with content and package", func(b *Board) {
			b.Image.BootFiles = []BootFile{{Name: "config.txt", Content: "x\n", Package: "raspi-firmware:/x"}}
		}, "both content and a package"},
		{"boot-efi without a boot script", func(b *Board) { b.Image.BootEFI, b.Image.BootScript = true, "" }, "image.boot-efi"},
		{"boot-efi on arm64 with a boot script", func(b *Board) { b.Image.BootEFI, b.Image.BootScript, b.Arch = true, "boot.scr", ARM64 }, ""},
		{"boot-efi on 32-bit ARM", func(b *Board) { b.Image.BootEFI, b.Image.BootScript, b.Arch = true, "boot.scr", ARM }, "image.boot-efi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := good()
			tt.mutate(b)
			err := b.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			case tt.want != "" && !errors.Is(err, ErrInvalid):
				t.Fatalf("Validate() = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestCanHostKVM(t *testing.T) {
	tests := []struct {
		name string
		b    Board
		want bool
		why  string
	}{
		{"arm64", Board{CPU: CPU{Virtualization: true}}, true, ""},
		{"armv7", Board{CPU: CPU{Virtualization: true}, HostKernel: ARMv7HostKernel}, false, "≤ 5.6"},
		{"a9", Board{CPU: CPU{Compatible: "arm,cortex-a9"}, GuestOnly: true}, false, "no virtualization extensions"},
	}
	for _, tt := range tests {
		got, why := tt.b.CanHostKVM()
		if got != tt.want || !strings.Contains(why, tt.why) {
			t.Errorf("%s: CanHostKVM() = %v, %q; want %v, containing %q", tt.name, got, why, tt.want, tt.why)
		}
	}
}
