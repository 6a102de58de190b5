package kvmtest

import (
	"regexp"
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
