package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemRefusesBadManifest: tandem system with a manifest that gives
// one dedicated core to two guests fails at once, naming the file, line,
// field and rule, and starts nothing (no /dev/kvm is needed to find out).
func TestSystemRefusesBadManifest(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`guests:
  - name: control
    role: control
    kernel: /bin/true
    host-cpus: [1]
    rt-priority: 50
  - name: infotainment
    kernel: /bin/true
    host-cpus: [1]
`), 0o644)
	var stdout, stderr bytes.Buffer
	err := run([]string{"system", "--control", filepath.Join(dir, "control.sock"), bad}, &stdout, &stderr)
	if err == nil {
		t.Fatalf("tandem system bad.yaml succeeded; stdout %q", stdout.String())
	}
	want := bad + `:9: guest "infotainment": host-cpus[0]: core 1 is already dedicated to guest "control"`
	if !strings.Contains(err.Error(), want) {
		t.Errorf("tandem system bad.yaml = %v, want %q", err, want)
	}
	if out := stdout.String() + stderr.String(); strings.Contains(out, "started (pid") {
		t.Errorf("tandem system bad.yaml started a guest: %q", out)
	}
}
