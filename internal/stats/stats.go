// Package stats has the summary statistics the benchmarks and test
// reports print.
package stats

import "sort"

// Median is the middle value of v (the mean of the middle two for an even
// count), 0 for none. v is not changed.
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
