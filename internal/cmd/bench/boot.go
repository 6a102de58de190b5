package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/vmm"
)

// Targets of the boot comparison.
const (
	bootTarget     = 0.5 // VMM start to the guest's marker, ÷ QEMU's
	peakRSSTarget  = 0.5 // peak resident memory of a 256 MiB guest, ÷ QEMU's
	overheadBudget = 5.0 // MiB of resident memory beyond guest RAM
)

// guestDone is the test guest's last marker (guests/testinit).
const guestDone = "TANDEM-TEST done"

// boot boots Debian's stock kernel with the test initramfs and disk under
// Tandem and under QEMU in each emulated host, interleaved, through
// benchrun, which times each from the VMM's start to the guest's last
// marker and keeps its peak resident memory.
func (b *bench) boot() error {
	for _, arch := range b.arches {
		if err := b.bootIn(arch); err != nil {
			return fmt.Errorf("in the emulated %s host: %w", arch, err)
		}
	}
	return nil
}

// bootRun is what one round of one VMM gave.
type bootRun struct {
	status          int
	seconds, marker float64
	maxRSSKiB       float64
	// overheadKiB is the resident memory beyond guest RAM when the
	// marker came (benchrun, from outside), overheadFileKiB its part
	// backed by files.
	overheadKiB, overheadFileKiB float64
	spans                        []vmm.Span
	haveMem, haveSpan            bool
	io                           []string // the I/O guest's result lines, after its marker
}

func (b *bench) bootIn(arch string) error {
	ga := goarch(arch)
	g, err := e2e.PrepareGuest(b.root, b.out, cacheArch(arch), ga)
	if err != nil {
		return err
	}
	runner, err := b.goBuild("./internal/cmd/benchrun", ga, false)
	if err != nil {
		return err
	}
	peer, err := peerFor(arch)
	if err != nil {
		return fmt.Errorf("carrying QEMU into the emulated host: %w", err)
	}
	files := g.Files()
	files["/bin/benchrun"] = runner
	for k, v := range peer.files {
		files[k] = v
	}
	cmdline := "console=ttyS0 quiet panic=-1"
	if arch == "arm64" {
		cmdline = "console=ttyAMA0 quiet panic=-1"
	}
	tandemCmd := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus 2 --memory 256M --disk /guest/disk.img,ro --report-memory --timeline", cmdline)
	runs, res, err := b.runPairs(pairRun{arch: arch, name: "boot", files: files, tandemCmd: tandemCmd, peerName: peer.name,
		peerCmd: peer.command(cmdline, "-drive id=disk,file=/guest/disk.img,format=raw,if=none,readonly=on -device virtio-blk-device,drive=disk"), marker: guestDone})
	if err != nil {
		return err
	}
	var tBoot, pBoot, tRSS, pRSS, over, overFile, pOver []float64
	for k, r := range runs {
		ok := r.status == 0 && r.marker > 0
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: %s round %d did not reach its guest's last marker (status %d); left out\n", k.vmm, k.round, r.status)
			continue
		}
		if k.vmm == "tandem" {
			tBoot, tRSS = append(tBoot, r.marker), append(tRSS, r.maxRSSKiB)
			if r.haveMem {
				over, overFile = append(over, r.overheadKiB), append(overFile, r.overheadFileKiB)
			}
		} else {
			pBoot, pRSS = append(pBoot, r.marker), append(pRSS, r.maxRSSKiB)
			if r.haveMem {
				pOver = append(pOver, r.overheadKiB)
			}
		}
	}
	need := b.rounds/2 + 1
	if len(tBoot) < need || len(pBoot) < need || len(over) < need {
		return fmt.Errorf("too few complete runs (Tandem %d, %s %d, memory reports %d; want %d of each):\n%s", len(tBoot), peer.name, len(pBoot), len(over), need, res.Tail(30))
	}
	b.compare("boot", arch, "VMM start to guest marker", "s", peer.name, tBoot, pBoot, 1,
		row{name: "VMM start → guest's last marker, " + arch, unit: "s", target: bootTarget, peerName: peer.name})
	b.compare("boot", arch, "peak RSS, 256 MiB guest", "KiB", peer.name, tRSS, pRSS, 1.0/1024,
		row{name: "peak RSS, 256 MiB guest, " + arch, unit: "MiB", target: peakRSSTarget, peerName: peer.name})
	for i, v := range over {
		b.samples = append(b.samples, sample{"boot", arch, "VMM overhead RSS (non-guest mappings)", "tandem", i + 1, v, "KiB"},
			sample{"boot", arch, "VMM overhead RSS, file-backed part", "tandem", i + 1, overFile[i], "KiB"})
	}
	// QEMU's guest RAM is one anonymous mapping of exactly the guest's
	// size too (arm64 virt, read from its smaps on 8 December), so the
	// same rule gives its overhead: shown beside Tandem's, not a target
	// (none when no QEMU round measured it: median is then 0).
	for i, v := range pOver {
		b.samples = append(b.samples, sample{"boot", arch, "VMM overhead RSS (non-guest mappings)", peer.name, i + 1, v, "KiB"})
	}
	b.rows = append(b.rows,
		row{name: "VMM overhead, RSS of non-guest mappings at the marker, " + arch, tandem: median(over) / 1024, peer: median(pOver) / 1024, peerName: peer.name, unit: "MiB", target: overheadBudget, absolute: true},
		row{name: "  of which file-backed (the tandem binary's pages)", tandem: median(overFile) / 1024, unit: "MiB", report: true})
	b.timelines[arch] = bootBars(runs, peer.name)
	return nil
}

// pairRun is one comparison's runs in one boot of an emulated host.
type pairRun struct {
	arch, name string
	// files go into the host (see qemuhost.Options.Files); modules of
	// the host's kernel are loaded before setup (qemuhost.Options.Modules).
	files   map[string]string
	modules []string
	// setup is shell commands run once, before the first round.
	setup              string
	tandemCmd, peerCmd string
	peerName           string
	// marker ends each run's timed part.
	marker string
	// stopTandem ends Tandem's command once the marker has come:
	// tandem system keeps running after its guests power off.
	stopTandem bool
}

// runPairs runs p.tandemCmd and p.peerCmd in turn, b.rounds times, in one
// boot of the emulated host, each through benchrun with p.marker as the
// end of its timed part, after p.setup. It returns each round's results;
// the whole console goes to build/bench/NAME-console-ARCH.log.
func (b *bench) runPairs(p pairRun) (map[vmmKey]*bootRun, *qemuhost.Result, error) {
	arch, name, marker := p.arch, p.name, p.marker
	tandemFlags := ""
	if p.stopTandem {
		tandemFlags = "-stop"
	}
	// Each VMM's console goes to a file; only benchrun's line, Tandem's
	// memory report and timeline, and the guest's results reach the
	// host's console.
	script := fmt.Sprintf(`%s
run() { # vmm, round, command, benchrun's own flags
	echo "BENCH-BEGIN vmm=$1 round=$2"
	/bin/benchrun $4 -marker %q -timeout 4m -guest-mib 256 -log /tmp/$1.$2 -echo %s -echo TANDEM-VMM -echo TANDEM-IO -- sh -c "exec $3"
	grep -q %q /tmp/$1.$2 || tail -20 /tmp/$1.$2
}
r=1
while [ $r -le %d ]; do
	run tandem $r %q %q
	run peer $r %q
	r=$((r+1))
done
`, p.setup, marker, strings.TrimSpace(vmm.TimelinePrefix), marker, b.rounds, p.tandemCmd, tandemFlags, p.peerCmd)
	fmt.Fprintf(os.Stderr, "bench: %s: Tandem and %s, %d interleaved rounds, in an emulated %s host\n", name, p.peerName, b.rounds, arch)
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    arch,
		Files:   p.files,
		Modules: p.modules,
		Script:  script,
		Memory:  "2G",
		Timeout: time.Duration(b.rounds) * 8 * time.Minute,
		Console: progress(),
		Icount:  b.icountFor(arch, name),
	})
	if res != nil {
		os.WriteFile(filepath.Join(b.out, name+"-console-"+arch+".log"), []byte(res.Output), 0o644)
	}
	if err != nil {
		return nil, res, err
	}
	return parseBootRuns(res.Output), res, nil
}

// vmmKey names one round of one VMM.
type vmmKey struct {
	vmm   string
	round int
}

var (
	beginLine    = regexp.MustCompile(`BENCH-BEGIN vmm=(\w+) round=(\d+)`)
	benchrunLine = regexp.MustCompile(`BENCHRUN status=(-?\d+) seconds=([0-9.]+) marker-seconds=(-?[0-9.]+) maxrss-kib=(\d+)(?: overhead-kib=(\d+) overhead-file-kib=(\d+))?`)
)

// parseBootRuns reads the rounds back from the host's console: each
// round's lines follow its BENCH-BEGIN line.
func parseBootRuns(out string) map[vmmKey]*bootRun {
	runs := map[vmmKey]*bootRun{}
	var cur *bootRun
	for _, l := range strings.Split(out, "\n") {
		if m := beginLine.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[2])
			cur = &bootRun{status: -1}
			runs[vmmKey{m[1], n}] = cur
			continue
		}
		if cur == nil {
			continue
		}
		if m := benchrunLine.FindStringSubmatch(l); m != nil {
			cur.status, _ = strconv.Atoi(m[1])
			cur.seconds, _ = strconv.ParseFloat(m[2], 64)
			cur.marker, _ = strconv.ParseFloat(m[3], 64)
			cur.maxRSSKiB, _ = strconv.ParseFloat(m[4], 64)
			if m[5] != "" {
				cur.overheadKiB, _ = strconv.ParseFloat(m[5], 64)
				cur.overheadFileKiB, _ = strconv.ParseFloat(m[6], 64)
				cur.haveMem = true
			}
		} else if s, ok := vmm.ParseTimelineLine(l); ok {
			cur.spans = append(cur.spans, s)
			cur.haveSpan = true
		} else if i := strings.Index(l, ioMarker); i >= 0 {
			cur.io = append(cur.io, strings.TrimSpace(l[i+len(ioMarker):]))
		}
	}
	return runs
}

// bootBars is the timeline picture's bars: Tandem's steps (each the
// median over the rounds of its length, laid end to end), then the
// guest's own boot to its marker; the peer's whole run as one span.
func bootBars(runs map[vmmKey]*bootRun, peerName string) []timelineBar {
	var order []string
	lengths := map[string][]float64{}
	var guest, peer []float64
	keys := make([]vmmKey, 0, len(runs))
	for k := range runs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].round < keys[j].round })
	for _, k := range keys {
		r := runs[k]
		if r.status != 0 || r.marker <= 0 {
			continue
		}
		if k.vmm != "tandem" {
			peer = append(peer, r.marker)
			continue
		}
		end := 0.0
		for _, s := range r.spans {
			if _, ok := lengths[s.Name]; !ok {
				order = append(order, s.Name)
			}
			lengths[s.Name] = append(lengths[s.Name], (s.End - s.Start).Seconds())
			end = max(end, s.End.Seconds())
		}
		guest = append(guest, r.marker-end)
	}
	var t timelineBar
	t.Label = "Tandem"
	at := 0.0
	for _, n := range order {
		d := median(lengths[n])
		t.Spans = append(t.Spans, plotSpan{Name: "Tandem: " + n, Start: at, End: at + d})
		at += d
	}
	if len(guest) > 0 {
		d := median(guest)
		t.Spans = append(t.Spans, plotSpan{Name: "guest kernel and init, to the marker", Start: at, End: at + d})
	}
	bars := []timelineBar{t}
	if len(peer) > 0 {
		bars = append(bars, timelineBar{Label: peerName, Spans: []plotSpan{{Name: peerName + ": VMM start to the marker (one span)", Start: 0, End: median(peer)}}})
	}
	return bars
}

// progress shows the result lines of a bench's console as they come.
func progress() *qemuhost.Lines {
	return qemuhost.NewLines(func(l string) {
		for _, p := range []string{"BENCH", "EXITS", "TANDEM-VMM"} {
			if strings.Contains(l, p) {
				fmt.Fprintf(os.Stderr, "bench: %s\n", strings.TrimSpace(l))
				return
			}
		}
	})
}
