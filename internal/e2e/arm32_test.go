package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

var (
	arm32Once   sync.Once
	arm32Initrd string
	arm32Kernel Kernel
	arm32Err    error
)

// buildArm32 builds, once per run, the armhf testinit initramfs (testinit
// for GOARCH=arm with the armhf kernel's virtio modules).
func buildArm32(t *testing.T) (Kernel, string) {
	t.Helper()
	arm32Once.Do(func() {
		cache, err := qemuhost.CacheDir()
		if err != nil {
			arm32Err = err
			return
		}
		k, err := Arm32Kernel(cache)
		if err != nil {
			arm32Err = err
			return
		}
		f := filepath.Join(workDir, "initrd-armhf-testinit")
		if err := BuildGuestInitramfs(f, GuestTestinit, k, "arm", "."); err != nil {
			arm32Err = fmt.Errorf("building the armhf testinit guest: %w", err)
			return
		}
		arm32Kernel, arm32Initrd = k, f
	})
	if arm32Err != nil {
		t.Fatal(arm32Err)
	}
	return arm32Kernel, arm32Initrd
}

// TestTandemRunArm32 boots Debian's stock armhf kernel (a zImage) with
// Tandem inside an emulated arm64 host whose CPU implements AArch32 at
// EL1 (QEMU's -cpu max): Tandem recognises the zImage and gives the
// guest AArch32 vCPUs. It checks what the guest saw, as the arm64 test
// does: two CPUs (the second brought up by PSCI CPU_ON), the disk's exact
// content, and a PSCI SYSTEM_OFF that ends tandem with status 0; once on
// a host with a GICv3 and once on one with a GICv2, whose guest gets a
// GICv2 (a Cortex-A15 GIC with its virtual CPU interface).
func TestTandemRunArm32(t *testing.T) {
	for _, tt := range []struct {
		name, host, gic string
	}{
		{"GICv3", "arm64", "arm,gic-v3"},
		{"GICv2", qemuhost.Arm64GICv2, "arm,cortex-a15-gic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			qemuhost.RequireArch(t, tt.host)
			k, initrd := buildArm32(t)
			a64, tandem := buildArm64(t) // the host's tandem and the shared disk image
			g := &guestSet{kernel: k, disk: a64.disk, diskSum: a64.diskSum}
			run := fmt.Sprintf("/tandem run --kernel /guest/zImage --initrd /guest/initrd --cmdline %q --cpus %d --memory %s --disk /guest/disk.img --console stdio",
				arm64GuestCmdline, guestCPUs, guestMemory)
			res, err := qemuhost.Run(context.Background(), qemuhost.Options{
				Arch: tt.host,
				Files: map[string]string{
					"/tandem":         tandem,
					"/guest/zImage":   k.Image,
					"/guest/initrd":   initrd,
					"/guest/disk.img": g.disk,
				},
				Script:  arm64Script(run),
				Memory:  arm64HostMemory,
				Console: consoleLog{},
				Timeout: arm64HostTimeout,
			})
			if err != nil {
				t.Fatalf("qemuhost.Run() = %v", err)
			}
			facts := ParseFacts(res.Output)
			done := facts.Find("done")
			t.Logf("host booted in %v; %s; guest uptime at done %ss; whole run %v", res.Boot, arm64Timing(res), done["uptime"], res.Total)
			if f := facts.Find("kernel"); f == nil || !strings.HasSuffix(f["kernel"], "-armmp-lpae") {
				t.Errorf("guest kernel marker = %v, want the armmp-lpae kernel", f)
			}
			if !strings.Contains(res.Output, "E2E gic="+tt.gic) {
				t.Errorf("guest device tree does not describe the %s (%s)", tt.name, tt.gic)
			}
			checkGuest(t, res, g)
		})
	}
}
