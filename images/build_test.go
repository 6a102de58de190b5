package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
)

const testEpoch = 1700000000

// fixture writes synthetic inputs for board b into dir: kernels and
// initramfs where only the layout matters, blobs of their slots' full
// size (the worst case), and a manifest naming two guest files.
func fixture(t *testing.T, dir string, b *platforms.Board) Config {
	t.Helper()
	write := func(name string, size int, seed byte) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		data := make([]byte, size)
		for i := range data {
			data[i] = seed + byte(i*7) + byte(i>>9)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := Config{
		Board:      b,
		HostKernel: write("host/kernel", 3<<20+123, 1),
		HostInitrd: write("host/initrd", 2<<20+77, 2),
		Blobs:      map[string]string{},
		Epoch:      testEpoch,
	}
	for _, bl := range b.Image.Blobs {
		cfg.Blobs[bl.File] = write("blobs/"+bl.File, int(bl.MaxLen), byte(bl.Offset>>9))
	}
	for _, bf := range b.Image.BootFiles {
		cfg.Blobs[bf.Name] = write("blobs/"+bf.Name, 64<<10+5, 9)
	}
	if b.Image.DTB != "" && !FirmwareDTB(b) {
		// Debian's DTB where make testdata unpacked it, else an empty tree.
		cfg.DTB = b.DTBPath(b.Image.DTB, filepath.Join(cacheDir, "boards"))
		if _, err := os.Stat(cfg.DTB); err != nil {
			empty, _ := dtb.New().Bytes()
			cfg.DTB = filepath.Join(dir, "host", filepath.Base(b.Image.DTB))
			os.MkdirAll(filepath.Dir(cfg.DTB), 0o755)
			os.WriteFile(cfg.DTB, empty, 0o644)
		}
	}
	m := filepath.Join(dir, "sys", "system.yaml")
	write("sys/guests/vmlinuz", 1<<20+3, 4)
	write("sys/guests/control.cpio", 300<<10, 5)
	os.WriteFile(m, []byte("guests: []\n"), 0o644)
	cfg.Manifest = m
	cfg.ManifestFiles = []string{filepath.Join(dir, "sys/guests/vmlinuz"), filepath.Join(dir, "sys/guests/control.cpio")}
	return cfg
}

func hostBoards() []*platforms.Board {
	var bs []*platforms.Board
	for _, b := range all.Boards() {
		if !b.GuestOnly {
			bs = append(bs, b)
		}
	}
	return bs
}

// TestBuildBoards builds an image for every board that can be a host and
// has the Debian tools check it: sfdisk --verify, fsck.vfat -n on the
// boot partition, e2fsck -fn on the data partition, dumpimage -l on the
// boot script; the blobs are compared byte for byte at their offsets and
// a second build must be byte-identical.
func TestBuildBoards(t *testing.T) {
	sfdisk := testenv.RequireCommand(t, "sfdisk", "fdisk")
	fsck := testenv.RequireCommand(t, "fsck.vfat", "dosfstools")
	e2fsck := testenv.RequireCommand(t, "e2fsck", "e2fsprogs")
	dumpimage := testenv.RequireCommand(t, "dumpimage", "u-boot-tools")
	mtype := testenv.RequireCommand(t, "mtype", "mtools")
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	for _, b := range hostBoards() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fixture(t, dir, b)
			img := filepath.Join(dir, "out.img")
			res, err := Build(t.Context(), img, cfg)
			if err != nil {
				t.Fatalf("Build() = %v, want nil", err)
			}
			out, err := exec.Command(sfdisk, "--verify", img).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "No errors detected") || strings.Contains(string(out), "arning") {
				t.Errorf("sfdisk --verify = %v:\n%s", err, out)
			}
			table, parts, err := readTable(img)
			if err != nil || table != b.Image.Table || len(parts) != 2 {
				t.Fatalf("ReadPartitions() = %v, %d partitions, %v; want %v, 2", table, len(parts), err, b.Image.Table)
			}
			if parts[0].Start != int64(b.Image.FirstPartition) && parts[0].Start%mib != 0 {
				t.Errorf("boot partition at %#x, want the board's first partition %#x", parts[0].Start, b.Image.FirstPartition)
			}
			boot := extract(t, img, parts[0], filepath.Join(dir, "boot.fat"))
			if out, err := exec.Command(fsck, "-n", boot).CombinedOutput(); err != nil {
				t.Errorf("fsck.vfat -n = %v:\n%s", err, out)
			}
			for _, bf := range b.Image.BootFiles {
				if !bf.Generated() {
					continue
				}
				got, err := exec.Command(mtype, "-i", boot, "::"+bf.Name).Output()
				if err != nil || string(got) != bf.Content {
					t.Errorf("mtype %s = %q, %v; want the board's content %q", bf.Name, got, err, bf.Content)
				}
			}
			data := extract(t, img, parts[1], filepath.Join(dir, "data.ext4"))
			if out, err := exec.Command(e2fsck, "-fn", data).CombinedOutput(); err != nil {
				t.Errorf("e2fsck -fn = %v:\n%s", err, out)
			}
			for _, bl := range b.Image.Blobs {
				want, _ := os.ReadFile(cfg.Blobs[bl.File])
				got := readAt(t, img, int64(bl.Offset), len(want))
				if !bytes.Equal(got, want) {
					t.Errorf("blob %s at %#x differs from %s", bl.Name, bl.Offset, cfg.Blobs[bl.File])
				}
			}
			if !UEFI(b) {
				scr := filepath.Join(dir, "boot.scr")
				got, err := exec.Command(mtype, "-i", boot, "::"+b.Image.BootScript).Output()
				if err != nil {
					t.Fatalf("mtype %s = %v", b.Image.BootScript, err)
				}
				os.WriteFile(scr, got, 0o644)
				out, err := exec.Command(dumpimage, "-l", scr).CombinedOutput()
				if err != nil || !strings.Contains(string(out), "Script") {
					t.Errorf("dumpimage -l = %v, want a script image:\n%s", err, out)
				}
				addrs := []uint64{b.Image.Load.Kernel, b.Image.Load.Initrd}
				if b.Image.BootEFI {
					// The kernel's EFI stub places the initramfs itself.
					addrs = addrs[:1]
				}
				for _, addr := range addrs {
					if !strings.Contains(res.Script, "0x"+strconv.FormatUint(addr, 16)) {
						t.Errorf("boot script lacks load address %#x:\n%s", addr, res.Script)
					}
				}
			}
			first := sha(t, img)
			firstMap := sha(t, BmapPath(img))
			img2 := filepath.Join(dir, "again.img")
			if _, err := Build(t.Context(), img2, cfg); err != nil {
				t.Fatalf("second Build() = %v", err)
			}
			if got := sha(t, img2); got != first {
				t.Errorf("second build's image sha256 = %s, want %s (not reproducible)", got, first)
			}
			if got := sha(t, BmapPath(img2)); got != firstMap {
				t.Errorf("second build's bmap differs")
			}
		})
	}
}

func readTable(img string) (platforms.PartitionTable, []Partition, error) {
	f, err := os.Open(img)
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	head := make([]byte, 34*512)
	f.ReadAt(head, 0)
	return ReadPartitions(head)
}

func extract(t *testing.T, img string, p Partition, to string) string {
	t.Helper()
	if err := os.WriteFile(to, readAt(t, img, p.Start, int(p.Size)), 0o644); err != nil {
		t.Fatal(err)
	}
	return to
}

func readAt(t *testing.T, file string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatalf("reading %s at %#x: %v", file, off, err)
	}
	return b
}

func sha(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestBuildErrors: each bad input fails with an error naming the file and
// the fix, and leaves no output file behind.
func TestBuildErrors(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	a20, err := all.Lookup("cubieboard2")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		mutate func(c *Config, dir string)
		want   error
		words  []string
	}{
		{"blob too large", func(c *Config, dir string) {
			p := c.Blobs["u-boot-sunxi-with-spl.bin"]
			os.WriteFile(p, make([]byte, 1016<<10+1), 0o644)
		}, ErrBlobTooLarge, []string{"u-boot-sunxi-with-spl.bin", "1040385 bytes", "holds 1040384"}},
		{"missing guest kernel", func(c *Config, dir string) {
			os.Remove(c.ManifestFiles[0])
		}, ErrMissing, []string{"guests/vmlinuz", "system.yaml", "fix the path"}},
		{"missing blob", func(c *Config, dir string) {
			delete(c.Blobs, "u-boot-sunxi-with-spl.bin")
		}, ErrMissing, []string{"u-boot-sunxi-with-spl.bin", "u-boot-sunxi"}},
		{"file outside the manifest's directory", func(c *Config, dir string) {
			c.ManifestFiles = append(c.ManifestFiles, c.HostKernel)
		}, nil, []string{"outside its directory", "host/kernel"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fixture(t, dir, a20)
			tt.mutate(&cfg, dir)
			out := filepath.Join(dir, "out", "x.img")
			os.MkdirAll(filepath.Dir(out), 0o755)
			_, err := Build(t.Context(), out, cfg)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Build() = %v, want %v", err, tt.want)
			}
			for _, w := range tt.words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Build() = %q, want it to mention %q", err, w)
				}
			}
			left, _ := os.ReadDir(filepath.Dir(out))
			if len(left) != 0 {
				t.Errorf("Build() left %d files behind (%s), want none", len(left), left[0].Name())
			}
		})
	}
}

// TestBuildOptionalBootFile builds the ZCU102's image with and without
// BOOT.BIN, its optional boot file: given, it is in the boot partition;
// left out, the image is built without it and the result says so. A
// required boot file (OMAP5's MLO) left out is still an error.
func TestBuildOptionalBootFile(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	zcu, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	omap, err := all.Lookup("omap5-uevm")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		board   *platforms.Board
		drop    string
		skipped []string
		err     string
	}{
		{"given", zcu, "", nil, ""},
		{"left out", zcu, "BOOT.BIN", []string{"BOOT.BIN"}, ""},
		{"required, left out", omap, "MLO", nil, "boot file MLO"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fixture(t, dir, tt.board)
			delete(cfg.Blobs, tt.drop)
			img := filepath.Join(dir, "out.img")
			res, err := Build(t.Context(), img, cfg)
			if tt.err != "" {
				if err == nil || !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Build() = %v, want ErrMissing naming %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Build() = %v, want nil", err)
			}
			if !slices.Equal(res.Skipped, tt.skipped) {
				t.Errorf("Skipped = %q, want %q", res.Skipped, tt.skipped)
			}
			in, err := Inspect(img)
			if err != nil {
				t.Fatalf("Inspect() = %v", err)
			}
			has := false
			for _, e := range in.BootFiles {
				has = has || e.Name == "BOOT.BIN"
			}
			if want := tt.drop == ""; has != want {
				t.Errorf("boot partition has BOOT.BIN: %v, want %v (files %v)", has, want, in.BootFiles)
			}
		})
	}
}

// cancelAt is a progress writer that cancels a build when a stage whose
// line starts with stage begins.
type cancelAt struct {
	stage  string
	cancel context.CancelFunc
	seen   bool
}

func (c *cancelAt) Write(b []byte) (int, error) {
	if strings.HasPrefix(strings.TrimLeft(string(b), "\r"), c.stage) {
		c.seen = true
		c.cancel()
	}
	return len(b), nil
}

// TestBuildCancelled cancels a build at the start of each of its steps:
// Build must return the context's error and leave the output directory
// as it found it, an older image of the same name untouched.
func TestBuildCancelled(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	a20, err := all.Lookup("cubieboard2")
	if err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{
		"checking inputs",
		"writing the mbr partition table",
		"writing SPL+U-Boot",
		"writing the boot partition",
		"building the data partition",
		"copying the data partition",
		"writing the block map",
	} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fixture(t, dir, a20)
			outDir := filepath.Join(dir, "out")
			os.MkdirAll(outDir, 0o755)
			out := filepath.Join(outDir, "x.img")
			os.WriteFile(out, []byte("an older image\n"), 0o644)
			os.WriteFile(BmapPath(out), []byte("its block map\n"), 0o644)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c := &cancelAt{stage: stage, cancel: cancel}
			cfg.Progress = NewProgress(c)
			_, err := Build(ctx, out, cfg)
			if !c.seen {
				t.Fatalf("no stage %q reported", stage)
			}
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Build() = %v, want context.Canceled", err)
			}
			left, _ := os.ReadDir(outDir)
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
			}
			if strings.Join(names, " ") != "x.bmap x.img" {
				t.Errorf("output directory holds %q after the cancel, want only the older x.bmap and x.img", names)
			}
			if b, _ := os.ReadFile(out); string(b) != "an older image\n" {
				t.Errorf("the older x.img changed")
			}
			if b, _ := os.ReadFile(BmapPath(out)); string(b) != "its block map\n" {
				t.Errorf("the older x.bmap changed")
			}
		})
	}
}
