package images

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned by Flash for a target that is mounted or holds
// the running system's root.
var ErrInUse = errors.New("target disk in use")

// FlashOptions control Flash.
type FlashOptions struct {
	// Force writes even to a mounted disk or the root disk.
	Force    bool
	Progress *Progress
	// MountInfo and Root are for tests: the mount table read
	// (/proc/self/mountinfo) and the root directory whose disk is refused.
	MountInfo, Root string
}

// Flash writes image to target (a block device, or a file) using the
// image's block map when there is one: only mapped blocks are written,
// each range is hashed on the way and compared with the map, and after a
// sync every range is read back from the target and hashed again.
// Cancelling ctx stops the write or the check at the next block: the
// target then holds part of the image (Flash creates no files, so it
// leaves none behind).
func Flash(ctx context.Context, image, target string, opt FlashOptions) (err error) {
	if opt.MountInfo == "" {
		opt.MountInfo = "/proc/self/mountinfo"
	}
	if opt.Root == "" {
		opt.Root = "/"
	}
	img, err := os.Open(image)
	if err != nil {
		return err
	}
	defer img.Close()
	st, err := img.Stat()
	if err != nil {
		return err
	}
	m, err := loadBmap(ctx, image, st.Size())
	if err != nil {
		return err
	}
	if !opt.Force {
		if err := checkNotInUse(target, opt); err != nil {
			return err
		}
	}
	dev, err := os.OpenFile(target, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", target, err)
	}
	defer dev.Close()
	size, err := dev.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if tst, _ := dev.Stat(); tst != nil && tst.Mode().IsRegular() && size < m.ImageSize {
		if err := dev.Truncate(m.ImageSize); err != nil {
			return err
		}
		size = m.ImageSize
	}
	if size < m.ImageSize {
		return fmt.Errorf("%s holds %s, the image needs %s", target, humanBytes(size), humanBytes(m.ImageSize))
	}
	pr := opt.Progress
	defer func() {
		if err != nil {
			pr.Stop()
		}
	}()
	pr.Stage(fmt.Sprintf("writing %s to %s (%s mapped of %s)", filepath.Base(image), target, humanBytes(m.Mapped()*m.BlockSize), humanBytes(m.ImageSize)), m.Mapped()*m.BlockSize)
	for _, r := range m.Ranges {
		off, n := m.rangeBytes(r)
		h := sha256.New()
		src := io.TeeReader(io.NewSectionReader(img, off, n), h)
		if _, err := io.Copy(ctxWriter{ctx, pr.Writer(io.NewOffsetWriter(dev, off))}, src); err != nil {
			return fmt.Errorf("writing blocks %d-%d to %s: %w", r.First, r.Last, target, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
			return fmt.Errorf("%s blocks %d-%d: sha256 %s, the block map says %s: the image or its .bmap is corrupt", image, r.First, r.Last, got, r.SHA256)
		}
	}
	pr.Stage("syncing "+target, 0)
	if err := dev.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", target, err)
	}
	// Drop the cached pages so the read-back comes from the medium.
	unix.Fadvise(int(dev.Fd()), 0, 0, unix.FADV_DONTNEED)
	if err := dev.Close(); err != nil {
		return err
	}
	rd, err := os.Open(target)
	if err != nil {
		return err
	}
	defer rd.Close()
	unix.Fadvise(int(rd.Fd()), 0, 0, unix.FADV_DONTNEED)
	pr.Stage("verifying "+target, m.Mapped()*m.BlockSize)
	for _, r := range m.Ranges {
		off, n := m.rangeBytes(r)
		h := sha256.New()
		if _, err := io.Copy(ctxWriter{ctx, pr.Writer(h)}, io.NewSectionReader(rd, off, n)); err != nil {
			return fmt.Errorf("reading back blocks %d-%d of %s: %w", r.First, r.Last, target, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != r.SHA256 {
			return fmt.Errorf("%s blocks %d-%d read back with sha256 %s, want %s: the medium did not keep what was written", target, r.First, r.Last, got, r.SHA256)
		}
	}
	pr.Done()
	return nil
}

func (m *Bmap) rangeBytes(r BmapRange) (int64, int64) {
	off := r.First * m.BlockSize
	end := (r.Last + 1) * m.BlockSize
	if end > m.ImageSize {
		end = m.ImageSize
	}
	return off, end - off
}

// loadBmap reads the image's block map, or maps the whole image when it
// has none (hashing it, which ctx stops).
func loadBmap(ctx context.Context, image string, size int64) (*Bmap, error) {
	b, err := os.ReadFile(BmapPath(image))
	if err == nil {
		m, err := ParseBmap(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", BmapPath(image), err)
		}
		if m.ImageSize != size {
			return nil, fmt.Errorf("%s describes %d bytes, %s has %d: they are not from the same build", BmapPath(image), m.ImageSize, image, size)
		}
		return m, nil
	}
	if !os.IsNotExist(err) {
		return nil, err
	}
	f, err := os.Open(image)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var all extents
	all.add(0, size)
	return makeBmap(ctx, f, size, all)
}

// checkNotInUse refuses a block device that is mounted (itself or a
// partition of it) or that holds the root file system.
func checkNotInUse(target string, opt FlashOptions) error {
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil // a file: nothing mounts it under us
	}
	disk := diskOf(st.Rdev)
	var root unix.Stat_t
	if err := unix.Stat(opt.Root, &root); err == nil && disk != "" && diskOf(root.Dev) == disk {
		return fmt.Errorf("%w: %s holds the running system's root file system (pass --force to write it anyway)", ErrInUse, target)
	}
	mounts, err := os.ReadFile(opt.MountInfo)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(mounts))
	for sc.Scan() {
		// mountinfo: id parent major:minor root mountpoint ... (proc(5))
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		var maj, min uint32
		if _, err := fmt.Sscanf(f[2], "%d:%d", &maj, &min); err != nil || maj == 0 {
			continue
		}
		if d := diskOf(unix.Mkdev(maj, min)); d != "" && d == disk {
			return fmt.Errorf("%w: %s is mounted on %s (unmount it, or pass --force)", ErrInUse, target, f[4])
		}
	}
	return nil
}

// diskOf names the whole disk a block device number belongs to, from
// sysfs: a partition's directory sits inside its disk's.
func diskOf(dev uint64) string {
	p, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev)))
	if err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(p, "partition")); err == nil {
		return filepath.Base(filepath.Dir(p))
	}
	return filepath.Base(p)
}
