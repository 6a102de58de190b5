package bsp

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
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

// importDir imports the DTB at path as board name and writes the board
// directory into a temporary directory, which it returns.
func importDir(t *testing.T, path, name string) (*Imported, string) {
	t.Helper()
	testenv.RequireFile(t, path, "run scripts/testdata-boards.sh or make testdata")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Import(data, path, name)
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	dir := filepath.Join(t.TempDir(), name)
	if err := g.Write(t.Context(), dir); err != nil {
		t.Fatalf("Write() = %v", err)
	}
	return g, dir
}

var todoLine = regexp.MustCompile(`(?m)^\s*# TODO: `)

// TestImport imports DTBs of boards without a built-in profile, and of
// Highbank: the board directory holds board.yaml and the DTB; board.yaml
// decodes, holds its invariants and agrees with the DTB field by field;
// its TODOs are exactly what the DTB cannot give; and the porting kit's
// check refuses it, naming what an image still needs.
func TestImport(t *testing.T) {
	tests := []struct {
		arch, dtb, name string
		missing         []string // Imported.Missing's fields, in order
		guestOnly       bool
		clusters        int
	}{
		{"armhf", "sun7i-a20-olinuxino-lime.dtb", "olinuxino-lime", []string{"memory", "smp", "reset", "denylist", "image.table", "image.blobs", "image.load"}, false, 0},
		{"armhf", "exynos5420-arndale-octa.dtb", "arndale-octa", []string{"smp", "reset", "denylist", "image.table", "image.blobs", "image.load"}, false, 2}, // 4× A15, 4× A7
		{"armhf", "highbank.dtb", "highbank-import", []string{"console", "reset", "denylist", "image.table", "image.blobs", "image.load"}, true, 0},
		{"arm64", "rockchip/rk3399-rockpro64.dtb", "rockpro64", []string{"memory", "reset", "denylist", "image.table", "image.blobs", "image.load"}, false, 2},
		{"arm64", "freescale/imx8mp-evk.dtb", "imx8mp-evk", []string{"reset", "denylist", "image.table", "image.blobs", "image.load"}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, dir := importDir(t, boardDTB(tt.arch, tt.dtb), tt.name)
			var got []string
			for _, m := range g.Missing {
				got = append(got, strings.SplitN(m, ":", 2)[0])
			}
			if !slices.Equal(got, tt.missing) {
				t.Errorf("Missing = %q, want the fields %q", g.Missing, tt.missing)
			}
			src := g.Files["board.yaml"]
			if n := len(todoLine.FindAll(src, -1)); n != len(g.Missing) {
				t.Errorf("board.yaml has %d TODO comments, Missing has %d:\n%s", n, len(g.Missing), src)
			}
			b, err := platforms.Read(dir)
			if err != nil {
				t.Fatalf("Read() = %v\n%s", err, src)
			}
			if err := b.Validate(); err != nil {
				t.Errorf("Validate() = %v", err)
			}
			if b.GuestOnly != tt.guestOnly || len(b.CPU.Clusters) != tt.clusters {
				t.Errorf("GuestOnly, clusters = %v, %d; want %v, %d", b.GuestOnly, len(b.CPU.Clusters), tt.guestOnly, tt.clusters)
			}
			own := b.DTBPath(b.DTB, "/no/cache")
			if own != filepath.Join(dir, filepath.Base(tt.dtb)) {
				t.Fatalf("DTBPath() = %s, want the copy in the board directory", own)
			}
			f, _, err := hostdt.ReadFile(own)
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range hostdt.Check(b, f) {
				if !fd.OK {
					t.Errorf("Check: %v", fd)
				}
			}
			s := CheckProfile(b)
			want := []string{"image.table", "image.blobs", "image.load"}
			if tt.guestOnly {
				want = append([]string{"guest-only"}, want...)
			}
			if got := blockers(s); s.OK() || !slices.Equal(got, want) {
				t.Errorf("CheckProfile() blockers = %q, want %q", got, want)
			}
		})
	}
}

// blockers returns the failed, non-advisory items' checks.
func blockers(s Section) []string {
	var b []string
	for _, it := range s.Items {
		if !it.OK && !it.Advisory {
			b = append(b, it.Check)
		}
	}
	return b
}

// TestImportedBoardReady ports an imported board as its porter would, by
// editing board.yaml only: the load addresses from U-Boot's environment,
// the SoC's card layout and blobs, each TODO deleted as it is done. The
// check refuses the board until the last blocker is gone.
func TestImportedBoardReady(t *testing.T) {
	_, dir := importDir(t, boardDTB("arm64", "rockchip/rk3399-rockpro64.dtb"), "rockpro64")
	file := filepath.Join(dir, "board.yaml")
	edits := []struct {
		field string // the TODO the edit mends
		edit  func(string) string
	}{
		{"image.load", func(s string) string {
			// U-Boot's include/configs/rk3399_common.h (ENV_MEM_LAYOUT_SETTINGS).
			return dropTodo(s, "load addresses:", "  load: {kernel: 0x0, dtb: 0x0, initrd: 0x0, script: 0x0}",
				"  load: {kernel: 0x02080000, dtb: 0x01f00000, initrd: 0x06000000, script: 0x00500000}")
		}},
		{"image.table", func(s string) string {
			// opensource.rock-chips.com/wiki_Partitions: boot at sector 32768.
			s = strings.Replace(s, "  first-partition: 0x100000 # 1 MiB", "  first-partition: 0x1000000 # 16 MiB", 1)
			return dropTodo(s, "partition layout:", "  table: mbr", "  table: mbr")
		}},
		{"image.blobs", func(s string) string {
			return dropTodo(s, "the bootloader blobs", "  blobs: []", `  blobs:
    - {name: idbloader, file: idbloader.img, package: "u-boot-rockchip:/usr/lib/u-boot/rockpro64-rk3399/idbloader.img", offset: 0x8000, max-len: 0x3e8000}
    - {name: U-Boot, file: u-boot.itb, package: "u-boot-rockchip:/usr/lib/u-boot/rockpro64-rk3399/u-boot.itb", offset: 0x800000, max-len: 0x400000}`)
		}},
	}
	for i, e := range edits {
		b, err := platforms.Read(dir)
		if err != nil {
			t.Fatal(err)
		}
		s := CheckProfile(b)
		if s.OK() || !slices.Contains(blockers(s), e.field) {
			t.Fatalf("before edit %d, CheckProfile() blockers = %q, want %s among them", i, blockers(s), e.field)
		}
		data, _ := os.ReadFile(file)
		os.WriteFile(file, []byte(e.edit(string(data))), 0o644)
	}
	b, err := platforms.Load(dir)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if s := CheckProfile(b); !s.OK() {
		t.Errorf("CheckProfile() after the port = %+v, want no blocker", s.Items)
	}
}

// dropTodo replaces the line old of a board.yaml with new, and deletes
// the TODO comment above it that starts with the given words.
func dropTodo(s, todo, old, new string) string {
	lines := strings.Split(s, "\n")
	at := slices.Index(lines, old)
	if at < 0 {
		return s
	}
	lines[at] = new
	start := at
	for start > 0 && strings.HasPrefix(strings.TrimSpace(lines[start-1]), "#") {
		start--
		if strings.HasPrefix(strings.TrimSpace(lines[start]), "# TODO: "+todo) {
			return strings.Join(append(lines[:start], lines[at:]...), "\n")
		}
	}
	return strings.Join(lines, "\n")
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

// TestWriteAllOrNothing: Write puts every file of the board in place or
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
		{"new directory", t.Context(), "boards/my-virt", nil, ""},
		{"existing directory", t.Context(), "dir", map[string]string{"dir/README": "x"}, ""},
		{"cancelled, new directory", cancelled, "boards/my-virt", nil, "context canceled"},
		{"cancelled, existing directory", cancelled, "dir", map[string]string{"dir/README": "x"}, "context canceled"},
		{"profile exists", t.Context(), "dir", map[string]string{"dir/board.yaml": "name: x\n"}, "dir/board.yaml already exists"},
		{"DTB exists", t.Context(), "dir", map[string]string{"dir/qemu-virt.dtb": "x"}, "dir/qemu-virt.dtb already exists"},
		{"parent is a file", t.Context(), "file/my-virt", map[string]string{"file": "not a directory"}, "not a directory"},
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
