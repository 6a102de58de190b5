package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

func TestWriteMatrix(t *testing.T) {
	cell := func(row, kernel, outcome string) testenv.Event {
		return testenv.Event{Kind: "guest-kernel", Row: row, Kernel: kernel, Outcome: outcome}
	}
	tests := []struct {
		name  string
		cells []testenv.Event
		want  []string // the lines, spaces between columns collapsed
	}{
		{"no matrix test ran", nil, nil},
		{"every cell", []testenv.Event{
			cell("x86_64 testinit", "6.12", "pass"),
			cell("arm64/GICv3 testinit", "6.1", "pass"),
			cell("x86_64 testinit", "6.1", "pass"),
			cell("arm64/GICv3 testinit", "6.12", "fail"),
		}, []string{"guest kernel matrix:", "guest Linux 6.1 Linux 6.12", "arm64/GICv3 testinit pass fail", "x86_64 testinit pass pass"}},
		{"versions in numeric order, a missing cell", []testenv.Event{
			cell("armhf/GICv2 testinit", "6.12", "pass"),
			cell("armhf/GICv2 testinit", "6.9", "skip"),
			cell("arm64/GICv2 testinit", "6.12", "pass"),
		}, []string{"guest kernel matrix:", "guest Linux 6.9 Linux 6.12", "arm64/GICv2 testinit - pass", "armhf/GICv2 testinit skip pass"}},
		{"a cell run twice shows its worst", []testenv.Event{
			cell("x86_64 busybox", "6.1", "fail"),
			cell("x86_64 busybox", "6.1", "pass"),
		}, []string{"guest kernel matrix:", "guest Linux 6.1", "x86_64 busybox fail"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeMatrix(&b, tt.cells)
			var got []string
			for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
				if l = strings.Join(strings.Fields(l), " "); l != "" {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("writeMatrix() =\n%s\nwant the lines (spaces aside) %q", b.String(), tt.want)
			}
		})
	}
}

// TestWriteRetries checks that the summary counts and names every retry:
// host boots by outcome, and guest runs run again after a traced shutdown.
func TestWriteRetries(t *testing.T) {
	evs := []testenv.Event{
		{Kind: "host", Arch: "x86_64", QEMU: "10.0.2", Outcome: "panic", Retried: true, BootSeconds: 3},
		{Kind: "host", Arch: "x86_64", QEMU: "10.0.2", Outcome: "reset", Retried: true, BootSeconds: 3},
		{Kind: "host", Arch: "x86_64", QEMU: "10.0.2", Outcome: "ok", BootSeconds: 4},
		{Kind: "guest-retry", Package: "internal/e2e", Test: "TestTandemRun", Outcome: "retried", Detail: "E2E retry busybox/6.12: the VMM exited 2"},
	}
	var b strings.Builder
	write(&b, evs)
	got := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"emulated-host boots: 3",
		"x86_64 host, QEMU 10.0.2: 3 boots 1 ok 1 panics 0 hangs 1 resets 0 timeouts 0 errors 2 retries",
		"guest runs retried after the emulated host's KVM failed them (a traced shutdown, a kernel fetch fault loop, or a vCPU in user mode at a kernel address): 1",
		"internal/e2e TestTandemRun E2E retry busybox/6.12: the VMM exited 2",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("write() =\n%s\nwant it to contain %q", b.String(), want)
		}
	}
}
