package main

import (
	"slices"
	"strings"
	"testing"
)

// vsockConsole is two rounds of the vsock part as an emulated host's
// console shows them: Tandem's guest lines come through tandem system,
// prefixed with the guest's name, QEMU's straight from its serial port.
const vsockConsole = `vsockecho: listening on unix /tmp/echo.sock
vsockecho: listening on vsock 5000
BENCH-BEGIN vmm=tandem round=1
vsock | TANDEM-IO vsock rtt-p50-us=305.44 rtt-p99-us=437.65 rtt-mean-us=309.14
vsock | TANDEM-IO done
BENCHRUN status=0 seconds=3.100 marker-seconds=3.000 maxrss-kib=70000
BENCH-BEGIN vmm=peer round=1
TANDEM-IO vsock rtt-p50-us=150.10 rtt-p99-us=210.00 rtt-mean-us=155.00
TANDEM-IO done
BENCHRUN status=0 seconds=2.900 marker-seconds=2.800 maxrss-kib=140000
BENCH-BEGIN vmm=tandem round=2
vsock | TANDEM-IO vsock rtt-p50-us=301.00 rtt-p99-us=420.00 rtt-mean-us=305.00
vsock | TANDEM-IO done
BENCHRUN status=0 seconds=3.000 marker-seconds=2.900 maxrss-kib=70000
BENCH-BEGIN vmm=peer round=2
TANDEM-IO vsock rtt-p50-us=151.00 rtt-p99-us=205.00 rtt-mean-us=154.00
TANDEM-IO done
BENCHRUN status=0 seconds=2.900 marker-seconds=2.800 maxrss-kib=140000
`

// netConsole is two rounds of the net part: both VMMs' guest lines come
// straight from a serial console (tandem run, QEMU), after the sink's own
// lines from the setup.
const netConsole = `sink: listening on tcp 10.0.2.2:5001
BENCH-BEGIN vmm=tandem round=1
sink: a connection ended after 8388608 bytes
TANDEM-IO net tx-MBps=412.3
TANDEM-IO done
BENCHRUN status=0 seconds=4.100 marker-seconds=4.000 maxrss-kib=70000
BENCH-BEGIN vmm=peer round=1
TANDEM-IO net tx-MBps=388.0
TANDEM-IO done
BENCHRUN status=0 seconds=4.900 marker-seconds=4.800 maxrss-kib=140000
BENCH-BEGIN vmm=tandem round=2
TANDEM-IO net tx-MBps=405.9
TANDEM-IO done
BENCHRUN status=0 seconds=4.000 marker-seconds=3.900 maxrss-kib=70000
BENCH-BEGIN vmm=peer round=2
TANDEM-IO fail net: connecting to 10.0.2.2:5001: connection refused (tried for 20s)
BENCHRUN status=0 seconds=24.000 marker-seconds=-1.000 maxrss-kib=140000
`

func TestIOResultsInRoundOrderLeavingOutUnfinishedRounds(t *testing.T) {
	tests := []struct {
		name        string
		console     string
		key         string
		wantTandem  []float64
		wantPeer    []float64
		wantLeftOut []string // each a substring of one left-out line
	}{
		{"both rounds, p50", vsockConsole, "vsock rtt-p50-us", []float64{305.44, 301}, []float64{150.1, 151}, nil},
		{"both rounds, p99", vsockConsole, "vsock rtt-p99-us", []float64{437.65, 420}, []float64{210, 205}, nil},
		{"a round that failed is left out",
			strings.Replace(vsockConsole, "BENCHRUN status=0 seconds=2.900 marker-seconds=2.800 maxrss-kib=140000\nBENCH-BEGIN vmm=tandem round=2",
				"BENCHRUN status=1 seconds=9.000 marker-seconds=-1.000 maxrss-kib=140000\nBENCH-BEGIN vmm=tandem round=2", 1),
			"vsock rtt-p50-us", []float64{305.44, 301}, []float64{151}, []string{"peer round 1 did not finish (status 1)"}},
		{"a round without its marker is left out",
			strings.Replace(vsockConsole, "BENCHRUN status=0 seconds=3.000 marker-seconds=2.900", "BENCHRUN status=0 seconds=3.000 marker-seconds=-1.000", 1),
			"vsock rtt-p50-us", []float64{305.44}, []float64{150.1, 151}, []string{"tandem round 2 did not finish"}},
		{"a value that is not a number is skipped",
			strings.Replace(vsockConsole, "rtt-p50-us=301.00", "rtt-p50-us=fast", 1),
			"vsock rtt-p50-us", []float64{305.44}, []float64{150.1, 151}, nil},
		{"net throughput, a guest that failed is left out", netConsole, "net tx-MBps", []float64{412.3, 405.9}, []float64{388},
			[]string{"peer round 2 did not finish (status 0)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, left := ioResults(parseBootRuns(tt.console))
			if got := vals["tandem"][tt.key]; !slices.Equal(got, tt.wantTandem) {
				t.Errorf("ioResults() tandem %q = %v, want %v", tt.key, got, tt.wantTandem)
			}
			if got := vals["peer"][tt.key]; !slices.Equal(got, tt.wantPeer) {
				t.Errorf("ioResults() peer %q = %v, want %v", tt.key, got, tt.wantPeer)
			}
			if len(left) != len(tt.wantLeftOut) {
				t.Fatalf("ioResults() left out %q, want %d rounds", left, len(tt.wantLeftOut))
			}
			for i, w := range tt.wantLeftOut {
				if !strings.Contains(left[i], w) {
					t.Errorf("ioResults() left out %q, want it to say %q", left[i], w)
				}
			}
		})
	}
}
