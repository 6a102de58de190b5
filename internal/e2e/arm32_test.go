package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// TestTandemRunArm32 boots Debian's stock armhf kernels, 6.1 and 6.12
// (zImages), with Tandem inside an emulated arm64 host whose CPU
// implements AArch32 at EL1 (QEMU's -cpu max): Tandem recognises the
// zImage and gives the guest AArch32 vCPUs. It checks what each guest
// saw, as the arm64 test does: the armmp-lpae kernel of its version, two
// CPUs (the second brought up by PSCI CPU_ON), the disk's exact content,
// its vsock device answering, and a PSCI SYSTEM_OFF that ends tandem
// with status 0; on a host with a GICv3 and on one with a GICv2, both
// kernels in one boot of each. Subtests are HOST/KERNEL (GICv2/6.12).
func TestTandemRunArm32(t *testing.T) {
	for _, host := range arm64Hosts {
		t.Run(host.name, func(t *testing.T) {
			qemuhost.RequireArch(t, host.arch)
			a64, tandem := buildArm64(t) // the host's tandem and the shared disk image
			gs := matrixGuests(t, "armhf", "arm", []Guest{GuestTestinit})
			res := runArmMatrix(t, host.arch, tandem, a64.disk, gs, func(kernel, initrd string) string {
				return fmt.Sprintf("/tandem run --kernel %s --initrd %s --cmdline %q --cpus %d --memory %s --disk /guest/disk.img --vsock %d --console stdio",
					kernel, initrd, arm64GuestCmdline, guestCPUs, guestMemory, guestCID)
			}, hostRuns{})
			for _, gk := range guestKernels {
				t.Run(gk.version, func(t *testing.T) {
					recordCell(t, "armhf/"+host.name+" testinit", gk.version)
					mg := requireKernel(t, gs, gk, "armhf")
					g := &guestSet{kernel: mg.kernel, disk: a64.disk, diskSum: a64.diskSum}
					r := section(res, gk.version)
					facts := ParseFacts(r.Output)
					t.Logf("%s; guest uptime at done %ss", arm64Timing(r), facts.Find("done")["uptime"])
					if f := facts.Find("kernel"); f == nil || !strings.HasSuffix(f["kernel"], "-armmp-lpae") {
						t.Errorf("guest kernel marker = %v, want the armmp-lpae kernel", f)
					}
					if !strings.Contains(r.Output, "E2E gic="+host.gic) {
						t.Errorf("guest device tree does not describe the %s (%s)", host.name, host.gic)
					}
					checkKernel(t, r, gk.version)
					checkGuest(t, r, g)
					checkVsock(t, r)
				})
			}
		})
	}
}
