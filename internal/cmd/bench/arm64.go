package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// arm64Boot boots Debian's stock arm64 kernel under Tandem inside the
// emulated QEMU virt board and reports, beside the board's own boot time,
// how long the guest took from `tandem run` to its init's last marker.
// Both run under software emulation: the numbers are reported, not gated.
func arm64Boot(root, out string) ([]string, error) {
	g, err := e2e.PrepareGuest(root, out, "arm64", "arm64")
	if err != nil {
		return nil, err
	}
	script := `t0=$(cut -d' ' -f1 /proc/uptime)
timeout 300 /tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline "console=ttyAMA0 quiet panic=-1" --cpus 2 --memory 256M --disk /guest/disk.img,ro >/tmp/guest 2>&1
s=$?
t1=$(cut -d' ' -f1 /proc/uptime)
grep -q 'TANDEM-TEST done' /tmp/guest || s=99
echo "BENCH arm64 status=$s seconds=$(awk "BEGIN{print $t1-$t0}") $(grep -o 'done uptime=[0-9.]*' /tmp/guest)"
exit $s
`
	fmt.Fprintf(os.Stderr, "bench: booting the emulated arm64 virt board (GICv3) and an arm64 guest in it\n")
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    "arm64",
		Files:   g.Files(),
		Script:  script,
		Memory:  "2G",
		Timeout: 8 * time.Minute,
	})
	if err != nil {
		return nil, err
	}
	m := arm64Line.FindStringSubmatch(res.Output)
	if m == nil || m[1] != "0" {
		return nil, fmt.Errorf("the arm64 guest did not reach its last marker:\n%s", res.Tail(30))
	}
	run, _ := strconv.ParseFloat(m[2], 64)
	return []string{
		fmt.Sprintf("arm64 virt board (software emulation): host kernel to init %.1f s; guest under Tandem, tandem run to power-off %.1f s (guest kernel to its init's last marker %s s)",
			res.Boot.Seconds(), run, m[3]),
	}, nil
}

var arm64Line = regexp.MustCompile(`BENCH arm64 status=(\d+) seconds=([0-9.]+) done uptime=([0-9.]+)`)
