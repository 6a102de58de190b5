package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Arm64Kernel returns Debian's arm64 kernel (linux-image-arm64) from the
// cache: the emulated arm64 host's own kernel doubles as the guest's.
func Arm64Kernel(cache string) (Kernel, error) {
	dir := filepath.Join(cache, "arm64")
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return Kernel{}, fmt.Errorf("no arm64 guest kernel in %s: run scripts/testdata.sh arm64 (%w)", dir, err)
	}
	k := Kernel{
		Image:   filepath.Join(dir, "vmlinuz"),
		Modules: filepath.Join(dir, "modules", strings.TrimSpace(string(rel))),
		Busybox: filepath.Join(dir, "busybox"),
	}
	for _, f := range []string{k.Image, k.Modules, k.Busybox} {
		if _, err := os.Stat(f); err != nil {
			return Kernel{}, fmt.Errorf("incomplete test data: run scripts/testdata.sh arm64 (%w)", err)
		}
	}
	return k, nil
}
