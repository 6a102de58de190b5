package pgroup

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// running lists the processes whose command line holds marker.
func running(marker string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(marker)) {
			out = append(out, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// TestCancelStopsTheGroup: cancelling stops the program and its children,
// one that ignores SIGINT (a shell's background job) included, before
// Run returns.
func TestCancelStopsTheGroup(t *testing.T) {
	for _, tt := range []struct {
		name, script string
	}{
		// sh waits for its job; both take the SIGINT.
		{"child in the foreground", "sleep 61.25; :"},
		// A background job ignores SIGINT: sh dies of it, the job stays.
		{"child that ignores SIGINT", "sleep 61.5 & wait"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			marker := strings.Fields(tt.script)[1]
			ctx, cancel := context.WithCancel(t.Context())
			cmd := Command(ctx, "sh", "-c", tt.script)
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			err := cmd.Run()
			if err == nil {
				t.Fatalf("Run() = nil, want the interrupted sh's error")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Run() took %v after the cancel", d)
			}
			if left := running(marker); len(left) > 0 {
				t.Errorf("still running after Run(): %q", left)
			}
		})
	}
}

// TestRunUncancelled: without a cancel, Run and CombinedOutput are
// exec.Cmd's.
func TestRunUncancelled(t *testing.T) {
	out, err := Command(t.Context(), "sh", "-c", "echo out; echo err >&2").CombinedOutput()
	if err != nil || string(out) != "out\nerr\n" {
		t.Errorf("CombinedOutput() = %q, %v; want \"out\\nerr\\n\"", out, err)
	}
	if err := Command(t.Context(), "sh", "-c", "exit 3").Run(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Run() = %v, want exit status 3", err)
	}
}
