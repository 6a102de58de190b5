package main

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

// TestWriteVersion checks what `tandem version` says for builds with and
// without version-control information.
func TestWriteVersion(t *testing.T) {
	tests := []struct {
		name string
		info *debug.BuildInfo
		want []string
	}{
		{"a clean checkout", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "vcs.modified", Value: "false"}}},
			[]string{"tandem (devel) (commit 0123abcd, 2026-12-01T10:00:00Z) go"}},
		{"a tree with changes", &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.modified", Value: "true"}}},
			[]string{"commit 0123abcd, with uncommitted changes)"}},
		{"a released module", &debug.BuildInfo{Main: debug.Module{Version: "v1.2.0"}}, []string{"tandem v1.2.0 (commit unknown: not built from a git checkout)"}},
		{"no build information", nil, []string{"tandem (devel) (commit unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeVersion(&b, tt.info)
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("writeVersion() = %q, want it to contain %q", b.String(), w)
				}
			}
		})
	}
}
