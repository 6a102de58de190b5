package main

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// console is an emulated host's console of two rounds, as runPairs's
// script prints it, with the noise a console carries.
const console = `[    1.2] some kernel line
BENCH-BEGIN vmm=tandem round=1
TANDEM-TIMELINE start-ms=0.0 ms=20.0 step=process start to main
TANDEM-TIMELINE start-ms=20.0 ms=50.0 step=loading the kernel
BENCHRUN status=0 seconds=1.400 marker-seconds=1.300 maxrss-kib=70000 overhead-kib=6000 overhead-file-kib=3900
BENCH-BEGIN vmm=peer round=1
TANDEM-IO blk seq-read-MBps=1.5
BENCHRUN status=0 seconds=1.700 marker-seconds=1.600 maxrss-kib=140000
BENCH-BEGIN vmm=tandem round=2
TANDEM-TIMELINE start-ms=0.0 ms=22.0 step=process start to main
TANDEM-TIMELINE start-ms=22.0 ms=54.0 step=loading the kernel
BENCHRUN status=0 seconds=1.420 marker-seconds=1.320 maxrss-kib=71000 overhead-kib=6100 overhead-file-kib=3950
BENCH-BEGIN vmm=peer round=2
BENCHRUN status=1 seconds=9.000 marker-seconds=-1.000 maxrss-kib=1000
`

func TestParseBootRuns(t *testing.T) {
	runs := parseBootRuns(console)
	if len(runs) != 4 {
		t.Fatalf("parseBootRuns() found %d runs, want 4", len(runs))
	}
	t1 := runs[vmmKey{"tandem", 1}]
	if t1 == nil || t1.status != 0 || t1.marker != 1.3 || t1.maxRSSKiB != 70000 || t1.overheadKiB != 6000 || t1.overheadFileKiB != 3900 || len(t1.spans) != 2 {
		t.Errorf("tandem round 1 = %+v", t1)
	}
	p1 := runs[vmmKey{"peer", 1}]
	if p1 == nil || p1.haveMem || len(p1.io) != 1 || p1.io[0] != "blk seq-read-MBps=1.5" {
		t.Errorf("peer round 1 = %+v, want no memory report and one I/O line", p1)
	}
	if p2 := runs[vmmKey{"peer", 2}]; p2 == nil || p2.status != 1 || p2.marker != -1 {
		t.Errorf("peer round 2 = %+v, want status 1 and no marker", p2)
	}
	bars := bootBars(runs, "QEMU virt")
	if len(bars) != 2 || len(bars[0].Spans) != 3 || len(bars[1].Spans) != 1 {
		t.Fatalf("bootBars() = %+v, want Tandem's two steps and its guest, and the peer's one span", bars)
	}
	// Each step is the median of its rounds, laid end to end; the guest's
	// part runs from there to the median marker.
	if s := bars[0].Spans[1]; math.Abs(s.Start-0.021) > 1e-9 || math.Abs(s.End-0.073) > 1e-9 {
		t.Errorf("loading the kernel = %+v, want [0.021, 0.073]", s)
	}
	if s := bars[1].Spans[0]; s.End != 1.6 {
		t.Errorf("the peer's span = %+v, want its one complete round, 1.6 s", s)
	}
}

func TestPlots(t *testing.T) {
	dir := t.TempDir()
	tl := filepath.Join(dir, "timeline.png")
	if err := drawTimelines(tl, "boot", bootBars(parseBootRuns(console), "QEMU virt")); err != nil {
		t.Fatal(err)
	}
	st := filepath.Join(dir, "rounds.png")
	if err := drawStrips(st, "rounds", []strip{{Title: "exits", Unit: "µs", Tandem: []float64{5.7, 5.8}, Peer: []float64{5.2}, PeerName: "C loop"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{tl, st} {
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(r)
		r.Close()
		if err != nil || img.Bounds().Dx() < 500 {
			t.Errorf("%s: png.Decode() = %v, %v, want a picture", f, img, err)
		}
	}
}
