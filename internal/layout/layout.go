// Package layout checks Tandem's import graph against the layout table of
// docs/architecture.md (see its test): the folder tree is the dependency
// graph, and the table says which package may import which.
package layout

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Rule is one row of the table: the packages it covers and what they may
// import, as patterns relative to the module ("hv/devices/..." is the
// folder and all below it).
type Rule struct {
	Packages []string
	May      []string
}

// Match reports whether pkg (relative to the module) is covered by
// pattern.
func Match(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

var code = regexp.MustCompile("`([^`]+)`")

// ParseTable reads the first Markdown table whose header starts with
// "| package | may import |": each row's first cell lists the packages,
// the second what they may import ("—" for none), each in backticks.
func ParseTable(r io.Reader) ([]Rule, error) {
	var rules []Rule
	in := false
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		switch {
		case !in && strings.HasPrefix(l, "| package | may import |"):
			in = true
		case in && strings.HasPrefix(l, "|---"):
		case in && strings.HasPrefix(l, "|"):
			cells := strings.Split(strings.Trim(l, "|"), "|")
			if len(cells) < 2 {
				return nil, fmt.Errorf("line %d: want | package | may import | cells: %q", n, l)
			}
			var r Rule
			for _, m := range code.FindAllStringSubmatch(cells[0], -1) {
				r.Packages = append(r.Packages, m[1])
			}
			for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
				r.May = append(r.May, m[1])
			}
			if len(r.Packages) == 0 || (len(r.May) == 0 && strings.TrimSpace(cells[1]) != "—") {
				return nil, fmt.Errorf("line %d: a row names its packages and what they may import in backticks, or — for nothing: %q", n, l)
			}
			rules = append(rules, r)
		case in:
			return rules, nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, fmt.Errorf("no table headed | package | may import |")
	}
	return rules, nil
}

// Check returns one line for each import the rules do not allow and for
// each package no rule covers. imports maps a package (relative to the
// module) to the module's packages it imports. The first rule covering a
// package decides.
func Check(rules []Rule, imports map[string][]string) []string {
	var bad []string
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, p := range pkgs {
		r, ok := ruleFor(rules, p)
		if !ok {
			bad = append(bad, fmt.Sprintf("%s: no row of the table covers it; add one", p))
			continue
		}
		for _, imp := range imports[p] {
			if !allowed(r, imp) {
				bad = append(bad, fmt.Sprintf("%s imports %s, which its row (%s) does not allow", p, imp, strings.Join(r.Packages, ", ")))
			}
		}
	}
	return bad
}

func ruleFor(rules []Rule, pkg string) (Rule, bool) {
	for _, r := range rules {
		for _, p := range r.Packages {
			if Match(p, pkg) {
				return r, true
			}
		}
	}
	return Rule{}, false
}

func allowed(r Rule, imp string) bool {
	for _, m := range r.May {
		if Match(m, imp) {
			return true
		}
	}
	return false
}
