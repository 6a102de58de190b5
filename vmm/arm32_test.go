package vmm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// TestGuestFor: which guest support each kernel gets on each host, and
// the refusals.
func TestGuestFor(t *testing.T) {
	tests := []struct {
		arch    GuestArch
		host    string
		want    string // the archGuest's type, or "" for an error
		wantErr string
	}{
		{ArchX86_64, "x86_64", "*vmm.x86Guest", ""},
		{ArchARM64, "arm64", "*vmm.arm64Guest", ""},
		{ArchAArch32, "arm64", "*vmm.arm32Guest", ""},
		{ArchAArch32, "arm", "*vmm.arm32Guest", ""},
		{ArchAArch32, "x86_64", "", "aarch32 guest on an x86_64 host"},
		{ArchARM64, "arm", "", "a 32-bit host runs only 32-bit ARM guests"},
		{ArchX86_64, "arm64", "", "x86_64 guest on an arm64 host"},
		{ArchAArch32, "unsupported", "", "aarch32 guest on an unsupported host"},
	}
	for _, tt := range tests {
		g, err := guestFor(kernelFile{arch: tt.arch}, tt.host)
		got := ""
		if g != nil {
			got = fmt.Sprintf("%T", g)
		}
		if got != tt.want || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("guestFor(%s, %s) = %s, %v, want %q, an error containing %q", tt.arch, tt.host, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestZImageOnX86Host: a zImage on an x86 host is refused before KVM is
// touched, in one line naming the kernel file.
func TestZImageOnX86Host(t *testing.T) {
	if kvm.HostArch != "x86_64" {
		t.Skip("skipping: this host is not x86_64")
	}
	img := make([]byte, 4096)
	copy(img[0x24:], []byte{0x18, 0x28, 0x6f, 0x01})
	k := filepath.Join(t.TempDir(), "zImage")
	if err := os.WriteFile(k, img, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(Config{Kernel: k, CPUs: 2, Memory: 256 << 20})
	for _, want := range []string{k, "aarch32 guest on an x86_64 host", "AArch32 zImages"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Build(zImage) = %v, want an error containing %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "\n") {
		t.Errorf("Build() error has several lines: %q", err)
	}
}
