package initramfs

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

func readArchive(t *testing.T, b []byte) []cpio.Record {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(b)))
	if err != nil {
		t.Fatalf("reading back the archive: %v", err)
	}
	return recs
}

func content(t *testing.T, r cpio.Record) string {
	t.Helper()
	if r.ReaderAt == nil {
		return ""
	}
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatalf("reading %s: %v", r.Name, err)
	}
	return string(b)
}

func TestWriteTo(t *testing.T) {
	host := filepath.Join(t.TempDir(), "host.txt")
	if err := os.WriteFile(host, []byte("from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	zero := uint32(0)
	entries := append([]Entry{
		Bytes("/etc/motd", []byte("hi\n"), 0),
		File("/usr/share/host.txt", host, 0o640),
		Symlink("/bin/sh", "busybox"),
		Dir("/proc"),
		Bytes("/init", []byte("#!/bin/sh\n"), 0o755),
	}, Console()...)
	var buf bytes.Buffer
	if err := WriteTo(&buf, entries, Options{MTime: &zero}); err != nil {
		t.Fatalf("WriteTo() = %v", err)
	}
	recs := readArchive(t, buf.Bytes())

	type want struct {
		name    string
		mode    uint64
		content string
		rdev    [2]uint64
	}
	wants := []want{
		{"bin", cpio.S_IFDIR | 0o755, "", [2]uint64{}},
		{"bin/sh", cpio.S_IFLNK | 0o777, "busybox", [2]uint64{}},
		{"dev", cpio.S_IFDIR | 0o755, "", [2]uint64{}},
		{"dev/console", cpio.S_IFCHR | 0o600, "", [2]uint64{5, 1}},
		{"dev/null", cpio.S_IFCHR | 0o600, "", [2]uint64{1, 3}},
		{"etc", cpio.S_IFDIR | 0o755, "", [2]uint64{}},
		{"etc/motd", cpio.S_IFREG | 0o644, "hi\n", [2]uint64{}},
		{"init", cpio.S_IFREG | 0o755, "#!/bin/sh\n", [2]uint64{}},
		{"proc", cpio.S_IFDIR | 0o755, "", [2]uint64{}},
		{"usr", cpio.S_IFDIR | 0o755, "", [2]uint64{}},
		{"usr/share", cpio.S_IFDIR | 0o755, "", [2]uint64{}},
		{"usr/share/host.txt", cpio.S_IFREG | 0o640, "from the host\n", [2]uint64{}},
	}
	if len(recs) != len(wants) {
		var names []string
		for _, r := range recs {
			names = append(names, r.Name)
		}
		t.Fatalf("archive has %d records %q, want %d", len(recs), names, len(wants))
	}
	for i, w := range wants {
		r := recs[i]
		if r.Name != w.name || r.Mode != w.mode || content(t, r) != w.content || r.Rmajor != w.rdev[0] || r.Rminor != w.rdev[1] {
			t.Errorf("record %d = %s mode %o %q rdev %d:%d, want %s mode %o %q rdev %d:%d",
				i, r.Name, r.Mode, content(t, r), r.Rmajor, r.Rminor, w.name, w.mode, w.content, w.rdev[0], w.rdev[1])
		}
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("record %s: mtime %d uid %d gid %d, want all 0", r.Name, r.MTime, r.UID, r.GID)
		}
	}
}

// TestGNUCpioReadsIt uses GNU cpio as an independent reader of the format.
func TestGNUCpioReadsIt(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skipf("GNU cpio not installed (apt-get install cpio): %v", err)
	}
	var buf bytes.Buffer
	if err := WriteTo(&buf, []Entry{Bytes("/a/b/c", []byte("abc"), 0), Symlink("/l", "a/b/c")}, Options{}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	if got, want := string(out), "a\na/b\na/b/c\nl\n"; got != want {
		t.Errorf("cpio -t = %q, want %q", got, want)
	}
}

func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	entries := []Entry{
		GoProgram("/bin/hello", "./testdata/hello", "amd64"),
		Bytes("/etc/x", []byte("x"), 0),
	}
	var files [2][]byte
	for i := range files {
		f := filepath.Join(dir, "img"+string(rune('a'+i)))
		// Reverse the order the second time: it must not matter.
		if i == 1 {
			entries[0], entries[1] = entries[1], entries[0]
		}
		if err := Write(f, entries, Options{Gzip: true}); err != nil {
			t.Fatalf("Write() = %v", err)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = b
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatalf("two builds differ (%d and %d bytes)", len(files[0]), len(files[1]))
	}
	zr, err := gzip.NewReader(bytes.NewReader(files[0]))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	if zr.ModTime.Unix() != 1700000000 || zr.Name != "" {
		t.Errorf("gzip header: time %d, name %q; want SOURCE_DATE_EPOCH 1700000000 and none", zr.ModTime.Unix(), zr.Name)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var bin cpio.Record
	for _, r := range readArchive(t, raw) {
		if r.MTime != 1700000000 {
			t.Errorf("%s mtime = %d, want SOURCE_DATE_EPOCH 1700000000", r.Name, r.MTime)
		}
		if r.Name == "bin/hello" {
			bin = r
		}
	}
	if bin.Mode != cpio.S_IFREG|0o755 {
		t.Fatalf("bin/hello mode = %o, want %o", bin.Mode, cpio.S_IFREG|0o755)
	}
	ef, err := elf.NewFile(io.NewSectionReader(bin.ReaderAt, 0, int64(bin.FileSize)))
	if err != nil {
		t.Fatalf("bin/hello is not ELF: %v", err)
	}
	if ef.Machine != elf.EM_X86_64 {
		t.Errorf("bin/hello machine = %v, want EM_X86_64", ef.Machine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("bin/hello has an interpreter: want a static binary")
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %q", left)
	}
}

func TestWriteToErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries []Entry
		epoch   string
		want    string
	}{
		{"duplicate", []Entry{Bytes("/a", nil, 0), Bytes("a", nil, 0)}, "", "given twice"},
		{"file as parent", []Entry{Bytes("/a", nil, 0), Bytes("/a/b", nil, 0)}, "", "not a directory"},
		{"root", []Entry{Dir("/")}, "", "root directory"},
		{"missing source", []Entry{File("/a", "/nonexistent/file", 0)}, "", "no such file"},
		{"directory source", []Entry{File("/a", "/", 0)}, "", "not a regular file"},
		{"symlink without target", []Entry{Symlink("/a", "")}, "", "no target"},
		{"bad epoch", []Entry{Bytes("/a", nil, 0)}, "yesterday", "SOURCE_DATE_EPOCH"},
		{"bad go package", []Entry{GoProgram("/a", "./testdata/nonexistent", "")}, "", "go build"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tt.epoch)
			err := WriteTo(io.Discard, tt.entries, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WriteTo() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
