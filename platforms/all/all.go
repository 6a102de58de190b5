// Package all lists Tandem's built-in board profiles, the board.yaml files
// of platforms/boards embedded into the binary, and finds the board a
// command names: a built-in one by its name, or a board directory.
package all

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/boards"
)

// Boards returns every built-in profile, in the order of their names. A
// new built-in board is a new directory under platforms/boards. They are
// parsed on first use, not at start-up: a VMM that never asks keeps
// neither the time nor the heap (about 600 KB).
var Boards = sync.OnceValue(mustLoad)

// mustLoad parses the embedded board files. One that does not parse is a
// defect of this build of Tandem, not of its input: it panics, naming the
// file and line (and platforms/all's tests fail the same way).
func mustLoad() []*platforms.Board {
	bs, err := load(boards.FS)
	if err != nil {
		panic(fmt.Sprintf("built-in board: %v", err))
	}
	return bs
}

// load parses fsys's NAME/board.yaml files, each named in errors by its
// path in the source tree (platforms/boards/NAME/board.yaml).
func load(fsys fs.FS) ([]*platforms.Board, error) {
	dirs, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	var bs []*platforms.Board
	for _, d := range dirs {
		file := path.Join(d.Name(), platforms.BoardFile)
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			return nil, err
		}
		b, err := platforms.Parse(path.Join("platforms/boards", file), data)
		if err != nil {
			return nil, err
		}
		if b.Name != d.Name() {
			return nil, fmt.Errorf("platforms/boards/%s names the board %q: a built-in board's directory is its name", file, b.Name)
		}
		bs = append(bs, b)
	}
	return bs, nil
}

// Find returns the board arg names: a board directory (see IsPath), read
// and checked by platforms.Load, else the built-in board of that name.
func Find(arg string) (*platforms.Board, error) {
	if IsPath(arg) {
		return platforms.Load(arg)
	}
	return Lookup(arg)
}

// IsPath reports whether arg names a board directory rather than a
// built-in board: it is an existing directory, or has a "/" in it.
func IsPath(arg string) bool {
	if strings.ContainsRune(arg, '/') || strings.ContainsRune(arg, os.PathSeparator) {
		return true
	}
	st, err := os.Stat(arg)
	return err == nil && st.IsDir()
}

// Lookup returns the built-in board with the given name.
func Lookup(name string) (*platforms.Board, error) {
	for _, b := range Boards() {
		if b.Name == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w %q: the built-in boards are %s; a board directory (one holding %s, as `tandem bsp import` writes) works too: give its path, as ./%s",
		platforms.ErrUnknownBoard, name, strings.Join(Names(), ", "), platforms.BoardFile, name)
}

// Names returns the built-in boards' names, sorted.
func Names() []string {
	n := make([]string, len(Boards()))
	for i, b := range Boards() {
		n[i] = b.Name
	}
	sort.Strings(n)
	return n
}
