// Package procstat reads the fields Tandem uses of a Linux task's stat
// line (proc(5): /proc/PID/stat, /proc/PID/task/TID/stat).
package procstat

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// UserHZ is the unit of the CPU times in stat on Linux (USER_HZ).
const UserHZ = 100

// Stat is what Tandem reads of one stat line.
type Stat struct {
	// Name is the command name (field 2, without its parentheses; it
	// may hold spaces and parentheses).
	Name string
	// State is field 3: R, S, D, …
	State string
	// Ticks is utime + stime (fields 14 and 15), in 1/UserHZ seconds.
	Ticks uint64
	// RTPriority and Policy are fields 40 and 41: the real-time priority
	// (0 for normal tasks) and the scheduling policy (SCHED_OTHER 0,
	// SCHED_FIFO 1, SCHED_RR 2, …); 0 when the line is older and short.
	RTPriority, Policy int
}

// CPU is Ticks as a duration.
func (s Stat) CPU() time.Duration { return time.Duration(s.Ticks) * time.Second / UserHZ }

// Parse parses one stat line. The name runs from the first '(' to the
// last ')', so what follows the last ')' is split into fields.
func Parse(line string) (Stat, bool) {
	open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || close < open {
		return Stat{}, false
	}
	// After the name: the state (field 3), then utime and stime are
	// fields 14 and 15, the 12th and 13th after the state.
	f := strings.Fields(line[close+1:])
	if len(f) < 13 {
		return Stat{}, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, false
	}
	s := Stat{Name: line[open+1 : close], State: f[0], Ticks: ut + st}
	if len(f) > 38 {
		s.RTPriority, _ = strconv.Atoi(f[37])
		s.Policy, _ = strconv.Atoi(f[38])
	}
	return s, true
}

// Read reads and parses the stat file at path.
func Read(path string) (Stat, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Stat{}, false
	}
	return Parse(string(b))
}
