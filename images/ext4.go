package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// DataLabel is the data partition's file system label: the host's init
// mounts the partition by it (see images/hostinit).
const DataLabel = "tandem-data"

// DataFile is a file of the data partition.
type DataFile struct {
	// Path inside the partition, relative ("system.yaml", "guests/vmlinuz").
	Path string
	// Source is the host file, or "" for Data.
	Source string
	Data   []byte
	Mode   os.FileMode // 0: 0644
}

// ext4Params are the knobs that make mke2fs's output a function of its
// input: the UUID and the directory hash seed are random otherwise, the
// times are the clock's.
type ext4Params struct {
	Size  int64
	Label string
	UUID  string
	Epoch int64
}

// makeExt4 writes an ext4 file system holding files into the file img
// (created, Size bytes) with mke2fs -d, then sets every inode's owner and
// times with debugfs: mke2fs copies ctime and atime from the staging
// files, which the builder cannot choose. E2FSPROGS_FAKE_TIME pins the
// superblock's times (e2fsprogs 1.47.0 does not read SOURCE_DATE_EPOCH).
// Cancelling ctx kills mke2fs or debugfs; the caller removes img and
// stage.
func makeExt4(ctx context.Context, img, stage string, files []DataFile, p ext4Params) error {
	mke2fs, err := exec.LookPath("mke2fs")
	if err != nil {
		return fmt.Errorf("mke2fs not found: install Debian's e2fsprogs")
	}
	debugfs, err := exec.LookPath("debugfs")
	if err != nil {
		return fmt.Errorf("debugfs not found: install Debian's e2fsprogs")
	}
	paths, err := stageFiles(ctx, stage, files)
	if err != nil {
		return err
	}
	f, err := os.Create(img)
	if err != nil {
		return err
	}
	if err := f.Truncate(p.Size); err != nil {
		f.Close()
		return err
	}
	f.Close()
	epoch := strconv.FormatInt(p.Epoch, 10)
	env := append(os.Environ(), "E2FSPROGS_FAKE_TIME="+epoch, "SOURCE_DATE_EPOCH="+epoch, "MKE2FS_CONFIG=/dev/null")
	// The inode tables are left for the kernel to zero (lazy_itable_init,
	// the default): the block groups say which inodes are unused, so the
	// partition is safe on media that held other data. The journal is
	// written out in full for the same reason.
	args := []string{"-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256",
		"-L", p.Label, "-U", p.UUID,
		"-E", "root_owner=0:0,hash_seed=" + p.UUID + ",lazy_journal_init=0,nodiscard",
		"-d", stage, img}
	cmd := exec.CommandContext(ctx, mke2fs, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mke2fs %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	// debugfs takes seconds as @SECONDS: a bare number it reads as
	// YYYYMMDDhhmm[ss] first, and that can succeed (1704067200 became a
	// time in 2248).
	at := "@" + epoch
	var script bytes.Buffer
	for _, pth := range append([]string{"/", "/lost+found"}, paths...) {
		for _, field := range []string{"uid 0", "gid 0", "atime " + at, "ctime " + at, "mtime " + at, "crtime " + at} {
			fmt.Fprintf(&script, "sif %q %s\n", pth, field)
		}
	}
	cmd = exec.CommandContext(ctx, debugfs, "-w", "-f", "-", img)
	cmd.Env = env
	cmd.Stdin = &script
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("debugfs (setting owners and times): %w\n%s", err, out)
	}
	// debugfs reports a bad command on stderr but exits 0.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "sif:") || strings.Contains(l, "not found") {
			return fmt.Errorf("debugfs (setting owners and times): %s", l)
		}
	}
	return nil
}

// stageFiles copies the files into dir with fixed modes and returns their
// paths in the file system ("/a", "/a/b"), directories included. It stops
// when ctx is done.
func stageFiles(ctx context.Context, dir string, files []DataFile) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var paths []string
	for _, f := range files {
		rel := filepath.ToSlash(filepath.Clean(f.Path))
		if rel == "." || strings.HasPrefix(rel, "../") || rel == ".." || filepath.IsAbs(rel) {
			return nil, fmt.Errorf("data file %q: want a path inside the data partition", f.Path)
		}
		if seen["/"+rel] {
			return nil, fmt.Errorf("data file %s given twice", rel)
		}
		for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
			if !seen["/"+d] {
				seen["/"+d] = true
				paths = append(paths, "/"+d)
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					return nil, err
				}
				os.Chmod(filepath.Join(dir, d), 0o755)
			}
		}
		seen["/"+rel] = true
		paths = append(paths, "/"+rel)
		dst := filepath.Join(dir, rel)
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := copyFile(ctx, dst, f, mode); err != nil {
			return nil, err
		}
	}
	sort.Strings(paths)
	return paths, nil
}

// copyFile writes f to dst with mode, checking ctx between chunks of
// 64 MiB: a guest's disk image can take a while, and chunks keep the
// kernel's in-place copy (copy_file_range).
func copyFile(ctx context.Context, dst string, f DataFile, mode os.FileMode) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer out.Close()
	if f.Source == "" {
		_, err = out.Write(f.Data)
	} else {
		var in *os.File
		in, err = os.Open(f.Source)
		if err != nil {
			return fmt.Errorf("data file %s: %w", f.Path, err)
		}
		defer in.Close()
		for {
			if err = ctx.Err(); err != nil {
				break
			}
			// CopyN says io.EOF when the file ends within the chunk.
			if _, err = io.CopyN(out, in, 64<<20); err != nil {
				if err == io.EOF {
					err = nil
				}
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("staging %s: %w", f.Path, err)
	}
	if err := out.Chmod(mode); err != nil {
		return err
	}
	return out.Close()
}

// dataExtents returns the ranges of a file that hold data (SEEK_DATA /
// SEEK_HOLE): what mke2fs wrote.
func dataExtents(f *os.File) (extents, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var ex extents
	for off := int64(0); off < st.Size(); {
		d, err := f.Seek(off, unix.SEEK_DATA)
		if err != nil {
			// ENXIO: no data past off.
			if errors.Is(err, unix.ENXIO) {
				break
			}
			return nil, fmt.Errorf("SEEK_DATA: %w", err)
		}
		h, err := f.Seek(d, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("SEEK_HOLE: %w", err)
		}
		ex.add(d, h-d)
		off = h
	}
	return ex, nil
}
