package kvmtest

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// One emulated host serves all of a package's KVM tests that carry no
// files: the first of them to need the host boots it and runs them all
// there in one go; each then takes its own result from that run. A host
// boot under software emulation costs seconds, the tests mostly less.
var shared struct {
	once  sync.Once
	tests []string // the tests the run covers
	res   *qemuhost.Result
	err   error
	took  time.Duration
}

// batchable lists the package's tests that call Here (not HereWith,
// whose files are made by the test itself), as its
// _test.go files in the working directory (go test runs a test binary in
// its package's directory) declare them, and that the binary's own
// -test.run selects. It is nil when the run's patterns are more than a
// top-level name's: then each test goes to its own host.
func batchable() []string {
	run := flagValue("test.run")
	if strings.Contains(run, "/") || flagValue("test.skip") != "" {
		return nil
	}
	re, err := regexp.Compile(run)
	if err != nil {
		return nil
	}
	names, err := hereCallers(".")
	if err != nil {
		return nil
	}
	var out []string
	for _, n := range names {
		if re.MatchString(n) {
			out = append(out, n)
		}
	}
	return out
}

func flagValue(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// hereCallers parses dir's _test.go files and returns, sorted, the Test
// functions whose body calls kvmtest.Here.
func hereCallers(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	var names []string
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || fn.Body == nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			calls := false
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				if c, ok := n.(*ast.CallExpr); ok {
					if s, ok := c.Fun.(*ast.SelectorExpr); ok && s.Sel.Name == "Here" {
						if x, ok := s.X.(*ast.Ident); ok && x.Name == "kvmtest" {
							calls = true
						}
					}
				}
				return !calls
			})
			if calls {
				names = append(names, fn.Name.Name)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

// runShared runs t's test as part of the package's shared host run,
// booting it if t is the first; it reports on t as runInHost does, and
// whether the test passed there. covered is false when t's test is not
// among those the shared run covers (a subtest, one that carries files,
// a package with one KVM test): t then needs a host of its own.
func runShared(t *testing.T, arch string) (covered, passed bool, detail string) {
	shared.once.Do(func() {
		shared.tests = batchable()
		if len(shared.tests) < 2 {
			shared.tests = nil
			return
		}
		start := time.Now()
		bin, err := staticTestBinary(t)
		if err != nil {
			shared.err = fmt.Errorf("the test binary for the emulated %s host: %v", arch, err)
			return
		}
		t.Logf("no /dev/kvm here (or %s=host): running %s in one emulated %s host", WhereEnv, strings.Join(shared.tests, ", "), arch)
		log := qemuhost.NewLines(func(s string) {
			if strings.HasPrefix(s, "qemuhost: ") { // a retry
				t.Log(s)
			}
		})
		shared.res, shared.err = runBinary(arch, bin, nil, "^("+strings.Join(shared.tests, "|")+")$", log)
		shared.took = time.Since(start)
	})
	name := t.Name()
	found := false
	for _, n := range shared.tests {
		found = found || n == name
	}
	if !found {
		return false, false, ""
	}
	if shared.err != nil {
		t.Errorf("running %s in the emulated %s host: %v", name, arch, shared.err)
		head, _, _ := strings.Cut(shared.err.Error(), "\n")
		return true, false, head
	}
	for _, l := range section(shared.res.Output, name) {
		t.Log("host| " + l)
	}
	if why := judgeShared(shared.res.Output, name, shared.res.ExitStatus); why != "" {
		t.Errorf("in the emulated %s host: %s", arch, why)
		return true, false, why
	}
	t.Logf("%s passed in the emulated %s host, in one run with %d other test(s) (KVM from %s; %d boot(s), host booted in %v, whole run %v)",
		name, arch, len(shared.tests)-1, shared.res.KVM, shared.res.Attempts,
		shared.res.Boot.Round(time.Millisecond), shared.took.Round(time.Millisecond))
	return true, true, ""
}

// section is what the test binary printed for the top-level test name in
// -test.v output: from its === RUN line to its own result line.
func section(out, name string) []string {
	var lines []string
	in := false
	for _, l := range strings.Split(strings.TrimRight(strings.ReplaceAll(out, "\r", ""), "\n"), "\n") {
		switch {
		case l == "=== RUN   "+name:
			in = true
		case in && strings.HasPrefix(l, "--- ") && strings.Contains(l, ": "+name+" ("):
			return append(lines, l)
		}
		if in {
			lines = append(lines, l)
		}
	}
	return lines
}

// judgeShared is judge for one test of a shared run: the binary's exit
// status is every test's, so it counts only when name reported nothing.
func judgeShared(out, name string, status int) string {
	if strings.Contains(out, "--- PASS: "+name+" ") {
		status = 0
	}
	return judge(out, name, status)
}
