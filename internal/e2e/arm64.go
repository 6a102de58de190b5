package e2e

// Arm64Kernel returns Debian's arm64 kernel (linux-image-arm64) from the
// cache: the emulated arm64 host's own kernel doubles as the guest's.
func Arm64Kernel(cache string) (Kernel, error) { return CachedKernel(cache, "arm64") }
