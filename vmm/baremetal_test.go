package vmm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/baremetal"
	"github.com/tandem-hv/tandem/internal/kvmtest"
)

// TestBareMetalGuest boots the x86_64 bare-metal test guest
// (internal/baremetal) as an ELF executable and as a raw image: it runs
// from where its loader put it, prints its marker and the command line it
// was handed over COM1, and powers off. The command line is the console
// default only when none is given; an empty one reaches the guest empty.
func TestBareMetalGuest(t *testing.T) {
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	if kvm.HostArch != "x86_64" {
		t.Skipf("skipping: the bare-metal test guest is x86_64 code, and this host is %s", kvm.HostArch)
	}
	dir := t.TempDir()
	elfPath, rawPath := filepath.Join(dir, "guest.elf"), filepath.Join(dir, "guest.bin")
	if err := os.WriteFile(elfPath, baremetal.X86ELF(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rawPath, baremetal.X86Code, 0o644); err != nil {
		t.Fatal(err)
	}
	empty, given := "", "quiet tandem.test=1"
	tests := []struct {
		name     string
		cfg      Config
		wantLine string
	}{
		{"ELF, no command line given", Config{Kernel: elfPath}, "console=ttyS0"},
		{"ELF, an empty command line", Config{Kernel: elfPath, Cmdline: &empty}, ""},
		{"raw at 1 MiB, a command line", Config{Kernel: rawPath, KernelFormat: KernelRaw, LoadAddress: baremetal.X86Base, Cmdline: &given}, given},
		{"raw, an empty command line", Config{Kernel: rawPath, KernelFormat: KernelRaw, LoadAddress: baremetal.X86Base, Cmdline: &empty}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg := tt.cfg
			cfg.CPUs, cfg.Memory, cfg.Console.Out = 1, 64<<20, &out
			vm, err := Build(cfg)
			if err != nil {
				t.Fatalf("Build() = %v", err)
			}
			defer vm.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := vm.Run(ctx); err != nil {
				t.Fatalf("Run() = %v, want the guest to power off; console: %q", err, out.String())
			}
			if want := baremetal.X86Marker + tt.wantLine + baremetal.X86End; out.String() != want {
				t.Errorf("console = %q, want %q", out.String(), want)
			}
		})
	}
}

// TestCmdlineAsGiven checks what command line each architecture hands
// its guest: the one given, empty included, and its console's only when
// none is given at all.
func TestCmdlineAsGiven(t *testing.T) {
	empty, given := "", "root=/dev/vda"
	tests := []struct {
		name    string
		cmdline *string
		want    string
	}{
		{"none given", nil, "console=ttyAMA0"},
		{"empty", &empty, ""},
		{"given", &given, given},
	}
	for _, tt := range tests {
		c := Config{Cmdline: tt.cmdline}
		if got := c.cmdlineOr("console=ttyAMA0"); got != tt.want {
			t.Errorf("%s: cmdlineOr() = %q, want %q", tt.name, got, tt.want)
		}
	}
}
