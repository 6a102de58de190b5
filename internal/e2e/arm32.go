package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Arm32Kernel returns Debian's armhf LPAE kernel (linux-image-armmp-lpae)
// from the cache: a zImage and its modules. The AArch32 guest runs
// guests/testinit built for GOARCH=arm, so it needs no busybox.
func Arm32Kernel(cache string) (Kernel, error) { return armhfKernel(cache, "armhf") }

// armhfKernel returns the armhf kernel scripts/testdata.sh unpacked in
// the cache's directory name (armhf, armhf-6.12).
func armhfKernel(cache, name string) (Kernel, error) {
	dir := filepath.Join(cache, name)
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return Kernel{}, fmt.Errorf("no armhf guest kernel in %s: run scripts/testdata.sh %s (%w)", dir, name, err)
	}
	k := Kernel{
		Image:   filepath.Join(dir, "vmlinuz"),
		Modules: filepath.Join(dir, "modules", strings.TrimSpace(string(rel))),
	}
	for _, f := range []string{k.Image, k.Modules} {
		if _, err := os.Stat(f); err != nil {
			return Kernel{}, fmt.Errorf("incomplete test data: run scripts/testdata.sh %s (%w)", name, err)
		}
	}
	return k, nil
}
