package bsp

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

func boardDTB(arch, name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "build", "cache", "boards", arch, name)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// buildInTempModule writes the generated package into a temporary module
// that replaces github.com/tandem-hv/tandem with this checkout, then runs
// go vet and go test on it: the package must build and its test pass.
func buildInTempModule(t *testing.T, g *Generated) {
	t.Helper()
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	dir := t.TempDir()
	root, err := filepath.Abs(repoRoot())
	if err != nil {
		t.Fatal(err)
	}
	mod := "module example.com/bsp\n\ngo 1.26\n\nrequire github.com/tandem-hv/tandem v0.0.0\n\nreplace github.com/tandem-hv/tandem => " + root + "\n"
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(mod), 0o644); err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := g.Write(t.Context(), filepath.Join(dir, g.Package)); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	for _, args := range [][]string{{"vet", "./..."}, {"test", "-count=1", "./..."}} {
		cmd := exec.Command(goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s on the generated package: %v\n%s\n--- %s.go:\n%s", strings.Join(args, " "), err, out, g.Package, g.Files[g.Package+".go"])
		}
	}
}

// TestImport imports DTBs of boards without a profile and of Highbank:
// the package builds, its test passes, and the TODOs are exactly what
// the DTB cannot give.
func TestImport(t *testing.T) {
	tests := []struct {
		dtb, name string
		missing   []string // prefixes of Generated.Missing, in order
		guestOnly bool
	}{
		{"sun7i-a20-olinuxino-lime.dtb", "olinuxino-lime", []string{"memory", "SMP", "reset", "denylist", "image"}, false},
		{"exynos5420-arndale-octa.dtb", "arndale-octa", []string{"SMP", "reset", "denylist", "image"}, false},
		{"highbank.dtb", "highbank-import", []string{"console", "reset", "denylist", "image"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := boardDTB("armhf", tt.dtb)
			testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			g, err := Import(data, p, tt.name)
			if err != nil {
				t.Fatalf("Import() = %v", err)
			}
			var got []string
			for _, m := range g.Missing {
				got = append(got, strings.Fields(m)[0])
			}
			var want []string
			for _, m := range tt.missing {
				want = append(want, m+":")
			}
			if !slices.Equal(got, want) {
				t.Errorf("Missing = %q, want %q", g.Missing, want)
			}
			src := string(g.Files[g.Package+".go"])
			if n := strings.Count(src, "// TODO:"); n != len(g.Missing) {
				t.Errorf("profile has %d TODO comments, Missing has %d", n, len(g.Missing))
			}
			if regexp.MustCompile(`GuestOnly:\s+true`).MatchString(src) != tt.guestOnly {
				t.Errorf("GuestOnly in profile = %v, want %v", !tt.guestOnly, tt.guestOnly)
			}
			buildInTempModule(t, g)
		})
	}
}

// TestCheckHighbank: the DTB check says the Cortex-A9 cannot host KVM.
func TestCheckHighbank(t *testing.T) {
	p := boardDTB("armhf", "highbank.dtb")
	testenv.RequireFile(t, p, "run scripts/testdata-boards.sh or make testdata")
	f, _, err := hostdt.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := all.Lookup("calxeda-highbank")
	if err != nil {
		t.Fatal(err)
	}
	s := CheckDTB(b, f)
	if s.OK() {
		t.Errorf("CheckDTB(highbank).OK() = true, want false")
	}
	var cpu Item
	for _, it := range s.Items {
		if it.Check == "CPU virtualization extensions" {
			cpu = it
		}
	}
	if cpu.OK || !strings.Contains(cpu.Detail, "arm,cortex-a9") || !strings.Contains(cpu.Detail, "cannot host KVM") {
		t.Errorf("CPU item = %+v, want a failure saying the Cortex-A9 cannot host KVM", cpu)
	}
	if !strings.Contains(s.Verdict, "cannot host KVM") {
		t.Errorf("Verdict = %q, want it to say the board cannot host KVM", s.Verdict)
	}
}

func TestImportErrors(t *testing.T) {
	tests := []struct {
		name, board string
		data        []byte
		want        string
	}{
		{"bad name", "My Board", nil, "bad board name"},
		{"not a DTB", "x", []byte("hello world, not a device tree"), "importing vendor.dtb"},
		{"truncated", "x", []byte{0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0, 0x40}, "importing vendor.dtb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Import(tt.data, "vendor.dtb", tt.board)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Import() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestWriteAllOrNothing: Write puts every file of the package in place or
// none, whether the directory is new or exists, on an error as on a
// cancel; the directories it would have created are not left behind.
func TestWriteAllOrNothing(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(repoRoot(), "dtb", "testdata", "qemu-virt.dtb"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Import(data, "qemu-virt.dtb", "my-virt")
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		dir     string            // relative to the test's directory
		before  map[string]string // files there first, relative to it
		wantErr string            // "": success
	}{
		{"new directory", t.Context(), "platforms/myvirt", nil, ""},
		{"existing directory", t.Context(), "pkg", map[string]string{"pkg/README": "x"}, ""},
		{"cancelled, new directory", cancelled, "platforms/myvirt", nil, "context canceled"},
		{"cancelled, existing directory", cancelled, "pkg", map[string]string{"pkg/README": "x"}, "context canceled"},
		{"profile exists", t.Context(), "pkg", map[string]string{"pkg/myvirt.go": "package myvirt\n"}, "pkg/myvirt.go already exists"},
		{"testdata is a file", t.Context(), "pkg", map[string]string{"pkg/testdata": "not a directory"}, "testdata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for name, content := range tt.before {
				p := filepath.Join(root, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			was := listTree(t, root)
			err := g.Write(tt.ctx, filepath.Join(root, tt.dir))
			now := listTree(t, root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Write() = %v, want an error mentioning %q", err, tt.wantErr)
				}
				if !slices.Equal(now, was) {
					t.Errorf("after a failed Write the tree holds %q, want %q as before", now, was)
				}
				return
			}
			if err != nil {
				t.Fatalf("Write() = %v", err)
			}
			for name, content := range g.Files {
				got, err := os.ReadFile(filepath.Join(root, tt.dir, name))
				if err != nil || string(got) != string(content) {
					t.Errorf("%s: %v, or its content differs", name, err)
				}
			}
			want := slices.Clone(was)
			for name := range g.Files {
				rel := filepath.Join(tt.dir, name)
				want = append(want, rel)
				for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
					want = append(want, d+"/")
				}
			}
			slices.Sort(want)
			if want = slices.Compact(want); !slices.Equal(now, want) {
				t.Errorf("after Write the tree holds %q, want %q", now, want)
			}
		})
	}
}

// listTree lists every path under root, sorted, with "/" after
// directories.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
