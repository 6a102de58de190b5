package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// rtc2031 is 2031-01-01T00:00:00Z, what the host's PL031 is set to
// before it is passed through: the host's system clock, and with it
// Tandem's own PL031 model, stays at the real time, so the two RTCs the
// guest sees read 2031 and now.
const rtc2031 = 1924992000

// passthroughScript sets the emulated host's PL031 to rtc2031, checks
// that passing it with its interrupt is refused on this kernel (no VFIO
// platform), runs the guest with the PL031 passed without its interrupt,
// and reports which driver has the device afterwards.
func passthroughScript(run string) string {
	return boundedFn + fmt.Sprintf(`echo "E2E host-rtc-device=$(basename $(readlink /sys/class/rtc/rtc0/device)) driver=$(basename $(readlink /sys/bus/amba/devices/9010000.pl031/driver))"
now=$(date +%%s)
date -s @%d >/dev/null && hwclock -w -u && date -s @$now >/dev/null
echo "E2E host-rtc=$(cat /sys/class/rtc/rtc0/since_epoch) host-clock=$(date +%%s)"
echo "E2E refused: $(%s --passthrough /pl031@9010000 --dump-dtb /tmp/refused.dtb 2>&1 | tail -n 1)"
bounded %d %s --passthrough /pl031@9010000,interrupts=none
status=$?
echo
echo "E2E vmm-exit=$status"
echo "E2E host-driver-after=$(basename $(readlink /sys/bus/amba/devices/9010000.pl031/driver)) override=$(cat /sys/bus/amba/devices/9010000.pl031/driver_override)"
exit $status
`, rtc2031, run, int(arm64GuestTimeout/time.Second), run)
}

// TestPassthroughArm64 passes the emulated arm64 host's own PL031 RTC
// (QEMU virt's, at 0x9010000) through to Debian's stock arm64 kernel
// without its interrupt, and proves from inside the guest that the real
// device is reached: the guest's AMBA bus reads the PrimeCell ID from
// the passed registers and binds rtc-pl031 to the node at the
// passthrough window, and that RTC reads the time the host's PL031 was
// set to (2031), while the guest's own, emulated PL031 at 0x9010000
// reads the host's system clock. The same node with its interrupt is
// refused, naming CONFIG_VFIO_AMBA, and the host driver gets the device
// back when the guest ends.
func TestPassthroughArm64(t *testing.T) {
	qemuhost.RequireArch(t, "arm64")
	g, tandem := buildArm64(t)
	run := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus %d --memory %s --disk /guest/disk.img --console stdio",
		arm64GuestCmdline, guestCPUs, guestMemory)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch: "arm64",
		Files: map[string]string{
			"/tandem":         tandem,
			"/guest/vmlinuz":  g.kernel.Image,
			"/guest/initrd":   g.initrd[GuestTestinit],
			"/guest/disk.img": g.disk,
		},
		Script:  passthroughScript(run),
		Memory:  arm64HostMemory,
		Console: consoleLog{},
		Timeout: arm64HostTimeout,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	t.Logf("%s", arm64Timing(res))
	out := res.Output
	for _, want := range []string{
		"E2E host-rtc-device=9010000.pl031 driver=rtc-pl031",
		"the host kernel cannot forward this device's interrupt to a guest",
		"CONFIG_VFIO_AMBA",
		"detached host driver rtc-pl031 from amba device 9010000.pl031",
		"E2E host-driver-after=rtc-pl031 override=(null)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("host console lacks %q", want)
		}
	}
	rtcs := map[string]map[string]string{}
	for _, f := range ParseFacts(out) {
		if _, ok := f["rtc"]; ok {
			rtcs[f["device"]] = f
		}
	}
	passed, own := rtcs["c000000.pl031"], rtcs["9010000.pl031"]
	if passed == nil || own == nil {
		t.Fatalf("guest RTCs = %v, want the passed PL031 at c000000 and Tandem's at 9010000", rtcs)
	}
	if passed["amba-id"] != "00141031" {
		t.Errorf("passed PL031 amba-id = %q, want 00141031 (PL031 revision 1, read from the host device's ID registers)", passed["amba-id"])
	}
	secs, err := strconv.ParseInt(passed["since-epoch"], 10, 64)
	if err != nil || secs < rtc2031 || secs > rtc2031+int64(arm64HostTimeout/time.Second) {
		t.Errorf("passed PL031 reads %q, want the host PL031's time, just after %d (2031-01-01)", passed["since-epoch"], rtc2031)
	}
	if s, _ := strconv.ParseInt(own["since-epoch"], 10, 64); s >= rtc2031 {
		t.Errorf("Tandem's own PL031 reads %d, want the host's system clock, before 2031", s)
	}
	checkGuest(t, res, g)
}
