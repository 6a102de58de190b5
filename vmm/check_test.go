package vmm

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/arch/x86"
	"github.com/tandem-hv/tandem/hv/devices/tpm"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/fakekernel"
)

// TestCheck checks what Check refuses beyond Validate, without KVM: each
// error is a *ConfigError naming the manifest's field, and Build refuses
// the same input with a FatalError.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	kernel, err := fakekernel.Write(dir, "vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	random := filepath.Join(dir, "random")
	if err := os.WriteFile(random, []byte(strings.Repeat("\x5a\xc3\x17", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	zImage := filepath.Join(dir, "zImage")
	if err := os.WriteFile(zImage, fakekernel.ZImage(), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "swtpm.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ok := func(c Config) Config {
		c.Kernel, c.CPUs, c.Memory = kernel, 1, 64<<20
		return c
	}
	firmware := filepath.Join(dir, "u-boot.bin")
	if err := os.WriteFile(firmware, []byte(strings.Repeat("\x00\x00\x00\x14", 1024)), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.bin")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fw := func(c Config) Config {
		c.CPUs, c.Memory = 1, 128<<20
		if c.Firmware == "" {
			c.Firmware = firmware
		}
		return c
	}
	// The firmware's host check: on an arm64 host, the empty file's
	// size; elsewhere, the host.
	emptyWant := "firmware size: the file is empty"
	if kvm.HostArch != "arm64" {
		emptyWant = "firmware boot is for arm64 guests on an arm64 host"
	}
	tests := []struct {
		name   string
		cfg    Config
		field  string
		detail string   // what Detail starts with
		want   []string // in Error
	}{
		{"random kernel", Config{Kernel: random, CPUs: 1, Memory: 64 << 20}, "kernel", random + ": ", []string{"kernel " + random + ": not a bzImage"}},
		{"missing TAP", ok(Config{Nets: []Net{{TAP: "tandem-no-tap"}}}), "nets[0].tap", "tandem-no-tap: ", []string{"net 0 tandem-no-tap: no such interface", "ip tuntap add tandem-no-tap mode tap"}},
		{"loopback is no TAP", ok(Config{Nets: []Net{{TAP: "lo"}}}), "nets[0].tap", "lo: ", []string{"net 0 lo: not a TAP interface"}},
		{"TAP name with a slash", ok(Config{Nets: []Net{{TAP: "../lo"}}}), "nets[0].tap", "../lo: ", []string{"not a Linux interface name"}},
		{"zero vCPUs", Config{Kernel: kernel, CPUs: 0, Memory: 64 << 20}, "cpus", "0: ", []string{"cpus 0: must be between 1 and"}},
		{"disk is a directory", ok(Config{Disks: []Disk{{Path: dir}}}), "disks[0]", dir + ": ", []string{"disk 0 " + dir + ": is a directory"}},
		{"TPM socket missing", ok(Config{TPM: &TPM{Socket: filepath.Join(dir, "tpm.sock")}}), "vtpm", filepath.Join(dir, "tpm.sock") + ": ", []string{"TPM socket " + filepath.Join(dir, "tpm.sock") + ": no such file or directory"}},
		{"TPM socket a file", ok(Config{TPM: &TPM{Socket: random}}), "vtpm", random + ": ", []string{"not a socket: want the command socket of a software TPM"}},
		{"display smaller than the least", ok(Config{Display: &Display{Width: 100, Height: 100}}), "display", "100x100: ", []string{"display 100x100", "display size out of range"}},
		{"display's VNC on every interface", ok(Config{Display: &Display{VNC: "tcp:0.0.0.0:5901"}}), "display.vnc", "", []string{"VNC address", "listens beyond this host", "vnc-allow-remote: true"}},
		{"display's VNC not an address", ok(Config{Display: &Display{VNC: "5901"}}), "display.vnc", "", []string{"want unix:PATH or tcp:HOST:PORT"}},
		{"display with a width alone", ok(Config{Display: &Display{Width: 1280}}), "display", "1280x0: ", []string{"display 1280x0"}},
		{"firmware missing", fw(Config{Firmware: filepath.Join(dir, "none.bin")}), "firmware", filepath.Join(dir, "none.bin") + ": ", []string{"firmware " + filepath.Join(dir, "none.bin") + ": no such file or directory"}},
		{"firmware and a kernel", fw(Config{Kernel: kernel}), "firmware", firmware + ": ", []string{"either a kernel or firmware, not both", "drop the kernel"}},
		{"firmware and an initrd", fw(Config{Initrd: kernel}), "firmware", firmware + ": ", []string{"loads the initrd from the guest's disk: drop the initrd"}},
		{"firmware and a load address", fw(Config{LoadAddress: 0x40080000}), "firmware", firmware + ": ", []string{"drop load-address"}},
		{"firmware empty", fw(Config{Firmware: empty}), "firmware", empty + ": ", []string{emptyWant}},
		{"TPM for a 32-bit ARM guest", Config{Kernel: zImage, CPUs: 1, Memory: 64 << 20, TPM: &TPM{Socket: sock}}, "vtpm", "", []string{"a virtual TPM is offered to x86_64 and arm64 guests only", "drop vtpm from this aarch32 guest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Check()
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("Check() = %v, want a *ConfigError", err)
			}
			if ce.Field != tt.field || !strings.HasPrefix(ce.Detail(), tt.detail) {
				t.Errorf("Check() = field %q, detail %q; want field %q, detail starting %q", ce.Field, ce.Detail(), tt.field, tt.detail)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check() = %q, want it to contain %q", err, w)
				}
			}
			vm, berr := Build(tt.cfg)
			if berr == nil {
				vm.Close()
				t.Fatal("Build() = nil error after Check refused the config")
			}
			if berr.Error() != err.Error() || !IsFatal(berr) {
				t.Errorf("Build() = %q (fatal %v), want Check's error %q, fatal", berr, IsFatal(berr), err)
			}
		})
	}
	good := ok(Config{})
	if err := good.Check(); err != nil {
		t.Errorf("Check(a good config) = %v, want nil", err)
	}
}

// TestTPMWindow pins the x86 memory map's TPM window to the TIS device's
// span: the DSDT describes the one, the MMIO bus holds the other.
func TestTPMWindow(t *testing.T) {
	if x86.TPMSize != tpm.Size {
		t.Errorf("x86.TPMSize = %#x, tpm.Size = %#x: the DSDT and the bus disagree", x86.TPMSize, tpm.Size)
	}
}

// TestTPMSupported checks which guest architectures may have a virtual
// TPM: those whose hardware description names its TIS (x86_64's ACPI,
// arm64's device tree), not 32-bit ARM.
func TestTPMSupported(t *testing.T) {
	tests := []struct {
		arch GuestArch
		ok   bool
	}{
		{ArchX86_64, true},
		{ArchARM64, true},
		{ArchAArch32, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.arch), func(t *testing.T) {
			if err := TPMSupported(tt.arch); (err == nil) != tt.ok {
				t.Errorf("TPMSupported(%s) = %v, want ok=%v", tt.arch, err, tt.ok)
			}
		})
	}
}
