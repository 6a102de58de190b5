package vmm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// TestArm64KernelOnOtherHost: an arm64 Image on a host of another
// architecture is refused before KVM is touched, in one line naming the
// kernel file.
func TestArm64KernelOnOtherHost(t *testing.T) {
	if kvm.HostArch == "arm64" {
		t.Skip("skipping: this host runs arm64 guests")
	}
	img := make([]byte, 4096)
	copy(img[0x38:], "ARM\x64")
	k := filepath.Join(t.TempDir(), "Image")
	if err := os.WriteFile(k, img, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(Config{Kernel: k, CPUs: 2, Memory: 64 << 20})
	if err == nil {
		t.Fatal("Build(arm64 Image) = nil error on a non-arm64 host")
	}
	for _, want := range []string{k, "arm64 guest on an " + kvm.HostArch + " host"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build() = %q, want it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("Build() error has several lines: %q", err)
	}
}
