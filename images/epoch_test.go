package images

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/images/fat"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

// TestEpochFrom: SOURCE_DATE_EPOCH when set, else the build's vcs.time,
// else FixedEpoch; a SOURCE_DATE_EPOCH no image can hold is an error
// naming the variable, the range and the fix.
func TestEpochFrom(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	commit := vcs("vcs", "git", "vcs.revision", "0123abcd", "vcs.time", "2026-11-23T19:58:27Z", "vcs.modified", "true")
	tests := []struct {
		name    string
		env     string
		bi      *debug.BuildInfo
		want    int64
		source  EpochSource
		printed string
		err     []string
	}{
		{"SOURCE_DATE_EPOCH", "1700000000", commit, 1700000000, EpochFromEnv, "SOURCE_DATE_EPOCH", nil},
		{"commit time", "", commit, 1795463907, EpochFromCommit, "the source's commit time", nil},
		{"no vcs information", "", vcs("-buildmode", "exe"), FixedEpoch, EpochFixed, "Tandem's fixed epoch", nil},
		{"no build information", "", nil, FixedEpoch, EpochFixed, "Tandem's fixed epoch", nil},
		{"unreadable vcs.time", "", vcs("vcs.time", "yesterday"), FixedEpoch, EpochFixed, "Tandem's fixed epoch", nil},
		{"zero", "0", commit, 0, "", "", []string{`SOURCE_DATE_EPOCH="0"`, "315532800", "1980-01-01", "FAT", "unset it"}},
		{"not a number", "yesterday", commit, 0, "", "", []string{`SOURCE_DATE_EPOCH="yesterday"`, "whole seconds"}},
		{"past 2106", "4294967296", commit, 0, "", "", []string{"4294967295", "2106-02-07"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, source, err := epochFrom(tt.env, tt.bi)
			if tt.err != nil {
				if err == nil {
					t.Fatalf("epochFrom(%q) = %d, %q; want an error", tt.env, got, source)
				}
				for _, w := range tt.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil || got != tt.want || source != tt.source || source.String() != tt.printed {
				t.Errorf("epochFrom(%q) = %d, %q (%s), %v; want %d, %q (%s)", tt.env, got, source, source, err, tt.want, tt.source, tt.printed)
			}
		})
	}
}

// TestBuildDefaultEpoch: a Config without an epoch gets Epoch()'s, and
// the info file records it and its source; one outside the range FAT and
// 32-bit times hold is refused.
func TestBuildDefaultEpoch(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	b, err := all.Lookup("qemu-virt-arm64")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "")
	wantEpoch, wantSource, err := Epoch()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fixture(t, dir, b)
	cfg.Epoch = 0
	img := filepath.Join(dir, "x.img")
	if _, err := Build(t.Context(), img, cfg); err != nil {
		t.Fatalf("Build() = %v", err)
	}
	in, err := Inspect(img)
	if err != nil {
		t.Fatalf("Inspect() = %v", err)
	}
	if in.Info.Epoch != wantEpoch || in.Info.EpochSource != wantSource {
		got, _ := json.Marshal(in.Info)
		t.Errorf("info file %s: want epoch %d from %q", got, wantEpoch, wantSource)
	}
	var out strings.Builder
	in.Print(&out)
	if want := "from " + wantSource.String() + "\n"; !strings.Contains(out.String(), want) {
		t.Errorf("Print() lacks %q:\n%s", want, out.String())
	}

	cfg.Epoch = 100
	_, err = Build(t.Context(), filepath.Join(dir, "y.img"), cfg)
	if err == nil || !strings.Contains(err.Error(), "epoch 100") || !strings.Contains(err.Error(), "1980-01-01") {
		t.Errorf("Build(epoch 100) = %v, want an error naming the epoch and the range", err)
	}
}

// TestTimestamps checks every timestamp an image holds against its epoch:
// the FAT entries' creation, access and write times, the boot script's
// uImage header, the ext4 superblock's creation, write and check times
// (and its mount time, none), and every inode's access, change,
// modification and creation times, read with debugfs.
func TestTimestamps(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	debugfs := testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	b, err := all.Lookup("qemu-virt-arm64")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fixture(t, dir, b)
	cfg.Epoch = FixedEpoch + 12345 // not a whole day: times of day count too
	img := filepath.Join(dir, "x.img")
	if _, err := Build(t.Context(), img, cfg); err != nil {
		t.Fatalf("Build() = %v", err)
	}
	epoch := time.Unix(cfg.Epoch, 0).UTC()
	in, err := Inspect(img)
	if err != nil {
		t.Fatalf("Inspect() = %v", err)
	}
	if in.Info.Epoch != cfg.Epoch {
		t.Errorf("%s: epoch %d, want %d", InfoName, in.Info.Epoch, cfg.Epoch)
	}

	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fr, err := fat.Open(f, in.Partitions[0].Start)
	if err != nil {
		t.Fatal(err)
	}
	root, err := fr.ReadDir("/")
	if err != nil || len(root) == 0 {
		t.Fatalf("ReadDir(/) = %d entries, %v", len(root), err)
	}
	day := time.Date(epoch.Year(), epoch.Month(), epoch.Day(), 0, 0, 0, 0, time.UTC)
	even := epoch.Truncate(2 * time.Second)
	for _, e := range root {
		if !e.Created.Equal(epoch) || !e.Modified.Equal(even) || !e.Accessed.Equal(day) {
			t.Errorf("FAT %s: created %v, modified %v, accessed %v; want %v (modified: to 2 s, accessed: its date)", e.Name, e.Created, e.Modified, e.Accessed, epoch)
		}
	}
	scr, err := fr.ReadFile(b.Image.BootScript)
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(binary.BigEndian.Uint32(scr[8:])); got != cfg.Epoch {
		t.Errorf("%s: uImage ih_time %d, want %d", b.Image.BootScript, got, cfg.Epoch)
	}

	data := in.Partitions[1].Start
	sb := readAt(t, img, data+1024, 1024)
	le := binary.LittleEndian
	for _, fld := range []struct {
		name   string
		lo, hi int
		want   int64
	}{
		{"s_mtime (last mount)", 0x2c, 0x275, 0},
		{"s_wtime (last write)", 0x30, 0x274, cfg.Epoch},
		{"s_lastcheck", 0x40, 0x277, cfg.Epoch},
		{"s_mkfs_time", 0x108, 0x276, cfg.Epoch},
	} {
		if got := int64(le.Uint32(sb[fld.lo:])) | int64(sb[fld.hi])<<32; got != fld.want {
			t.Errorf("ext4 superblock %s = %d, want %d", fld.name, got, fld.want)
		}
	}
	stamp := regexp.MustCompile(`(?m)^\s*(\w+): 0x([0-9a-f]{8}):([0-9a-f]{8})`)
	for _, p := range []string{"/", "/lost+found", "/" + ManifestIn, "/guests", "/guests/vmlinuz", "/guests/control.cpio"} {
		out, err := exec.Command(debugfs, "-R", "stat "+p, fmt.Sprintf("%s?offset=%d", img, data)).Output()
		if err != nil {
			t.Fatalf("debugfs stat %s: %v", p, err)
		}
		m := stamp.FindAllStringSubmatch(string(out), -1)
		if len(m) != 4 {
			t.Fatalf("debugfs stat %s: %d times, want ctime, atime, mtime and crtime:\n%s", p, len(m), out)
		}
		for _, s := range m {
			if want := fmt.Sprintf("%08x", cfg.Epoch); s[2] != want || s[3] != "00000000" {
				t.Errorf("ext4 %s %s = 0x%s:%s, want 0x%s:00000000 (%v)", p, s[1], s[2], s[3], want, epoch)
			}
		}
	}
}
