package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/stats"
)

// bootCompare boots Debian's stock cloud kernel with the test guest's
// initramfs under Tandem and under QEMU's microvm (-accel kvm), both inside
// one emulated x86 host, interleaved, and times each from VMM start to the
// guest's power-off after its last marker. Tandem's runs also report the
// VMM's memory overhead (RSS minus guest RAM).
func bootCompare(root, out string, rounds int) ([]row, error) {
	g, err := e2e.PrepareGuest(root, out, "x86", "amd64")
	if err != nil {
		return nil, err
	}
	k, initrd, disk, tandem := g.Kernel, g.Initrd, g.Disk, g.Tandem
	qemu, files, err := e2e.QEMUFiles()
	if err != nil {
		return nil, fmt.Errorf("carrying QEMU into the emulated host: %w", err)
	}
	files["/tandem"] = tandem
	files["/guest/vmlinuz"] = k.Image
	files["/guest/initrd"] = initrd
	files["/guest/disk.img"] = disk

	const cmdline = "console=ttyS0 quiet panic=-1"
	tandemCmd := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus 2 --memory 256M --disk /guest/disk.img,ro --report-memory", cmdline)
	qemuCmd := fmt.Sprintf("%s -M microvm -accel kvm -cpu host -smp 2 -m 256M -nodefaults -no-user-config -display none -serial stdio -no-reboot "+
		"-kernel /guest/vmlinuz -initrd /guest/initrd -append %q "+
		"-drive id=disk,file=/guest/disk.img,format=raw,if=none,readonly=on -device virtio-blk-device,drive=disk", qemu, cmdline)
	// Each run's console goes to a file; only its timing line and the
	// memory report reach the host console, which is slow to print.
	script := fmt.Sprintf(`run() { # name, round, command
	t0=$(cut -d' ' -f1 /proc/uptime)
	timeout 300 sh -c "$3" >/tmp/$1.$2 2>&1
	s=$?
	t1=$(cut -d' ' -f1 /proc/uptime)
	grep -q 'TANDEM-TEST done' /tmp/$1.$2 || s=99
	echo "BENCH vmm=$1 round=$2 status=$s seconds=$(awk "BEGIN{print $t1-$t0}")"
	grep TANDEM-VMM /tmp/$1.$2
	[ $s = 0 ] || tail -20 /tmp/$1.$2
}
r=1
while [ $r -le %d ]; do
	run tandem $r %q
	run qemu $r %q
	r=$((r+1))
done
`, rounds, tandemCmd, qemuCmd)
	fmt.Fprintf(os.Stderr, "bench: booting the emulated x86 host for %d interleaved rounds of Tandem and QEMU microvm\n", rounds)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Files:   files,
		Script:  script,
		Timeout: time.Duration(rounds) * 4 * time.Minute,
		Console: progress(),
	})
	if err != nil {
		return nil, err
	}
	// A run that failed is reported and left out of the medians; a
	// comparison needs most runs of both VMMs to have succeeded.
	times := map[string][]float64{}
	failed := map[string]int{}
	for _, m := range benchLine.FindAllStringSubmatch(res.Output, -1) {
		if m[3] != "0" {
			failed[m[1]]++
			fmt.Fprintf(os.Stderr, "bench: %s round %s failed (status %s); left out\n", m[1], m[2], m[3])
			continue
		}
		v, _ := strconv.ParseFloat(m[4], 64)
		times[m[1]] = append(times[m[1]], v)
	}
	var overhead, private []float64
	for _, m := range memLine.FindAllStringSubmatch(res.Output, -1) {
		total, _ := strconv.ParseFloat(m[1], 64)
		file, _ := strconv.ParseFloat(m[2], 64)
		overhead = append(overhead, total/1024)
		private = append(private, (total-file)/1024)
	}
	need := rounds/2 + 1
	if len(times["tandem"]) < need || len(times["qemu"]) < need || len(overhead) < need {
		return nil, fmt.Errorf("too few successful runs (tandem %d, qemu %d, memory reports %d, want %d of each):\n%s",
			len(times["tandem"]), len(times["qemu"]), len(overhead), need, res.Tail(30))
	}
	return []row{
		{name: fmt.Sprintf("stock kernel boot to power-off, nested (median of %d/%d)", len(times["tandem"]), len(times["qemu"])),
			tandem: stats.Median(times["tandem"]), peer: stats.Median(times["qemu"]), unit: "s", target: 0.9},
		{name: "VMM memory overhead, RSS − guest RAM (median)", tandem: stats.Median(overhead), peer: 8, unit: "MiB", target: 1.0, absolute: true},
		{name: "  of which private (RSS − guest RAM − shared binary)", tandem: stats.Median(private), unit: "MiB", report: true},
	}, nil
}

var (
	benchLine = regexp.MustCompile(`BENCH vmm=(\w+) round=(\d+) status=(\d+) seconds=([0-9.]+)`)
	memLine   = regexp.MustCompile(`TANDEM-VMM rss-kib=\d+ guest-rss-kib=\d+ overhead-kib=(\d+) file-kib=(\d+)`)
)

// progress shows the timing lines of a bench's console as they come.
func progress() *qemuhost.Lines {
	return qemuhost.NewLines(func(l string) {
		if strings.Contains(l, "BENCH ") || strings.Contains(l, "TANDEM-VMM") {
			fmt.Fprintf(os.Stderr, "bench: %s\n", strings.TrimSpace(l))
		}
	})
}
