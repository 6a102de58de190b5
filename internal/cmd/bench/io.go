package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// ioMarker starts the I/O guest's result lines (guests/iobench).
const ioMarker = "TANDEM-IO "

// ioDiskMiB is the size of the disk the block tests read and write.
const ioDiskMiB = 64

// ioMetric is one number of the I/O guest's, compared between the VMMs.
type ioMetric struct {
	device, key, name, unit string
	// gated metrics are in the targets (≥ the peer's); the others are
	// compared and shown, with the same direction, to say where Tandem
	// stands.
	gated bool
}

var ioMetrics = []ioMetric{
	{"blk", "randread-qd32-iops", "virtio-blk 4 KiB random read, QD32", "IOPS", true},
	{"blk", "randread-qd1-iops", "virtio-blk 4 KiB random read, QD1", "IOPS", false},
	{"blk", "randwrite-qd32-iops", "virtio-blk 4 KiB random write, QD32", "IOPS", false},
	{"blk", "randwrite-qd1-iops", "virtio-blk 4 KiB random write, QD1", "IOPS", false},
	{"blk", "seq-read-MBps", "virtio-blk 1 MiB sequential read", "MB/s", true},
	{"blk", "seq-write-MBps", "virtio-blk 1 MiB sequential write", "MB/s", true},
}

// io runs guests/iobench under Tandem and under the peer in the emulated
// arm64 board, interleaved: the same kernel, the same requests on a disk
// of the same size in the host's memory.
//
// Only on the arm64 board: the x86 host's guests run on the wall clock
// (see icountFor), where one round of these tests under software
// emulation takes many minutes on a machine of the CI's kind.
func (b *bench) io() error {
	return b.inEachHost("io", false, b.ioIn)
}

// inEachHost runs part's comparison, in, in each emulated host the bench
// covers whose guests run on the instruction clock (icountFor); with
// arm64Only, in the arm64 board's alone.
func (b *bench) inEachHost(part string, arm64Only bool, in func(arch string) error) error {
	for _, arch := range b.arches {
		if (arm64Only && arch != "arm64") || !b.icountFor(arch, part) {
			fmt.Fprintf(os.Stderr, "bench: %s: not in the emulated %s host (its guests run on the wall clock there, too slowly for these tests)\n", part, arch)
			continue
		}
		if err := in(arch); err != nil {
			return fmt.Errorf("in the emulated %s host: %w", arch, err)
		}
	}
	return nil
}

// ioGuestFiles builds guests/iobench's initramfs for arch with the
// guest kernel's modules, and returns the files the emulated host needs
// for an iobench comparison: the guest's kernel and initramfs, tandem,
// benchrun, the peer QEMU, and the commands named in bins (path in the
// host to package).
func (b *bench) ioGuestFiles(arch, name string, modules []string, bins map[string]string) (map[string]string, peer, error) {
	ga := goarch(arch)
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return nil, peer{}, err
	}
	k, err := e2e.CachedKernel(cache, cacheArch(arch))
	if err != nil {
		return nil, peer{}, err
	}
	initrd := filepath.Join(b.out, name+"-"+ga)
	if err := guestInitramfs(initrd, "iobench", ga, k, b.root, modules); err != nil {
		return nil, peer{}, fmt.Errorf("building the I/O guest: %w", err)
	}
	files := map[string]string{"/guest/vmlinuz": k.Image, "/guest/initrd": initrd}
	all := map[string]string{"/tandem": "./cmd/tandem", "/bin/benchrun": "./internal/cmd/benchrun"}
	maps.Copy(all, bins)
	for dst, pkg := range all {
		bin, err := b.goBuild(pkg, ga, false)
		if err != nil {
			return nil, peer{}, err
		}
		files[dst] = bin
	}
	pq, err := peerFor(arch)
	if err != nil {
		return nil, peer{}, fmt.Errorf("carrying QEMU into the emulated host: %w", err)
	}
	maps.Copy(files, pq.files)
	return files, pq, nil
}

func (b *bench) ioIn(arch string) error {
	files, peer, err := b.ioGuestFiles(arch, "initrd-iobench", []string{"virtio_mmio", "virtio_blk"}, nil)
	if err != nil {
		return err
	}
	cmdline := "console=ttyS0 quiet panic=-1 tandem.io=blk"
	if arch == "arm64" {
		cmdline = "console=ttyAMA0 quiet panic=-1 tandem.io=blk"
	}
	setup := fmt.Sprintf("dd if=/dev/zero of=/tmp/io.img bs=1M count=%d 2>/dev/null", ioDiskMiB)
	tandemCmd := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus 2 --memory 256M --disk /tmp/io.img", cmdline)
	peerCmd := peer.command(cmdline, "-drive id=io,file=/tmp/io.img,format=raw,if=none -device virtio-blk-device,drive=io")
	runs, res, err := b.runPairs(pairRun{arch: arch, name: "io", files: files, setup: setup, tandemCmd: tandemCmd, peerName: peer.name, peerCmd: peerCmd, marker: ioMarker + "done"})
	if err != nil {
		return err
	}
	vals, left := ioResults(runs)
	for _, l := range left {
		fmt.Fprintf(os.Stderr, "bench: io: %s; left out\n", l)
	}
	need := b.rounds/2 + 1
	for _, m := range ioMetrics {
		t, p := vals["tandem"][m.device+" "+m.key], vals["peer"][m.device+" "+m.key]
		if len(t) < need || len(p) < need {
			return fmt.Errorf("%s: %d Tandem and %d %s results, want %d of each:\n%s", m.name, len(t), len(p), peer.name, need, res.Tail(30))
		}
		r := row{name: m.name + ", " + arch, unit: m.unit, target: 1.0, atLeast: true, peerName: peer.name}
		if !m.gated {
			r.name += " (not a target)"
		}
		b.compare("io", arch, m.name, m.unit, peer.name, t, p, 1, r)
	}
	return nil
}

// ioResults reads the I/O guest's numbers from each round's result lines
// ("DEVICE key=value ...", after the marker ioMarker): for each VMM, every
// "DEVICE key" with its values in round order. Rounds that did not finish
// are left out and said why.
func ioResults(runs map[vmmKey]*bootRun) (vals map[string]map[string][]float64, left []string) {
	keys := make([]vmmKey, 0, len(runs))
	for k := range runs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].round != keys[j].round {
			return keys[i].round < keys[j].round
		}
		return keys[i].vmm < keys[j].vmm
	})
	vals = map[string]map[string][]float64{}
	for _, key := range keys {
		r := runs[key]
		if r.status != 0 || r.marker <= 0 {
			left = append(left, fmt.Sprintf("%s round %d did not finish (status %d): %q", key.vmm, key.round, r.status, r.io))
			continue
		}
		if vals[key.vmm] == nil {
			vals[key.vmm] = map[string][]float64{}
		}
		for _, l := range r.io {
			dev, rest, _ := strings.Cut(l, " ")
			for _, w := range strings.Fields(rest) {
				k, v, ok := strings.Cut(w, "=")
				if f, err := strconv.ParseFloat(v, 64); ok && err == nil {
					vals[key.vmm][dev+" "+k] = append(vals[key.vmm][dev+" "+k], f)
				}
			}
		}
	}
	return vals, left
}
