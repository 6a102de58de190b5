package main

import (
	"slices"
	"testing"
	"time"
)

func TestRTTWordsNearestRankPercentiles(t *testing.T) {
	us := func(vs ...int) []time.Duration {
		var d []time.Duration
		for _, v := range vs {
			d = append(d, time.Duration(v)*time.Microsecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted
	}
	tests := []struct {
		name    string
		samples []time.Duration
		want    []string
	}{
		{"one sample", us(7), []string{"rtt-p50-us=7.00", "rtt-p99-us=7.00", "rtt-mean-us=7.00"}},
		{"unsorted three", us(30, 10, 20), []string{"rtt-p50-us=20.00", "rtt-p99-us=30.00", "rtt-mean-us=20.00"}},
		{"1 to 100", us(hundred...), []string{"rtt-p50-us=50.00", "rtt-p99-us=99.00", "rtt-mean-us=50.50"}},
		{"sub-microsecond", []time.Duration{1500, 2500}, []string{"rtt-p50-us=1.50", "rtt-p99-us=2.50", "rtt-mean-us=2.00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rttWords(tt.samples); !slices.Equal(got, tt.want) {
				t.Errorf("rttWords() = %v, want %v", got, tt.want)
			}
		})
	}
}
