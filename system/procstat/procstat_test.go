package procstat

import (
	"testing"
	"time"
)

// TestParse checks the fields read of a stat line, whose name may hold
// spaces and parentheses.
func TestParse(t *testing.T) {
	tests := []struct {
		name, stat string
		want       Stat
		ok         bool
	}{
		{"a vCPU thread, name with a space", "4242 (CPU 0/TCG) R 4200 4200 100 0 -1 4194368 1 0 0 0 731 12 0 0 20 0 4 0 100 1 1 18446744073709551615",
			Stat{Name: "CPU 0/TCG", State: "R", Ticks: 743}, true},
		{"a name with a parenthesis", "7 (a) b) S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1 1",
			Stat{Name: "a) b", State: "S", Ticks: 11}, true},
		{"a SCHED_FIFO vCPU thread at priority 50 (fields 40 and 41)",
			"51 (vcpu0) R 1 1 1 0 -1 4194368 0 0 0 0 300 20 0 0 -51 0 4 0 100 1 1 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 50 1 0 0 0",
			Stat{Name: "vcpu0", State: "R", Ticks: 320, RTPriority: 50, Policy: 1}, true},
		{"cut short", "7 (x) S 1 1", Stat{}, false},
		{"no name", "7 x S", Stat{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.stat)
			if ok != tt.ok || got != tt.want {
				t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tt.stat, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestReadSelf reads this test's own stat: a live line the kernel wrote.
func TestReadSelf(t *testing.T) {
	s, ok := Read("/proc/self/stat")
	if !ok {
		t.Skip("skipping: no /proc/self/stat (not Linux)")
	}
	if s.Name == "" || s.State == "" {
		t.Errorf("Read(/proc/self/stat) = %+v, want a name and a state", s)
	}
	if s.CPU() != time.Duration(s.Ticks)*10*time.Millisecond {
		t.Errorf("CPU() = %v for %d ticks, want %d × 10ms", s.CPU(), s.Ticks, s.Ticks)
	}
}
