package all

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tandem-hv/tandem/platforms/boards"
)

// TestLoadEmbedded: every directory of platforms/boards is one board.
func TestLoadEmbedded(t *testing.T) {
	dirs, err := fs.ReadDir(boards.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) != len(Boards()) || len(Boards()) < 11 {
		t.Errorf("platforms/boards has %d directories, Boards %d boards; want one each, at least the 11 of today", len(dirs), len(Boards()))
	}
}

// TestLoadBroken: a built-in board file that does not parse is named,
// with its line, in the source tree.
func TestLoadBroken(t *testing.T) {
	good, err := fs.ReadFile(boards.FS, "cubieboard2/board.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"unknown field", fstest.MapFS{"x/board.yaml": {Data: []byte("name: x\nnmae: y\n")}}, `platforms/boards/x/board.yaml:2: unknown field "nmae"`},
		{"invalid", fstest.MapFS{"x/board.yaml": {Data: []byte("name: x\narch: mips\n")}}, `platforms/boards/x/board.yaml:2: arch: architecture "mips"`},
		{"named after another directory", fstest.MapFS{"a20/board.yaml": {Data: good}}, `platforms/boards/a20/board.yaml names the board "cubieboard2"`},
		{"no board.yaml", fstest.MapFS{"x/README": {Data: []byte("hi")}}, "x/board.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(tt.fsys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("load() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
