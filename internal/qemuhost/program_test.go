package qemuhost

import (
	"os"
	"path/filepath"
	"strings"
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
		// libc6:amd64's loader is an absolute link, /lib64/... to
		// /lib/x86_64-linux-gnu/...: it must resolve inside the root.
		{"cyclictest-amd64", "rt-tests-amd64", "/usr/bin/cyclictest",
			[]string{"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libnuma.so.1"}},
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
			for dst, src := range files {
				if !strings.HasPrefix(src, root+string(filepath.Separator)) {
					t.Errorf("UnpackedProgram()[%s] = %s, want a file under %s", dst, src, root)
				}
				if fi, err := os.Lstat(src); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("UnpackedProgram()[%s] = %s: not a regular file (%v)", dst, src, err)
				}
			}
		})
	}
}

// TestInRoot follows symbolic links inside an unpacked root as the
// program's own machine would: an absolute link starts again at the
// root, ".." stops at it, and a missing file or a loop is an error.
func TestInRoot(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"lib/x86_64-linux-gnu", "lib64", "usr/lib"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "lib/x86_64-linux-gnu/ld.so"), []byte("loader"), 0o755); err != nil {
		t.Fatal(err)
	}
	links := map[string]string{
		"lib64/ld.so":          "/lib/x86_64-linux-gnu/ld.so", // absolute: from root
		"lib/ld.so":            "x86_64-linux-gnu/ld.so",      // relative
		"usr/lib/up.so":        "../../../../lib/ld.so",       // .. past root stops there
		"usr/lib/arch":         "/lib/x86_64-linux-gnu",       // a directory link
		"lib/loop":             "loop",
		"lib/dangling":         "/nonexistent/ld.so",
		"lib64/abs-to-host.so": "/etc/hostname", // exists on the machine, not in root
	}
	for l, target := range links {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	want := filepath.Join(root, "lib/x86_64-linux-gnu/ld.so")
	tests := []struct {
		path    string
		wantErr string
	}{
		{"/lib/x86_64-linux-gnu/ld.so", ""},
		{"/lib64/ld.so", ""},
		{"/lib/ld.so", ""},
		{"/usr/lib/up.so", ""},
		{"/usr/lib/arch/ld.so", ""},
		{"/usr/lib/arch/../x86_64-linux-gnu/ld.so", ""},
		{"/lib/loop", "too many symbolic links"},
		{"/lib/dangling", "no such file"},
		{"/lib64/abs-to-host.so", "no such file"},
		{"/lib/missing.so", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := inRoot(root, tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("inRoot(%s) = %q, %v, want an error containing %q", tt.path, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != want {
				t.Fatalf("inRoot(%s) = %q, %v, want %q", tt.path, got, err, want)
			}
		})
	}
}
