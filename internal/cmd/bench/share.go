package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// shareTarget is AGL's eCockpit requirement on the hypervisor's share of
// boot: power-on to the control guest's first report within a quarter more
// than power-on to the host's userspace.
const shareTarget = 1.25

// shareManifest is the control guest alone, publishing its vehicle state
// to a host service as in the mixed bench's alone phase, with the demo
// control guest's command line (cryptomgr.notests: see
// internal/e2e.DemoManifest).
const shareManifest = `guests:
  - name: control
    role: control
    kernel: vmlinuz
    initrd: control.img
    cmdline: console=ttyAMA0 quiet panic=-1 cryptomgr.notests tandem.peer=2:5000
    memory: 160M
    host-cpus: [1]
    rt-priority: 50
    lock-memory: true
    vsock: {cid: 3, allow: ["host:5000"], host: [{port: 5000, socket: sink.sock}]}
`

// shareScript starts the supervisor once the host's userspace is up and
// times the control guest's first report from there: its first line that
// names TANDEM-CONTROL, its connection to the vehicle-state peer, which
// it makes as its control loop starts. A control guest that never gets
// there (its init died, and the manifest does not restart it) ends the
// round after two minutes rather than leaving the board silent.
const shareScript = `cd /s
/sink sink.sock > sink.log 2>&1 &
echo "BENCH share supervisor-start-uptime=$(cut -d' ' -f1 /proc/uptime)"
/bin/benchrun -marker 'TANDEM-CONTROL' -stop -timeout 2m -log /tmp/share.log -- /tandem system share.yaml
grep -q TANDEM-CONTROL /tmp/share.log || tail -20 /tmp/share.log
`

// shareHostTHP gives the board's host kernel transparent huge pages, as
// Tandem's images have them (Debian's kernel enables them by default),
// where the other emulated hosts boot without (internal/qemuhost): the
// control guest's locked memory is then mapped into it a huge page at a
// time. madvise limits them to mappings that ask, such as locked guest
// RAM.
const shareHostTHP = "transparent_hugepage=madvise"

var (
	hostBootedLine = regexp.MustCompile(`TANDEM-HOST booted uptime=([0-9.]+)`)
	shareStartLine = regexp.MustCompile(`BENCH share supervisor-start-uptime=([0-9.]+)`)
)

// share measures, on the emulated arm64 virt board, the hypervisor's share
// of boot: from power-on (the host kernel's clock starts) to the control
// loop's first report, over power-on to the host's init. Each round is a
// boot of the board.
func (b *bench) share() error {
	const arch = "arm64"
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return err
	}
	k, err := e2e.CachedKernel(cache, "arm64")
	if err != nil {
		return err
	}
	files := map[string]string{"/s/vmlinuz": k.Image}
	img := filepath.Join(b.out, "control-arm64.img")
	if err := guestInitramfs(img, "control", "arm64", k, b.root, demoModules); err != nil {
		return fmt.Errorf("building the control guest: %w", err)
	}
	files["/s/control.img"] = img
	for dst, pkg := range map[string]string{"/tandem": "./cmd/tandem", "/sink": "./internal/cmd/sink", "/bin/benchrun": "./internal/cmd/benchrun"} {
		bin, err := b.goBuild(pkg, "arm64", false)
		if err != nil {
			return err
		}
		files[dst] = bin
	}
	manifest := filepath.Join(b.out, "share.yaml")
	if err := os.WriteFile(manifest, []byte(shareManifest), 0o644); err != nil {
		return err
	}
	files["/s/share.yaml"] = manifest
	var host, control []float64
	for r := 1; r <= b.rounds; r++ {
		fmt.Fprintf(os.Stderr, "bench: hypervisor share of boot: boot %d of %d of the emulated arm64 board with the control guest\n", r, b.rounds)
		res, err := qemuhost.Run(context.Background(), qemuhost.Options{
			Arch: arch, Files: files, Script: shareScript, Memory: "1G",
			Timeout: 6 * time.Minute, Console: progress(), Icount: b.icountFor(arch, "share"),
			Cmdline: shareHostTHP,
		})
		if res != nil {
			os.WriteFile(filepath.Join(b.out, fmt.Sprintf("share-console-%d.log", r)), []byte(res.Output), 0o644)
		}
		if err != nil {
			return err
		}
		booted, start, run := hostBootedLine.FindStringSubmatch(res.Output), shareStartLine.FindStringSubmatch(res.Output), benchrunLine.FindStringSubmatch(res.Output)
		if booted == nil || start == nil || run == nil || run[3] == "-1.000" {
			fmt.Fprintf(os.Stderr, "bench: share round %d: no control-loop report; left out:\n%s\n", r, res.Tail(20))
			continue
		}
		h, _ := strconv.ParseFloat(booted[1], 64)
		s, _ := strconv.ParseFloat(start[1], 64)
		m, _ := strconv.ParseFloat(run[3], 64)
		host, control = append(host, h), append(control, s+m)
	}
	if len(host) < b.rounds/2+1 {
		return fmt.Errorf("%d of %d boots gave a control-loop report", len(host), b.rounds)
	}
	b.compare("share", arch, "power-on to", "s", "host userspace", control, host, 1,
		row{name: "power-on → control guest's first report ÷ power-on → host userspace, arm64 virt board", unit: "s", target: shareTarget, peerName: "host userspace"})
	return nil
}
