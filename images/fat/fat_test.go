package fat

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/testenv"
)

var epoch = time.Unix(1700000000, 0)

func writeImage(t *testing.T, files []File, opt Options) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "fat.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(opt.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(f, 0, files, opt); err != nil {
		t.Fatalf("Write() = %v, want nil", err)
	}
	return img
}

func TestGeometry(t *testing.T) {
	for _, tt := range []struct {
		size       int64
		perCluster uint32
		wantErr    error
	}{
		{size: 1 << 20, wantErr: ErrTooSmall},
		{size: 4 << 20, perCluster: 1},
		{size: 32 << 20, perCluster: 1},
		{size: 33 << 20, perCluster: 2},
		{size: 64 << 20, perCluster: 2},
		// A FAT of 239 sectors leaves 61183 clusters, one more than it
		// maps; one of 240, 61182, which it maps with room to spare.
		{size: 60 << 20, perCluster: 2},
		{size: 1 << 30, perCluster: 32}, {size: 2<<30 - 1<<20, perCluster: 64},
		{size: 4 << 30, wantErr: ErrTooLarge},
	} {
		g, err := geometryFor(tt.size)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("geometryFor(%d) = %v, want %v", tt.size, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("geometryFor(%d) = %v", tt.size, err)
			continue
		}
		if g.perCluster != tt.perCluster {
			t.Errorf("geometryFor(%d) sectors per cluster = %d, want %d", tt.size, g.perCluster, tt.perCluster)
		}
		if g.clusters < minClusters16 || g.clusters > maxClusters16 {
			t.Errorf("geometryFor(%d) clusters = %d, want FAT16 range", tt.size, g.clusters)
		}
		if (g.clusters+2)*2 > g.fatSectors*SectorSize {
			t.Errorf("geometryFor(%d): FAT of %d sectors cannot map %d clusters", tt.size, g.fatSectors, g.clusters)
		}
		// A reader (fsck.fat) counts the clusters from the boot sector.
		if n := (g.total - g.dataStart()) / g.perCluster; n != g.clusters {
			t.Errorf("geometryFor(%d) = %d clusters, but the data area after a FAT of %d sectors holds %d", tt.size, g.clusters, g.fatSectors, n)
		}
	}
}

// TestGeometryFATMapsEveryCluster tries every size from 4 MiB to 2 GiB in
// steps of 64 KiB, and 60 MiB to the sector: the cluster count is the one
// a reader derives from the boot sector (fsck.vfat: the sectors after the
// FATs and the root directory, in clusters), and the FAT has an entry for
// each. A search for the FAT's size that gave up after eight rounds
// between two sizes kept the count of one with the FAT of the other, a
// sector short: fsck.vfat refused the 60 MiB boot partition of a ported
// board's image ("61183 clusters but only space for 61182 FAT entries").
func TestGeometryFATMapsEveryCluster(t *testing.T) {
	check := func(size int64) {
		g, err := geometryFor(size)
		if err != nil {
			t.Fatalf("geometryFor(%d) = %v", size, err)
		}
		meta := reservedSectors + numFATs*g.fatSectors + rootEntries*dirEntrySize/SectorSize
		if read := (g.total - meta) / g.perCluster; read != g.clusters {
			t.Fatalf("geometryFor(%d): %d clusters, but the boot sector says %d", size, g.clusters, read)
		}
		if (g.clusters+2)*2 > g.fatSectors*SectorSize {
			t.Fatalf("geometryFor(%d): FAT of %d sectors cannot map %d clusters", size, g.fatSectors, g.clusters)
		}
	}
	for size := int64(4 << 20); size < 2<<30-1<<20; size += 64 << 10 {
		check(size)
	}
	for size := int64(60 << 20); size < 61<<20; size += SectorSize {
		check(size)
	}
}

func TestShortName(t *testing.T) {
	used := map[[11]byte]bool{}
	for _, tt := range []struct {
		name      string
		want      string
		wantExact bool
	}{
		{"BOOT.SCR", "BOOT    SCR", true},
		{"boot.scr", "BOOT~1  SCR", false},
		{"sun7i-a20-cubieboard2.dtb", "SUN7I-~1DTB", false},
		{"sun7i-a20-bananapi.dtb", "SUN7I-~2DTB", false},
		{"MLO", "MLO        ", true},
		{"u-boot.img", "U-BOOT~1IMG", false},
		{"initrd.img", "INITRD~1IMG", false},
	} {
		sn, exact := shortName(tt.name, used)
		used[sn] = true
		if string(sn[:]) != tt.want || exact != tt.wantExact {
			t.Errorf("shortName(%q) = %q, %v, want %q, %v", tt.name, sn, exact, tt.want, tt.wantExact)
		}
	}
}

// TestFsck writes file systems and has dosfstools and mtools, the Debian
// oracles, check and read them.
func TestFsck(t *testing.T) {
	fsck := testenv.RequireCommand(t, "fsck.vfat", "dosfstools")
	mtype := testenv.RequireCommand(t, "mtype", "mtools")
	big := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16+7)
	src := filepath.Join(t.TempDir(), "kernel")
	if err := os.WriteFile(src, big, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		size  int64
		files []File
	}{
		{"empty", 8 << 20, nil},
		{"uboot", 48 << 20, []File{
			{Path: "vmlinuz", Source: src},
			{Path: "boot.scr", Data: []byte("script")},
			{Path: "sun7i-a20-cubieboard2.dtb", Data: []byte("dtb")},
			{Path: "empty", Data: nil},
			{Path: "MLO", Data: []byte("mlo"), First: true},
		}},
		{"esp", 64 << 20, []File{
			{Path: "EFI/BOOT/BOOTAA64.EFI", Source: src},
			{Path: "EFI/tandem/initrd.img", Data: []byte("initrd")},
			{Path: "startup.nsh", Data: []byte("echo hi\r\n")},
		}},
		{"many", 16 << 20, manyFiles(300)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := writeImage(t, tt.files, Options{Size: tt.size, Label: "TANDEM-BOOT", Serial: 0x12345678, Time: epoch})
			out, err := exec.Command(fsck, "-n", "-v", img).CombinedOutput()
			if err != nil || bytes.Contains(out, []byte("differ")) {
				t.Fatalf("fsck.vfat -n = %v, want clean:\n%s", err, out)
			}
			for _, f := range tt.files {
				want := f.Data
				if f.Source != "" {
					want = big
				}
				got, err := exec.Command(mtype, "-i", img, "::"+f.Path).Output()
				if err != nil {
					t.Fatalf("mtype %s = %v", f.Path, err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("mtype %s: %d bytes, want %d", f.Path, len(got), len(want))
				}
			}
		})
	}
}

func manyFiles(n int) []File {
	var fs []File
	for i := 0; i < n; i++ {
		fs = append(fs, File{Path: "dir/a-long-file-name-" + strings.Repeat("x", i%20) + "-" + string(rune('a'+i%26)) + strconv.Itoa(i) + ".txt", Data: []byte(strconv.Itoa(i))})
	}
	return fs
}

func TestReproducible(t *testing.T) {
	files := []File{{Path: "a/b/c.txt", Data: []byte("c")}, {Path: "vmlinuz", Data: []byte("k")}}
	opt := Options{Size: 8 << 20, Label: "X", Serial: 1, Time: epoch}
	a, err := os.ReadFile(writeImage(t, files, opt))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeImage(t, files, opt))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("two builds differ")
	}
}

func TestErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		files []File
		size  int64
		want  error
	}{
		{"too big", []File{{Path: "big", Data: make([]byte, 9<<20)}}, 8 << 20, ErrTooSmall},
		{"twice", []File{{Path: "A", Data: nil}, {Path: "a", Data: nil}}, 8 << 20, ErrName},
		{"bad char", []File{{Path: "a:b", Data: nil}}, 8 << 20, ErrName},
		{"unaligned", nil, 8<<20 + 1, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf writerAt
			_, err := Write(&buf, 0, tt.files, Options{Size: tt.size})
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("Write() = %v, want %v", err, tt.want)
			}
			if buf.n != 0 {
				t.Errorf("Write() wrote %d times, want nothing written on error", buf.n)
			}
		})
	}
}

type writerAt struct{ n int }

func (w *writerAt) WriteAt(p []byte, off int64) (int, error) { w.n++; return len(p), nil }

func TestReader(t *testing.T) {
	files := []File{
		{Path: "EFI/tandem/initrd.img", Data: bytes.Repeat([]byte("i"), 5000)},
		{Path: "boot.scr", Data: []byte("script")},
		{Path: "sun7i-a20-cubieboard2.dtb", Data: []byte("dtb")},
	}
	img := writeImage(t, files, Options{Size: 8 << 20, Label: "L", Time: epoch})
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := Open(f, 0)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	for _, want := range files {
		got, err := r.ReadFile(want.Path)
		if err != nil || !bytes.Equal(got, want.Data) {
			t.Errorf("ReadFile(%q) = %d bytes, %v; want %d bytes", want.Path, len(got), err, len(want.Data))
		}
	}
	if _, err := r.ReadFile("nope"); err == nil {
		t.Errorf("ReadFile(nope) = nil error, want one")
	}
}

func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	img := filepath.Join(dir, "fat.img")
	fh, _ := os.Create(img)
	fh.Truncate(4 << 20)
	Write(fh, 0, []File{{Path: "a/b.txt", Data: []byte("b")}, {Path: "long-name.dtb", Data: []byte("d")}}, Options{Size: 4 << 20, Time: epoch})
	fh.Close()
	seed, _ := os.ReadFile(img)
	f.Add(seed[:64<<10])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(bytes.NewReader(b), 0)
		if err != nil {
			return
		}
		ents, _ := r.ReadDir("/")
		for _, e := range ents {
			r.ReadFile(e.Name)
		}
		r.ReadFile("a/b.txt")
	})
}
