package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestImageBuildReproducible builds the QEMU virt board's image twice
// with the real tandem binary, a second apart, and checks that the two
// images and their block maps are byte-identical, and that `tandem image
// inspect` names the epoch and its source: without SOURCE_DATE_EPOCH,
// the commit time the binary records (one built from a git repository)
// or, failing that, Tandem's fixed epoch; with it, SOURCE_DATE_EPOCH.
func TestImageBuildReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds tandem and four images (-short)")
	}
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	cache := testCache(t)
	plain := buildTandem(t)
	dir := t.TempDir()
	manifest := qemuSystem(t, dir, cache)
	tests := []struct {
		name   string
		tandem func(t *testing.T) string
		env    string // SOURCE_DATE_EPOCH ("": unset)
		source string // as inspect names it ("": what the binary records)
	}{
		{"as go build makes it", func(*testing.T) string { return plain }, "", ""},
		{"with its commit time", func(t *testing.T) string { return buildTandemVCS(t, dir) }, "", "the source's commit time"},
		{"with SOURCE_DATE_EPOCH", func(*testing.T) string { return plain }, "1700000000", "SOURCE_DATE_EPOCH"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tandem := tt.tandem(t)
			epoch, source := expectedEpoch(t, tandem, tt.env)
			if tt.source != "" && source != tt.source {
				t.Fatalf("%s records %s, want %s", tandem, source, tt.source)
			}
			if want, _ := time.Parse(time.RFC3339, commitTime); tt.name == "with its commit time" && epoch != want.Unix() {
				t.Fatalf("%s records commit time %d, want %d (%s)", tandem, epoch, want.Unix(), commitTime)
			}
			out := filepath.Join(dir, fmt.Sprint("out", i))
			tmp := filepath.Join(dir, fmt.Sprint("tmp", i))
			os.MkdirAll(out, 0o755)
			os.MkdirAll(tmp, 0o755)
			var sums [2][2]string
			for j, name := range []string{"a", "b"} {
				if j == 1 {
					// Anything taken from the clock now differs.
					time.Sleep(1100 * time.Millisecond)
				}
				img := filepath.Join(out, name+".img")
				cmd := tandemCmd(t, tandem, cache, tmp, tt.env, "image", "build", "--board", "qemu-virt-arm64",
					"--manifest", manifest, "-o", img, "--fetch=false")
				b, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("tandem image build: %v\n%s", err, b)
				}
				if j == 0 {
					t.Logf("tandem image build:\n%s", b)
				}
				sums[j] = [2]string{fileSHA(t, img), fileSHA(t, images.BmapPath(img))}
				t.Logf("%s.img sha256 %s, %s.bmap sha256 %s", name, sums[j][0], name, sums[j][1])
			}
			if sums[0][0] != sums[1][0] {
				t.Errorf("the two images differ: sha256 %s and %s", sums[0][0], sums[1][0])
			}
			if sums[0][1] != sums[1][1] {
				t.Errorf("the two block maps differ: sha256 %s and %s", sums[0][1], sums[1][1])
			}
			b, err := tandemCmd(t, tandem, cache, tmp, "", "image", "inspect", filepath.Join(out, "a.img")).CombinedOutput()
			if err != nil {
				t.Fatalf("tandem image inspect: %v\n%s", err, b)
			}
			want := fmt.Sprintf("epoch: %d (%s), from %s\n", epoch, time.Unix(epoch, 0).UTC().Format(time.RFC3339), source)
			if !strings.Contains(string(b), want) {
				t.Errorf("tandem image inspect lacks %q:\n%s", want, b)
			}
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "epoch:") {
					t.Logf("tandem image inspect: %s", l)
				}
			}
		})
	}
}

// commitTime is the commit time of the copy of the source
// buildTandemVCS builds from.
const commitTime = "2025-06-01T12:00:00Z"

// buildTandemVCS builds tandem from a git repository holding a copy of
// this source, committed at commitTime, so that go build records that
// as its vcs.time. (A copy, because go records nothing in a git worktree,
// whose .git is a file, nor in a tree without git.)
func buildTandemVCS(t *testing.T, dir string) string {
	t.Helper()
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	gitBin := testenv.RequireCommand(t, "git", "git")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "build", "testdata":
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(src, rel), 0o755)
		}
		// What go build reads: Go files, the module's files, and the
		// files embedded into the binary (the built-in boards).
		if !strings.HasSuffix(rel, ".go") && rel != "go.mod" && rel != "go.sum" && !strings.HasPrefix(rel, "platforms/boards/") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(src, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the source: %v", err)
	}
	env := append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_DATE="+commitTime, "GIT_COMMITTER_DATE="+commitTime)
	for _, args := range [][]string{
		{"init", "-q"},
		{"add", "-A"},
		{"-c", "user.name=Tandem", "-c", "user.email=tandem@example.invalid", "commit", "-q", "-m", "source"},
	} {
		cmd := exec.Command(gitBin, args...)
		cmd.Dir, cmd.Env = src, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	bin := filepath.Join(dir, "tandem-vcs")
	cmd := exec.Command(goBin, "build", "-buildvcs=true", "-o", bin, "./cmd/tandem")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	return bin
}

// expectedEpoch is the epoch and source the tandem binary should use with
// SOURCE_DATE_EPOCH set to env ("": unset): env, else the commit time the
// binary records, else images.FixedEpoch.
func expectedEpoch(t *testing.T, tandem, env string) (int64, string) {
	t.Helper()
	if env != "" {
		var v int64
		fmt.Sscan(env, &v)
		return v, "SOURCE_DATE_EPOCH"
	}
	bi, err := buildinfo.ReadFile(tandem)
	if err != nil {
		t.Fatalf("reading %s's build information: %v", tandem, err)
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.time" {
			c, err := time.Parse(time.RFC3339, s.Value)
			if err != nil {
				t.Fatalf("%s: vcs.time %q: %v", tandem, s.Value, err)
			}
			return c.Unix(), "the source's commit time"
		}
	}
	return images.FixedEpoch, "Tandem's fixed epoch"
}

func fileSHA(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
