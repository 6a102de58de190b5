package kvmtest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// TestRunPattern checks that the pattern given to the test binary in the
// emulated host selects the one test or subtest, and no other.
func TestRunPattern(t *testing.T) {
	tests := []struct {
		name      string
		match     []string // names (split at /) the pattern must select
		mustNotOf []string
	}{
		{"TestDumpState", []string{"TestDumpState"}, []string{"TestDumpStateX", "XTestDumpState"}},
		{"TestRun/truncated_bzImage", []string{"TestRun/truncated_bzImage"}, []string{"TestRun/truncated_bzImage2", "TestRunX/truncated_bzImage"}},
		{"TestDumpState/a_guest_spinning_without_exits_(jmp_$)", []string{"TestDumpState/a_guest_spinning_without_exits_(jmp_$)"}, []string{"TestDumpState/a_guest_spinning_without_exits_jmp_"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RunPattern(tt.name)
			for _, m := range tt.match {
				if !selects(t, p, m) {
					t.Errorf("RunPattern(%q) = %q does not select %q", tt.name, p, m)
				}
			}
			for _, m := range tt.mustNotOf {
				if selects(t, p, m) {
					t.Errorf("RunPattern(%q) = %q selects %q too", tt.name, p, m)
				}
			}
		})
	}
}

// selects matches a -test.run pattern against a test name the way the
// testing package does: each slash-separated element against its level.
func selects(t *testing.T, pattern, name string) bool {
	ps, ns := splitSlash(pattern), splitSlash(name)
	if len(ps) != len(ns) {
		return false
	}
	for i := range ps {
		if !regexp.MustCompile(ps[i]).MatchString(ns[i]) {
			return false
		}
	}
	return true
}

// splitSlash splits at slashes outside brackets and escapes (enough for
// RunPattern's output and test names).
func splitSlash(s string) []string {
	var out []string
	start, esc := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case esc:
			esc = false
		case s[i] == '\\':
			esc = true
		case s[i] == '/':
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// TestJudge checks how the console of a run in the emulated host decides
// the test's result: only a reported pass with exit status 0 passes.
func TestJudge(t *testing.T) {
	tests := []struct {
		name, out string
		status    int
		wantPass  bool
	}{
		{"passed", "=== RUN   TestX\n--- PASS: TestX (0.1s)\nPASS\n", 0, true},
		{"subtest passed", "    --- PASS: TestX/sub (0.1s)\n", 0, true},
		{"failed", "--- FAIL: TestX (0.1s)\nFAIL\n", 1, false},
		{"skipped", "--- SKIP: TestX (0.0s)\n", 0, false},
		{"no test matched", "testing: warning: no tests to run\nPASS\n", 0, false},
		{"a prefix of another test's name passed", "--- PASS: TestXY (0.1s)\n", 0, false},
		{"passed but the binary failed", "--- PASS: TestX (0.1s)\npanic: after the test\n", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "TestX"
			if tt.name == "subtest passed" {
				name = "TestX/sub"
			}
			why := judge(tt.out, name, tt.status)
			if (why == "") != tt.wantPass {
				t.Errorf("judge() = %q, want pass=%v", why, tt.wantPass)
			}
		})
	}
}

// TestHereCallers checks which tests the shared host run takes: Test
// functions calling kvmtest.Here anywhere in their body, not HereWith
// (its files are the test's own) nor helpers or other packages' Here.
func TestHereCallers(t *testing.T) {
	dir := t.TempDir()
	src := map[string]string{
		"a_test.go": `package p
func TestA(t *testing.T) { if !kvmtest.Here(t) { return } }
func TestB(t *testing.T) { t.Run("x", func(t *testing.T) {}); if !kvmtest.Here(t) { return } }
func TestWith(t *testing.T) { if !kvmtest.HereWith(t, nil) { return } }
func helper(t *testing.T) { kvmtest.Here(t) }
func TestOther(t *testing.T) { other.Here(t) }
`,
		"b_test.go": `package p
func TestC(t *testing.T) { for { kvmtest.Here(t) } }
func TestPlain(t *testing.T) {}
`,
		"c.go": `package p
func TestNotATestFile(t *testing.T) { kvmtest.Here(t) }
`,
	}
	for name, s := range src {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := hereCallers(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"TestA", "TestB", "TestC"}; !slices.Equal(got, want) {
		t.Errorf("hereCallers = %q, want %q", got, want)
	}
}

// TestSharedResult checks how one test of a shared run gets its result
// and its lines: its own result line decides, whatever the binary's exit
// status (another test's failure); no result line is a failure.
func TestSharedResult(t *testing.T) {
	out := "=== RUN   TestA\n    a.go:1: in A\n--- PASS: TestA (0.10s)\n=== RUN   TestB\n    b.go:2: in B\n    --- FAIL: TestB/sub (0.00s)\n--- FAIL: TestB (0.20s)\n=== RUN   TestC\npanic: boom\n"
	tests := []struct {
		name      string
		wantPass  bool
		wantLines int
	}{
		{"TestA", true, 3},
		{"TestB", false, 4},
		{"TestC", false, 2},
		{"TestD", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why := judgeShared(out, tt.name, 1)
			if (why == "") != tt.wantPass {
				t.Errorf("judgeShared(%s, status 1) = %q, want pass %v", tt.name, why, tt.wantPass)
			}
			if got := section(out, tt.name); len(got) != tt.wantLines {
				t.Errorf("section(%s) = %q, want %d lines", tt.name, got, tt.wantLines)
			}
		})
	}
}
