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
