// Package initramfs writes Linux initramfs images: newc cpio archives
// (Documentation/driver-api/early-userspace/buffer-format.rst), optionally
// gzip-compressed, built from a list of entries: host files, literal bytes,
// directories, symlinks, device nodes and Go programs compiled for the
// image's architecture.
//
// Images are reproducible: entries are sorted by path, missing parent
// directories are added, owners are root, and every mtime, and the gzip
// header's, is Options.MTime (else SOURCE_DATE_EPOCH, else 0). Two builds
// of the same entries are byte-identical. The cpio encoding itself is
// u-root's.
package initramfs

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

// Kind says what an Entry puts into the archive.
type Kind int

// Entry kinds.
const (
	KindFile     Kind = iota // a regular file from Source, or Data
	KindDir                  // a directory
	KindSymlink              // a symbolic link to Target
	KindCharDev              // a character device Major:Minor
	KindBlockDev             // a block device Major:Minor
	KindGo                   // a Go program: Source is the package, built for GOARCH
)

// Entry is one file of an initramfs.
type Entry struct {
	// Path is the absolute path inside the image ("/init").
	Path string
	Kind Kind
	// Perm is the permission bits; 0 means 0755 for directories and
	// programs, 0644 for files, 0600 for devices.
	Perm os.FileMode
	// Source is the host file (KindFile) or the Go package (KindGo, as
	// `go build` takes it: an import path or a ./relative directory,
	// resolved in Options.GoDir).
	Source string
	// Data is the content of a KindFile that has no Source.
	Data []byte
	// Target is a symlink's target.
	Target string
	// Major and Minor number a device node.
	Major, Minor uint32
	// GOARCH is the architecture a KindGo program is built for ("amd64",
	// "arm64", "arm"); empty means the host's.
	GOARCH string
}

// Device numbers of the nodes every initramfs wants before devtmpfs is
// mounted (Documentation/admin-guide/devices.txt).
const (
	ttyMajor     = 5
	consoleMinor = 1
	memMajor     = 1
	nullMinor    = 3
)

// File returns an entry copying the host file src to path.
func File(path, src string, perm os.FileMode) Entry {
	return Entry{Path: path, Kind: KindFile, Source: src, Perm: perm}
}

// Bytes returns an entry writing data to path.
func Bytes(path string, data []byte, perm os.FileMode) Entry {
	return Entry{Path: path, Kind: KindFile, Data: data, Perm: perm}
}

// Dir returns a directory entry.
func Dir(path string) Entry { return Entry{Path: path, Kind: KindDir} }

// Symlink returns a symlink entry path -> target.
func Symlink(path, target string) Entry {
	return Entry{Path: path, Kind: KindSymlink, Target: target}
}

// CharDev returns a character device node entry.
func CharDev(path string, major, minor uint32) Entry {
	return Entry{Path: path, Kind: KindCharDev, Major: major, Minor: minor}
}

// GoProgram returns an entry that builds the Go package pkg statically for
// goarch and installs it at path.
func GoProgram(path, pkg, goarch string) Entry {
	return Entry{Path: path, Kind: KindGo, Source: pkg, GOARCH: goarch}
}

// Console returns /dev/console and /dev/null. The kernel opens
// /dev/console as init's stdin, stdout and stderr before devtmpfs can be
// mounted, so it must be in the archive itself.
func Console() []Entry {
	return []Entry{
		CharDev("/dev/console", ttyMajor, consoleMinor),
		CharDev("/dev/null", memMajor, nullMinor),
	}
}

// Options control how an image is written.
type Options struct {
	// Gzip compresses the archive. Every Debian kernel can unpack it, but
	// an emulated CPU unpacks an uncompressed archive much faster.
	Gzip bool
	// MTime is the mtime of every entry and of the gzip header; nil
	// means SOURCE_DATE_EPOCH from the environment, or 0.
	MTime *uint32
	// GoDir is the directory `go build` runs in (it resolves relative
	// packages and picks the module); empty means the current directory.
	GoDir string
	// GoFlags are extra `go build` flags.
	GoFlags []string
}

// Write is WriteContext without a way to stop it.
func Write(file string, entries []Entry, opt Options) error {
	return WriteContext(context.Background(), file, entries, opt)
}

// WriteContext writes the image to file atomically: into a temporary file
// beside it, synced, then renamed over file. Cancelling ctx stops it
// between entries (and interrupts `go build`) and removes the temporary
// file; file is then left as it was.
func WriteContext(ctx context.Context, file string, entries []Entry, opt Options) (err error) {
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".tmp*")
	if err != nil {
		return fmt.Errorf("creating initramfs %s: %w", file, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := writeTo(ctx, tmp, entries, opt); err != nil {
		return fmt.Errorf("writing initramfs %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing initramfs %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing initramfs %s: %w", file, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("initramfs %s: %w", file, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("installing initramfs %s: %w", file, err)
	}
	return nil
}

// WriteTo writes the image to w.
func WriteTo(w io.Writer, entries []Entry, opt Options) error {
	return writeTo(context.Background(), w, entries, opt)
}

func writeTo(ctx context.Context, w io.Writer, entries []Entry, opt Options) error {
	mtime, err := opt.mtime()
	if err != nil {
		return err
	}
	entries, err = normalize(entries)
	if err != nil {
		return err
	}
	// Go programs are built into a scratch directory that lives until
	// the archive is written.
	scratch, err := os.MkdirTemp("", "initramfs-go-")
	if err != nil {
		return fmt.Errorf("creating build directory: %w", err)
	}
	defer os.RemoveAll(scratch)

	out := w
	var zw *gzip.Writer
	if opt.Gzip {
		// The header names no file, and its time is the entries'
		// (none when that is 0): nothing in it varies between builds.
		zw, err = gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return err
		}
		zw.ModTime = time.Unix(int64(mtime), 0)
		out = zw
	}
	cw := cpio.Newc.Writer(out)
	for i, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec, closer, err := record(ctx, e, scratch, opt)
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		rec.MTime = uint64(mtime)
		// Distinct inode numbers with one link each: the kernel would
		// take equal (ino, nlink>1) pairs for hard links.
		rec.Ino = uint64(i + 1)
		rec.NLink = 1
		if e.Kind == KindDir {
			rec.NLink = 2
		}
		err = cw.WriteRecord(rec)
		if closer != nil {
			closer.Close()
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", e.Path, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("writing trailer: %w", err)
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

func (opt Options) mtime() (uint32, error) {
	if opt.MTime != nil {
		return *opt.MTime, nil
	}
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970 that fit in 32 bits (newc's mtime field)", s)
	}
	return uint32(v), nil
}

// normalize cleans paths, rejects duplicates, adds missing parent
// directories and sorts, so parents precede their children and the order
// does not depend on the caller's.
func normalize(in []Entry) ([]Entry, error) {
	byPath := make(map[string]Entry, len(in))
	for _, e := range in {
		p := path.Clean("/" + e.Path)
		if p == "/" {
			return nil, fmt.Errorf("entry %q: the root directory is implicit", e.Path)
		}
		e.Path = p
		if old, ok := byPath[p]; ok && !(old.Kind == KindDir && e.Kind == KindDir) {
			return nil, fmt.Errorf("entry %s given twice", p)
		}
		byPath[p] = e
	}
	for p := range byPath {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if e, ok := byPath[d]; ok {
				if e.Kind != KindDir {
					return nil, fmt.Errorf("entry %s: parent %s is not a directory", p, d)
				}
				continue
			}
			byPath[d] = Dir(d)
		}
	}
	out := make([]Entry, 0, len(byPath))
	for _, e := range byPath {
		out = append(out, e)
	}
	// Sorting by path puts a directory before everything under it: it is
	// a prefix of their paths.
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

func (e Entry) perm(def os.FileMode) uint64 {
	if e.Perm == 0 {
		return uint64(def)
	}
	return uint64(e.Perm.Perm())
}

// record turns an entry into a cpio record. The returned closer, if any,
// is closed after the record is written.
func record(ctx context.Context, e Entry, scratch string, opt Options) (cpio.Record, io.Closer, error) {
	name := strings.TrimPrefix(e.Path, "/")
	switch e.Kind {
	case KindDir:
		return cpio.Directory(name, e.perm(0o755)), nil, nil
	case KindSymlink:
		if e.Target == "" {
			return cpio.Record{}, nil, fmt.Errorf("symlink has no target")
		}
		return cpio.Symlink(name, e.Target), nil, nil
	case KindCharDev, KindBlockDev:
		r := cpio.CharDev(name, e.perm(0o600), uint64(e.Major), uint64(e.Minor))
		if e.Kind == KindBlockDev {
			r.Mode = cpio.S_IFBLK | e.perm(0o600)
		}
		return r, nil, nil
	case KindFile:
		if e.Source == "" {
			return cpio.StaticRecord(e.Data, cpio.Info{Name: name, Mode: cpio.S_IFREG | e.perm(0o644)}), nil, nil
		}
		return hostFile(name, e.Source, e.perm(0o644))
	case KindGo:
		bin, err := buildGo(ctx, e, scratch, opt)
		if err != nil {
			return cpio.Record{}, nil, err
		}
		return hostFile(name, bin, e.perm(0o755))
	}
	return cpio.Record{}, nil, fmt.Errorf("unknown entry kind %d", e.Kind)
}

func hostFile(name, src string, perm uint64) (cpio.Record, io.Closer, error) {
	f, err := os.Open(src)
	if err != nil {
		return cpio.Record{}, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return cpio.Record{}, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return cpio.Record{}, nil, fmt.Errorf("%s is not a regular file", src)
	}
	if fi.Size() > maxFileSize {
		f.Close()
		return cpio.Record{}, nil, fmt.Errorf("%s is %d bytes: newc holds at most %d", src, fi.Size(), int64(maxFileSize))
	}
	return cpio.Record{
		ReaderAt: f,
		Info:     cpio.Info{Name: name, Mode: cpio.S_IFREG | perm, FileSize: uint64(fi.Size())},
	}, f, nil
}

// maxFileSize is the largest file newc can describe: its c_filesize is
// eight hex digits.
const maxFileSize = 1<<32 - 1
