package all_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/boards"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// cacheRoot is build/cache/boards, filled by scripts/testdata-boards.sh.
func cacheRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "build", "cache", "boards")
}

// TestBoards walks every board: its invariants hold, and its real device
// tree parses, matches this profile and agrees with it field by field.
func TestBoards(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range all.Boards() {
		t.Run(b.Name, func(t *testing.T) {
			if seen[b.Name] {
				t.Fatalf("board name %q used twice", b.Name)
			}
			seen[b.Name] = true
			if err := b.Validate(); err != nil {
				t.Fatalf("Validate() = %v, want nil", err)
			}
			if b.Arch != platforms.X86 && b.DTB == "" {
				t.Fatalf("ARM board without a DTB to check against")
			}
			path := b.DTBPath(b.DTB, cacheRoot(t))
			if path == "" {
				return
			}
			testenv.RequireFile(t, path, "run scripts/testdata-boards.sh or make testdata")
			f, _, err := hostdt.ReadFile(path)
			if err != nil {
				t.Fatalf("ReadFile(%s) = %v", path, err)
			}
			m, err := hostdt.Match(f, all.Boards())
			if err != nil || m != b {
				t.Fatalf("Match(%s) = %v, %v; want %s", filepath.Base(path), name(m), err, b.Name)
			}
			for _, fd := range hostdt.Check(b, f) {
				if !fd.OK {
					t.Errorf("Check: %v", fd)
				}
			}
			if got, want := f.GIC.HasVirt(), !b.GuestOnly && !b.GIC.MaintenanceNotInDTB; got != want {
				t.Errorf("GIC.HasVirt() = %v, want %v (GuestOnly %v)", got, want, b.GuestOnly)
			}
		})
	}
}

func name(b *platforms.Board) string {
	if b == nil {
		return "<nil>"
	}
	return b.Name
}

func TestLookup(t *testing.T) {
	for _, n := range all.Names() {
		b, err := all.Lookup(n)
		if err != nil || b.Name != n {
			t.Errorf("Lookup(%q) = %v, %v", n, name(b), err)
		}
	}
	_, err := all.Lookup("no-such-board")
	if !errors.Is(err, platforms.ErrUnknownBoard) || !strings.Contains(err.Error(), "cubieboard2") || !strings.Contains(err.Error(), "board directory") {
		t.Errorf("Lookup(no-such-board) = %v, want ErrUnknownBoard listing the built-in boards and saying a directory works", err)
	}
	if !slices.IsSorted(all.Names()) {
		t.Errorf("Names() not sorted")
	}
}

// TestFind: a board directory, or any argument with a slash, is loaded
// from disk; anything else is a built-in name.
func TestFind(t *testing.T) {
	dir := t.TempDir()
	data, err := fs.ReadFile(boards.FS, "arndale/board.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(dir, "mine")
	os.Mkdir(mine, 0o755)
	os.WriteFile(filepath.Join(mine, "board.yaml"), []byte(strings.Replace(string(data), "name: arndale", "name: my-arndale", 1)), 0o644)
	t.Chdir(dir)
	tests := []struct {
		arg, want, err string
	}{
		{"arndale", "arndale", ""},
		{"mine", "my-arndale", ""},   // an existing directory
		{"./mine", "my-arndale", ""}, // a path
		{mine, "my-arndale", ""},
		{"./arndale", "", "no board.yaml"}, // a path, though a built-in name
		{"nope", "", "unknown board"},
	}
	for _, tt := range tests {
		b, err := all.Find(tt.arg)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Find(%q) = %v, %v; want an error containing %q", tt.arg, name(b), err, tt.err)
		case tt.err == "" && (err != nil || b.Name != tt.want):
			t.Errorf("Find(%q) = %v, %v; want %s", tt.arg, name(b), err, tt.want)
		case tt.err == "" && tt.want != tt.arg && b.Dir == "":
			t.Errorf("Find(%q).Dir = \"\", want the directory", tt.arg)
		}
	}
}
