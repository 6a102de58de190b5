package e2e

import (
	"fmt"
	"strconv"
	"strings"
)

// The perf guest: Debian's arm64 kernel with a busybox userland and
// Debian's own perf (linux-perf), which runs `perf stat -e cycles true`
// and prints perf's report on the console, each line behind PerfMarker.

// Perf is Debian's arm64 perf (scripts/testdata.sh perf-arm64).
var Perf = Tool{"perf-arm64", "/usr/bin/perf"}

// PerfMarker starts the perf guest's console lines.
const PerfMarker = "TANDEM-PERF "

// PerfScript is the perf guest's script: perf's report (it writes it to
// standard error) line by line as "TANDEM-PERF | LINE", then
// "TANDEM-PERF done status=S" with perf's exit status.
const PerfScript = `echo "TANDEM-PERF kernel=$(uname -r)"
perf stat -e cycles true > /tmp/perf.out 2>&1
status=$?
sed 's/^/TANDEM-PERF | /' /tmp/perf.out
echo "TANDEM-PERF done status=$status"`

// BuildPerfGuest writes the perf guest's initramfs for k to file. Its
// console is the PL011 and it needs no disk: it loads no modules.
func BuildPerfGuest(file, cache string, k Kernel) error {
	return BuildScriptGuest(file, cache, ScriptGuest{Kernel: k, Tools: []Tool{Perf}, Script: PerfScript})
}

// PerfStat is what the perf guest's `perf stat -e cycles` reported.
type PerfStat struct {
	// Status is perf's exit status.
	Status int
	// Counted says perf counted the event; Cycles is the count then.
	// Otherwise Reason is what perf printed in the count's place
	// ("<not supported>", "<not counted>") or, where it printed no
	// cycles line, its last line (an error).
	Counted bool
	Cycles  uint64
	Reason  string
	// Report is perf's output, without the markers.
	Report string
}

// ParsePerfStat finds the perf guest's report in a console: its lines
// and perf's exit status, and the cycles line's count.
func ParsePerfStat(console string) (PerfStat, error) {
	var st PerfStat
	var lines []string
	done := false
	for _, l := range strings.Split(console, "\n") {
		l = strings.TrimRight(l, "\r")
		i := strings.Index(l, PerfMarker)
		if i < 0 {
			continue
		}
		l = l[i+len(PerfMarker):]
		if rest, ok := strings.CutPrefix(l, "| "); ok {
			lines = append(lines, rest)
		} else if l == "|" {
			lines = append(lines, "")
		} else if s, ok := strings.CutPrefix(l, "done status="); ok {
			n, err := strconv.Atoi(s)
			if err != nil {
				return st, fmt.Errorf("perf guest: %q is not an exit status", l)
			}
			st.Status, done = n, true
		}
	}
	st.Report = strings.Join(lines, "\n")
	if !done {
		return st, fmt.Errorf("no %q line on the console: the perf guest did not finish", PerfMarker+"done status=")
	}
	if len(lines) == 0 {
		return st, fmt.Errorf("perf printed nothing (exit status %d)", st.Status)
	}
	for _, l := range lines {
		f := strings.Fields(l)
		// "COUNT cycles" or "<not supported> cycles", maybe with a
		// comment after a '#'.
		i := -1
		for j, w := range f {
			if w == "cycles" || strings.HasPrefix(w, "cycles:") {
				i = j
				break
			}
			if w == "#" {
				break
			}
		}
		if i < 1 {
			continue
		}
		count := strings.Join(f[:i], " ")
		if strings.HasPrefix(count, "<") && strings.HasSuffix(count, ">") {
			st.Reason = count
			return st, nil
		}
		if i > 1 {
			// Words before "cycles": a sentence (an error), not a
			// count.
			continue
		}
		// perf groups digits with the locale's separator; the guest
		// has none, but a ',' or '.' grouping is read as well.
		n, err := strconv.ParseUint(strings.NewReplacer(",", "", ".", "").Replace(count), 10, 64)
		if err != nil {
			return st, fmt.Errorf("perf's cycles line %q: %q is not a count", l, count)
		}
		st.Counted, st.Cycles = true, n
		return st, nil
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			st.Reason = s
			break
		}
	}
	return st, nil
}
