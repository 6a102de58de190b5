package qemuhost

import (
	"path/filepath"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestUnpackedProgram finds what Debian's arm64 programs need to run in
// the emulated arm64 host (or a guest's initramfs: cyclictest), from the
// packages testdata.sh unpacked: the
// ELF interpreter, the libraries in the loader's directory and, for
// swtpm, its own library where its RUNPATH says.
func TestUnpackedProgram(t *testing.T) {
	tests := []struct {
		name, cache, bin string
		want             []string
	}{
		{"QEMU", "qemu-arm64", "/usr/bin/qemu-system-aarch64",
			[]string{"/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libglib-2.0.so.0"}},
		{"swtpm", "swtpm-arm64", "/usr/bin/swtpm",
			[]string{"/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libtpms.so.0", "/lib/aarch64-linux-gnu/libcrypto.so.3",
				"/usr/lib/aarch64-linux-gnu/swtpm/libswtpm_libtpms.so.0"}},
		{"cyclictest", "rt-tests-arm64", "/usr/bin/cyclictest",
			[]string{"/lib/ld-linux-aarch64.so.1", "/lib/aarch64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libnuma.so.1"}},
	}
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(cache, tt.cache, "root")
			testenv.RequireFile(t, filepath.Join(root, tt.bin), "scripts/testdata.sh "+tt.cache)
			files, err := UnpackedProgram(root, tt.bin)
			if err != nil {
				t.Fatalf("UnpackedProgram() = %v", err)
			}
			for _, w := range append(tt.want, tt.bin) {
				if _, ok := files[w]; !ok {
					t.Errorf("UnpackedProgram() has no %s: %v", w, files)
				}
			}
		})
	}
}
