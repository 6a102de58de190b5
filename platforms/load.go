package platforms

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/strictyaml"
)

// BoardFile is the profile's file in a board directory.
const BoardFile = "board.yaml"

// BlobsDir is the folder of a board directory that holds the blobs and
// boot files the user supplies (Blob.Package "").
const BlobsDir = "blobs"

// Load reads the board directory dir: its board.yaml, decoded strictly
// and validated. Every error names the file and, where it can, the line.
func Load(dir string) (*Board, error) {
	b, err := Read(dir)
	if err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// Read reads the board directory dir like Load, but returns a profile
// that breaks invariants rather than an error: the porting kit's check
// reports each of its Problems.
func Read(dir string) (*Board, error) {
	file := filepath.Join(dir, BoardFile)
	data, err := os.ReadFile(file)
	if err != nil {
		if st, serr := os.Stat(dir); serr == nil && !st.IsDir() {
			return nil, fmt.Errorf("board %s: not a directory: a board is a directory holding %s", dir, BoardFile)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("board directory %s: no %s in it (`tandem bsp import VENDOR.dtb -o %s` writes one)", dir, BoardFile, dir)
		}
		return nil, fmt.Errorf("reading board: %w", err)
	}
	b, err := Decode(file, data)
	if err != nil {
		return nil, err
	}
	b.Dir = dir
	return b, nil
}

// Parse decodes a board.yaml (data, named file in errors) and validates
// it: what Load does for a file that is not in a directory of its own
// (the built-in boards, embedded into Tandem).
func Parse(file string, data []byte) (*Board, error) {
	b, err := Decode(file, data)
	if err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// Decode decodes a board.yaml (data, named file in errors) strictly: an
// unknown field or a value of the wrong type is an error at its line. It
// does not validate the profile.
func Decode(file string, data []byte) (*Board, error) {
	b := &Board{}
	if err := strictyaml.Decode(file, data, b); err != nil {
		return nil, err
	}
	if b.Image.DTB == "" {
		b.Image.DTB = b.DTB
	}
	b.File, b.src = file, data
	return b, nil
}

// Source returns the board.yaml the profile was decoded from, nil for a
// profile built in Go.
func (b *Board) Source() []byte { return b.src }

// lineOf returns the line of field in a board.yaml, or of the nearest
// enclosing field the file has, or 0.
func lineOf(src []byte, field string) int {
	return strictyaml.Nearest(field, func(f string) int { return strictyaml.Line(src, f) })
}

// DTBPath returns the file holding the device tree name (the board's DTB,
// or its Image.DTB): the board directory's own copy when it has one, else
// where the project's test data puts Debian's (scripts/testdata-boards.sh)
// under cacheBoards (build/cache/boards); "" for no name.
func (b *Board) DTBPath(name, cacheBoards string) string {
	if name == "" {
		return ""
	}
	if b.Dir != "" {
		p := filepath.Join(b.Dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	var dir string
	switch {
	case strings.HasPrefix(name, "qemu/"):
		return filepath.Join(cacheBoards, name)
	case b.Arch == ARM64:
		dir = filepath.Join(cacheBoards, "arm64")
	default:
		dir = filepath.Join(cacheBoards, "armhf")
	}
	// A profile may name its DTB without Debian's vendor folder
	// ("r8a774a1-hihope-rzg2m.dtb", as `tandem bsp import` writes it).
	if p, err := FindDTB(dir, name); err == nil {
		return p
	}
	return filepath.Join(dir, name)
}

// Blobs returns the board directory's blobs/ folder, or "" for a
// built-in board.
func (b *Board) Blobs() string {
	if b.Dir == "" {
		return ""
	}
	return filepath.Join(b.Dir, BlobsDir)
}

// ErrDTBNotFound: no DTB of that name in the directory or its vendor
// folders.
var ErrDTBNotFound = errors.New("DTB not found")

// FindDTB finds the DTB name under dir, a directory of DTBs as Debian's
// kernel packages ship them (usr/lib/linux-image-*/): arm64 ones in a
// folder per vendor ("rockchip/rk3399-rock-pi-4b.dtb"), armhf ones flat
// (or flattened, as scripts/testdata-boards.sh does). It takes name as a
// path under dir first; then, for a name without a folder, the one
// vendor folder that holds it; then, for a name with a folder, its base
// name in dir itself. A base name that two vendors ship is an error naming
// both.
func FindDTB(dir, name string) (string, error) {
	name = filepath.Clean(filepath.FromSlash(name))
	if p := filepath.Join(dir, name); isFile(p) {
		return p, nil
	}
	base := filepath.Base(name)
	var found []string
	if base == name {
		matches, _ := filepath.Glob(filepath.Join(dir, "*", base))
		for _, p := range matches {
			if isFile(p) {
				found = append(found, p)
			}
		}
	} else if p := filepath.Join(dir, base); isFile(p) {
		found = []string{p}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: no %s in %s or its vendor folders", ErrDTBNotFound, name, dir)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: %s is in several vendor folders of %s (%s): name the folder too", ErrDTBNotFound, name, dir, strings.Join(found, ", "))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
