package bsp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// Imported is a board directory written from a vendor DTB.
type Imported struct {
	// Name is the board's name.
	Name string
	// Files maps file names relative to the board directory to content:
	// board.yaml, the DTB it names, copied, and blobs/ files copied from
	// a U-Boot build that is not Debian's.
	Files map[string][]byte
	// Missing lists each fact the DTB could not give, "field: what to
	// do" (a "# TODO:" above the field in board.yaml).
	Missing []string
}

// ErrBadName: the board name cannot name a board.
var ErrBadName = errors.New("bad board name")

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Import reads a vendor DTB (data, named file in messages) and makes a
// board directory of it: a board.yaml with every fact the DTB gives and a
// TODO for each it does not, and a copy of the DTB, which the board.yaml
// names. What an image needs and the DTB cannot tell (the partition
// layout, the bootloader blobs, the load addresses) is left so that
// CheckProfile reports it as a blocker.
func Import(data []byte, file, name string) (*Imported, error) {
	return ImportUBoot(data, file, name, nil)
}

// ImportUBoot is Import with the board's U-Boot build read (ReadUBoot,
// FindUBoot): its default environment gives the load addresses, and
// where Tandem knows its SoC family's layout, the files beside it give
// the bootloader blobs and boot files with their offsets. Blobs of a
// Debian u-boot package are named by package; those of any other build
// are copied into the board directory's blobs/ folder.
func ImportUBoot(data []byte, file, name string, u *UBoot) (*Imported, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w %q: use lower-case letters, digits and dashes, starting with a letter", ErrBadName, name)
	}
	t, err := dtb.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", file, err)
	}
	f, err := hostdt.Read(t)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", file, err)
	}
	if u != nil && len(u.Compatible) > 0 && len(f.Compatible) > 0 && u.Compatible[0] != f.Compatible[0] {
		return nil, fmt.Errorf("importing %s: U-Boot %s was built for %q, the DTB is %q's: give the board's own U-Boot", file, u.File, u.Compatible[0], f.Compatible[0])
	}
	dtbName := filepath.Base(file)
	files := map[string][]byte{dtbName: data}
	src, missing, err := boardYAML(name, dtbName, t, f, u, files)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", file, err)
	}
	if _, err := platforms.Decode(platforms.BoardFile, src); err != nil {
		return nil, fmt.Errorf("the board.yaml written from %s does not decode (a bug): %w\n%s", file, err, src)
	}
	files[platforms.BoardFile] = src
	return &Imported{Name: name, Files: files, Missing: missing}, nil
}

// Write puts the board directory's files under dir, which must hold none
// of them already. They are written into a temporary directory beside dir and
// moved into place only when all are complete, and only while ctx is
// live: on an error or a cancel, dir is left as it was (and not created).
func (g *Imported) Write(ctx context.Context, dir string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("writing board directory %s: %w", dir, err)
		}
	}()
	names := make([]string, 0, len(g.Files))
	for name := range g.Files {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already exists: remove it, or pass another -o", filepath.Join(dir, name))
		}
		names = append(names, name)
	}
	slices.Sort(names)
	dir = filepath.Clean(dir)
	made, err := mkdirs(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeDirs(made)
		}
	}()
	stage, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(stage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, g.Files[name], 0o644); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		// A new directory: one rename puts the whole board in place.
		if err := os.Chmod(stage, 0o755); err != nil {
			return err
		}
		return os.Rename(stage, dir)
	}
	// An existing directory: each file is renamed in; a failure takes
	// back those already moved.
	var moved []string
	defer func() {
		if err != nil {
			for _, p := range moved {
				os.Remove(p)
			}
		}
	}()
	for _, name := range names {
		p := filepath.Join(dir, name)
		sub, err := mkdirs(filepath.Dir(p))
		made = append(made, sub...)
		if err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(stage, name), p); err != nil {
			return err
		}
		moved = append(moved, p)
	}
	return nil
}

// mkdirs is os.MkdirAll that returns the directories it created,
// outermost first.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	slices.Reverse(missing)
	for i, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return missing[:i], err
		}
	}
	return missing, nil
}

// removeDirs removes the directories mkdirs created, innermost first,
// each only if it is empty.
func removeDirs(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}
