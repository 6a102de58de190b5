package arm64

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// debianUBoot is Debian's u-boot-qemu build for QEMU's arm64 virt board.
const debianUBoot = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"

func firmwareMemory(t *testing.T, ram uint64) (flash, guest *mem.Memory) {
	t.Helper()
	flash, err := mem.New([]mem.Range{{GPA: armvirt.FlashBase, Size: armvirt.FlashBankSize}}, mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { flash.Close() })
	guest, err = mem.New(MemoryRanges(ram), mem.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close() })
	return flash, guest
}

// TestLoadFirmwareDebianUBoot loads Debian's qemu_arm64 U-Boot: it lies
// byte for byte at the flash's start, the vCPU enters there, and the
// device tree goes to the start of RAM, where U-Boot's qemu-arm board
// reads it (board_fdt_blob_setup returns CFG_SYS_SDRAM_BASE).
func TestLoadFirmwareDebianUBoot(t *testing.T) {
	testenv.RequireFile(t, debianUBoot, "install Debian's u-boot-qemu, or run `make deps`")
	want, err := os.ReadFile(debianUBoot)
	if err != nil {
		t.Fatal(err)
	}
	flash, ram := firmwareMemory(t, 256<<20)
	b, image, err := LoadFirmware(flash, ram, debianUBoot)
	if err != nil {
		t.Fatalf("LoadFirmware() = %v", err)
	}
	if b.KernelAddr != 0 || b.DTBAddr != 0x40000000 || !b.Firmware || b.InitrdSize != 0 {
		t.Errorf("LoadFirmware() = %+v, want entry 0, device tree at 0x40000000, Firmware, no initrd", *b)
	}
	got, err := flash.Slice(0, uint64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || !bytes.Equal(image, want) {
		t.Errorf("flash bank 0 does not hold u-boot.bin byte for byte")
	}
	// The device tree, reserved, at the start of RAM: the first bytes
	// there are the FDT magic U-Boot checks.
	tr, err := DeviceTree(fixedHardware(GICv3))
	if err != nil {
		t.Fatal(err)
	}
	ReserveDeviceTree(tr)
	if err := b.WriteDeviceTree(ram, tr); err != nil {
		t.Fatalf("WriteDeviceTree() = %v", err)
	}
	head := make([]byte, 4)
	if err := ram.ReadAt(head, RAMBase); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(head, []byte{0xd0, 0x0d, 0xfe, 0xed}) {
		t.Errorf("start of RAM = % x, want the FDT magic d0 0d fe ed", head)
	}
	blob, _ := tr.Bytes()
	back, err := dtb.Parse(blob)
	if err != nil {
		t.Fatalf("dtb.Parse() = %v", err)
	}
	if len(back.Reservations) != 1 || back.Reservations[0] != (dtb.Reservation{Address: RAMBase, Size: MaxDTBSize}) {
		t.Errorf("reservations = %+v, want the device tree's 2 MiB at %#x", back.Reservations, RAMBase)
	}
}

// TestDeviceTreeHasWhatUBootNeeds checks the nodes U-Boot's qemu_arm64
// build binds drivers to: a memory node (its RAM size, fdtdec's
// setup_mem_size_base), the PL011 as stdout-path (its console), PSCI
// (its reset and power-off), the architected timer, the GIC and one
// virtio,mmio node per transport (virtio-blk for distro boot).
func TestDeviceTreeHasWhatUBootNeeds(t *testing.T) {
	h := fixedHardware(GICv3)
	tr, err := DeviceTree(h)
	if err != nil {
		t.Fatal(err)
	}
	compatible := map[string]int{}
	_ = tr.Root.Walk(func(n *dtb.Node) error {
		for _, c := range []string{"arm,pl011", "arm,psci-0.2", "arm,armv8-timer", "arm,gic-v3", "virtio,mmio"} {
			if n.IsCompatible(c) {
				compatible[c]++
			}
		}
		return nil
	})
	for c, want := range map[string]int{"arm,pl011": 1, "arm,psci-0.2": 1, "arm,armv8-timer": 1, "arm,gic-v3": 1, "virtio,mmio": len(h.Virtio)} {
		if compatible[c] != want {
			t.Errorf("nodes compatible with %s = %d, want %d", c, compatible[c], want)
		}
	}
	if n, err := tr.Lookup("/memory@40000000"); err != nil || n == nil {
		t.Errorf("Lookup(/memory@40000000) = %v, want the memory node", err)
	}
	chosen, err := tr.Lookup("/chosen")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := chosen.String("stdout-path"); err != nil || p != "/pl011@9000000" {
		t.Errorf("/chosen/stdout-path = %q, %v; want /pl011@9000000", p, err)
	}
}

func TestLoadFirmwareRefusals(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.bin")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.bin")
	if err := os.WriteFile(big, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(big, MaxFirmwareSize+1); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(dir, "small.bin")
	if err := os.WriteFile(small, []byte{0x14}, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		ram  uint64
		want error
	}{
		{"empty file", empty, 256 << 20, ErrFirmwareSize},
		{"larger than a flash bank", big, 256 << 20, ErrFirmwareSize},
		{"missing file", filepath.Join(dir, "none.bin"), 256 << 20, os.ErrNotExist},
		{"too little RAM", small, 32 << 20, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flash, ram := firmwareMemory(t, tt.ram)
			_, _, err := LoadFirmware(flash, ram, tt.path)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("LoadFirmware() = %v, want %v", err, tt.want)
			}
			if tt.want != nil {
				if cerr := CheckFirmware(tt.path); !errors.Is(cerr, tt.want) {
					t.Errorf("CheckFirmware() = %v, want %v", cerr, tt.want)
				}
			}
		})
	}
}
