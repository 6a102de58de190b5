package bsp

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

const goodConfig = `#
# Automatically generated file; DO NOT EDIT.
# Linux/arm64 6.1.176 Kernel Configuration
#
CONFIG_ARM64=y
CONFIG_VIRTUALIZATION=y
CONFIG_KVM=y
CONFIG_EVENTFD=y
CONFIG_ARM_GIC_V3=y
CONFIG_ARM_PSCI_FW=y
CONFIG_VIRTIO_MMIO=m
CONFIG_LOCALVERSION=""
CONFIG_CMDLINE="console=ttyAMA0"
# CONFIG_VFIO_PLATFORM is not set
CONFIG_NR_CPUS=256
`

func TestParseKernelConfig(t *testing.T) {
	c, err := ParseKernelConfig([]byte(goodConfig), "good")
	if err != nil {
		t.Fatalf("ParseKernelConfig() = %v", err)
	}
	for _, tt := range []struct{ sym, want string }{
		{"CONFIG_KVM", "y"}, {"CONFIG_VIRTIO_MMIO", "m"}, {"CONFIG_VFIO_PLATFORM", "n"},
		{"CONFIG_NR_CPUS", "256"}, {"CONFIG_LOCALVERSION", `""`}, {"CONFIG_NOPE", ""},
	} {
		if got := c.Value(tt.sym); got != tt.want {
			t.Errorf("Value(%s) = %q, want %q", tt.sym, got, tt.want)
		}
	}
	if c.Arch != "arm64" || c.Version != "6.1.176" {
		t.Errorf("Arch, Version = %q, %q; want arm64, 6.1.176", c.Arch, c.Version)
	}
	if atMost, known := c.VersionAtMost(5, 6); atMost || !known {
		t.Errorf("VersionAtMost(5, 6) = %v, %v; want false, true", atMost, known)
	}
}

// TestParseKernelConfigCorrupt corrupts the good config one way at a time.
func TestParseKernelConfigCorrupt(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "no CONFIG_ lines"},
		{"comments only", "# hello\n", "no CONFIG_ lines"},
		{"binary", "CONFIG_A=y\n\x00\x01", "NUL"},
		{"no equals", goodConfig + "CONFIG_BROKEN\n", "good:16:"},
		{"bad symbol", goodConfig + "KVM=y\n", "not a CONFIG_ symbol"},
		{"empty value", goodConfig + "CONFIG_X=\n", "empty value"},
		{"unterminated string", goodConfig + "CONFIG_CMDLINE=\"console\n", "malformed string"},
		{"huge line", "CONFIG_A=" + strings.Repeat("y", 2<<20) + "\n", "token too long"},
		{"too large", strings.Repeat("#\n", maxConfigSize), "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKernelConfig([]byte(tt.in), "good")
			if err == nil || !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "good") {
				t.Fatalf("ParseKernelConfig() = %v, want ErrBadConfig naming the file and containing %q", err, tt.want)
			}
		})
	}
}

func FuzzParseKernelConfig(f *testing.F) {
	f.Add([]byte(goodConfig))
	f.Add([]byte("# CONFIG_X is not set\nCONFIG_Y=\"a\\\"b\"\n"))
	if b, err := os.ReadFile(configPath("arm64")); err == nil {
		f.Add(b[:min(len(b), 8192)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseKernelConfig(data, "fuzz")
		if err != nil {
			if !errors.Is(err, ErrBadConfig) {
				t.Fatalf("error %v does not wrap ErrBadConfig", err)
			}
			return
		}
		if len(c.Values) == 0 {
			t.Fatalf("parsed a config without values")
		}
		CheckKernelConfig(c, nil)
	})
}

func configPath(arch string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "build", "cache", "boards", arch, "config")
}

// TestDebianConfigs checks Debian's own kernels: arm64 can host KVM,
// armhf cannot since 5.7.
func TestDebianConfigs(t *testing.T) {
	tests := []struct {
		arch, board string
		ok          bool
		verdict     string
	}{
		{"arm64", "qemu-virt-arm64", true, "can host KVM (CONFIG_KVM=y)"},
		{"arm64", "xgene-mustang", true, "can host KVM"},
		{"armhf", "cubieboard2", false, "CONFIG_KVM is absent; Linux 5.7 removed KVM host support for 32-bit ARM and this is 6.1"},
		{"armhf", "", false, "5.4 is the newest LTS"},
	}
	for _, tt := range tests {
		t.Run(tt.arch+"/"+tt.board, func(t *testing.T) {
			p := configPath(tt.arch)
			testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseKernelConfig(data, p)
			if err != nil {
				t.Fatalf("ParseKernelConfig(%s) = %v", p, err)
			}
			b, _ := all.Lookup(tt.board)
			s := CheckKernelConfig(c, b)
			if s.OK() != tt.ok || !strings.Contains(s.Verdict, tt.verdict) {
				t.Errorf("CheckKernelConfig() OK = %v, verdict %q; want %v, containing %q", s.OK(), s.Verdict, tt.ok, tt.verdict)
			}
		})
	}
}
