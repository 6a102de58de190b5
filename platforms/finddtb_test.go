package platforms

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindDTB: a DTB named without Debian's vendor folder is found in
// it, and one with a folder in a flattened directory.
func TestFindDTB(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "arm64")
	for _, p := range []string{"renesas/r8a774a1-hihope-rzg2m.dtb", "flat.dtb", "a/twice.dtb", "b/twice.dtb", "plain/dir.dtb/x"} {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ name, want, err string }{
		{"renesas/r8a774a1-hihope-rzg2m.dtb", "renesas/r8a774a1-hihope-rzg2m.dtb", ""},
		{"r8a774a1-hihope-rzg2m.dtb", "renesas/r8a774a1-hihope-rzg2m.dtb", ""},
		{"flat.dtb", "flat.dtb", ""},
		{"vendor/flat.dtb", "flat.dtb", ""},
		{"twice.dtb", "", "several vendor folders"},
		{"dir.dtb", "", "no dir.dtb"},
		{"missing.dtb", "", "no missing.dtb"},
	}
	for _, tt := range tests {
		got, err := FindDTB(dir, tt.name)
		switch {
		case tt.err != "" && (err == nil || !errors.Is(err, ErrDTBNotFound) || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("FindDTB(%q) = %q, %v, want ErrDTBNotFound saying %q", tt.name, got, err, tt.err)
		case tt.err == "" && (err != nil || got != filepath.Join(dir, tt.want)):
			t.Errorf("FindDTB(%q) = %q, %v, want %s", tt.name, got, err, tt.want)
		}
	}
	b := &Board{Arch: ARM64, DTB: "r8a774a1-hihope-rzg2m.dtb"}
	if got, want := b.DTBPath(b.DTB, root), filepath.Join(root, "arm64", "renesas", b.DTB); got != want {
		t.Errorf("DTBPath(%s) = %s, want %s", b.DTB, got, want)
	}
}
