package hostinit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestCheckStatic: a dynamically linked program is refused as the host's
// init, naming its interpreter and the fix; a static one (Debian's
// busybox-static) and a file that is no ELF program pass.
func TestCheckStatic(t *testing.T) {
	busybox := filepath.Join("..", "..", "build", "cache", "x86", "busybox")
	testenv.RequireFile(t, busybox, "run `make testdata`")
	dynamic := "/bin/true" // Debian's coreutils: linked against libc
	notELF := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	tests := []struct {
		name, path string
		want       []string // in the error; nil: no error
	}{
		{"static busybox", busybox, nil},
		{"dynamically linked coreutils", dynamic, []string{dynamic, "dynamically linked", "interpreter /lib", "CGO_ENABLED=0"}},
		{"not an ELF program", notELF, nil},
		{"missing file", filepath.Join(t.TempDir(), "none"), []string{"none", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckStatic(tt.path)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("CheckStatic(%s) = %v, want nil", tt.path, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckStatic(%s) = nil, want an error", tt.path)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("CheckStatic(%s) = %q, want it to say %q", tt.path, err, w)
				}
			}
		})
	}
}

// TestHardwareAbsent: a module whose hardware is missing (kvm_intel on an
// AMD CPU fails with EOPNOTSUPP) is skipped; any other failure stops the
// boot.
func TestHardwareAbsent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{unix.EOPNOTSUPP, true},
		{unix.ENODEV, true},
		{unix.ENXIO, true},
		{fmt.Errorf("finit_module: %w", unix.ENODEV), true},
		{unix.EINVAL, false},
		{unix.ENOEXEC, false},
		{unix.EPERM, false},
	}
	for _, tt := range tests {
		if got := hardwareAbsent(tt.err); got != tt.want {
			t.Errorf("hardwareAbsent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
