package xen

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// maxHostCPU bounds a core number in a CPU list: far above any board,
// low enough that "0-4000000000" cannot make a huge slice.
const maxHostCPU = 4095

// cpuList is a parsed CPULIST (xl.cfg(5), cpus=; booting.txt's
// hard-affinity is its subset without "all", "^" and nodes).
type cpuList struct {
	all   bool  // "all": every host core
	cores []int // listed cores, in order, exclusions applied
}

// parseCPUList reads "0-3,5,^1" or "all,^7". Exclusions apply to the whole
// list. A core listed twice (also by overlapping ranges) is refused:
// system.yaml's host-cpus dedicate each core once, so a repeat is almost
// always a typo for another core.
func parseCPUList(s string) (cpuList, error) {
	var l cpuList
	var excl []int
	seen := map[int]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		neg := strings.HasPrefix(item, "^")
		body := strings.TrimPrefix(item, "^")
		switch {
		case item == "":
			return l, fmt.Errorf("empty entry in %q: separate cores and ranges with single commas", s)
		case body == "all" && !neg:
			l.all = true
			continue
		case strings.HasPrefix(body, "node") || strings.HasPrefix(body, "nodes"):
			return l, fmt.Errorf("%q: NUMA node sets have no Tandem equivalent: list the host cores instead (e.g. \"2-3\")", item)
		}
		lo, hi, err := parseRange(body)
		if err != nil {
			return l, fmt.Errorf("%q in %q: %v", item, s, err)
		}
		for c := lo; c <= hi; c++ {
			if neg {
				excl = append(excl, c)
				continue
			}
			if prev, ok := seen[c]; ok {
				return l, fmt.Errorf("core %d is listed twice in %q (by %q and %q): list each host core once", c, s, prev, item)
			}
			seen[c] = item
			l.cores = append(l.cores, c)
		}
	}
	l.cores = slices.DeleteFunc(l.cores, func(c int) bool { return slices.Contains(excl, c) })
	if !l.all && len(l.cores) == 0 {
		return l, fmt.Errorf("%q leaves no core: list at least one host core, or \"all\"", s)
	}
	if l.all && len(l.cores) > 0 {
		// "all,3" is just "all".
		l.cores = nil
	}
	if l.all && len(excl) > 0 {
		l.cores = nil
		return l, errAllExcept
	}
	return l, nil
}

// errAllExcept: "all,^N" needs the host's core count, which an import
// does not know.
var errAllExcept = fmt.Errorf("\"all\" with exclusions")

func parseRange(s string) (lo, hi int, err error) {
	a, b, isRange := strings.Cut(s, "-")
	if lo, err = parseCore(a); err != nil {
		return 0, 0, err
	}
	if !isRange {
		return lo, lo, nil
	}
	if hi, err = parseCore(b); err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("range runs backwards: write %d-%d", hi, lo)
	}
	return lo, hi, nil
}

func parseCore(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || strings.ContainsAny(s, "+") {
		return 0, fmt.Errorf("%q is not a core number", s)
	}
	if n > maxHostCPU {
		return 0, fmt.Errorf("core %d: more than any host has (at most %d)", n, maxHostCPU)
	}
	return n, nil
}
