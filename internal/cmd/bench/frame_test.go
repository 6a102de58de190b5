package main

import (
	"slices"
	"strings"
	"testing"
)

// TestParseFrames reads the frame script's lines among a host's console
// noise, and refuses a run with a round missing or a value unreadable.
func TestParseFrames(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		rounds  int
		want    []float64
		wantErr string
	}{
		{"two rounds amid kernel lines", "[  1.0] random: crng init done\nFRAME 1 384050 cpu-ns/frame\nTANDEM-HOST x\nFRAME 2 401234.5 cpu-ns/frame\n", 2, []float64{384050, 401234.5}, ""},
		{"a round without a result", "FRAME 1 384050 cpu-ns/frame\nFRAME 2 \n", 2, nil, "1 frame results of 2 rounds"},
		{"no results", "TANDEM-HOST exit=0\n", 1, nil, "0 frame results of 1 rounds"},
		{"an unreadable value", "FRAME 1 1.2.3 cpu-ns/frame\n", 1, nil, "frame round 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFrames(tt.out, tt.rounds)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFrames() = %v, %v, want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("parseFrames() = %v, %v, want %v", got, err, tt.want)
			}
		})
	}
}
