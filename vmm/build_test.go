package vmm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// TestBuildChecksInputsFirst checks that Build finds what is wrong with
// its inputs before it opens /dev/kvm: on a machine without KVM, a bad
// kernel or disk gets its own error, not "no /dev/kvm". Each error must
// name the input and come from a step before "creating the VM".
func TestBuildChecksInputsFirst(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A bzImage header cut short: the magic is there, the rest is not.
	trunc := make([]byte, 0x210)
	copy(trunc[0x202:], "HdrS")
	truncated := write("truncated-bzImage", trunc)
	random := write("random", []byte(strings.Repeat("\x5a\xc3\x17", 4096)))
	// An arm64 Image header with reserved flag bits set.
	arm64 := make([]byte, 64)
	copy(arm64[0x38:], "ARM\x64")
	arm64[0x30] = 0xf0
	badImage := write("bad-Image", arm64)
	// A zImage magic in a file too short to hold its table.
	zimg := make([]byte, 0x30)
	copy(zimg[0x24:], []byte{0x18, 0x28, 0x6f, 0x01})
	badZImage := write("bad-zImage", zimg)
	good := map[string]string{"x86_64": truncated, "arm64": badImage, "arm": badZImage}[kvm.HostArch]

	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"truncated bzImage", Config{Kernel: truncated, CPUs: 1, Memory: 256 << 20}, []string{truncated}},
		{"random bytes", Config{Kernel: random, CPUs: 1, Memory: 256 << 20}, []string{random, "not a bzImage, arm64 Image, zImage or ELF executable"}},
		{"arm64 Image with reserved flags", Config{Kernel: badImage, CPUs: 1, Memory: 256 << 20}, []string{badImage}},
		{"zImage cut short", Config{Kernel: badZImage, CPUs: 1, Memory: 256 << 20}, []string{badZImage}},
		{"missing disk", Config{Kernel: good, CPUs: 1, Memory: 256 << 20, Disks: []Disk{{Path: filepath.Join(dir, "gone.img")}}}, []string{"disk 0", "gone.img"}},
		{"no vCPUs", Config{Kernel: good, CPUs: 0, Memory: 256 << 20}, []string{"cpus 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Build(tt.cfg)
			if err == nil {
				vm.Close()
				t.Fatalf("Build() = nil error, want one naming %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("Build() = %q, want it to name %q", msg, w)
				}
			}
			if strings.Contains(msg, kvm.DevicePath) {
				t.Errorf("Build() = %q: the error is about KVM, not the input", msg)
			}
			for _, late := range []string{"creating the VM", "adding guest memory", "attaching devices", "loading the kernel"} {
				if strings.HasPrefix(msg, late+":") {
					t.Errorf("Build() = %q: the input was checked only once KVM was open (step %q)", msg, late)
				}
			}
		})
	}
}
