package hostinit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

// TestBuild builds the QEMU virt board's host initramfs from Debian's
// arm64 kernel modules and checks what the host init relies on: /init,
// the console, the module list naming modules that are in the archive,
// with virtio_blk and ext4 among them.
func TestBuild(t *testing.T) {
	cache := "../../build/cache/arm64"
	testenv.RequireFile(t, filepath.Join(cache, "release"), "run `make testdata`")
	rel, _ := os.ReadFile(filepath.Join(cache, "release"))
	mods := filepath.Join(cache, "modules", strings.TrimSpace(string(rel)))
	dir := t.TempDir()
	fake := filepath.Join(dir, "tandem")
	os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(dir, "initrd")
	virt, err := all.Lookup("qemu-virt-arm64")
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(t.Context(), out, Options{Board: virt, ModulesDir: mods, Tandem: fake}); err != nil {
		t.Fatalf("Build() = %v", err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatalf("reading the archive: %v", err)
	}
	files := map[string]cpio.Record{}
	for _, r := range recs {
		files["/"+r.Name] = r
	}
	for _, want := range []string{"/init", "/dev/console", ModulesList, DataMount} {
		if _, ok := files[want]; !ok {
			t.Errorf("archive lacks %s", want)
		}
	}
	list, err := os.ReadFile(out) // the list's text is in the archive verbatim
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"virtio_blk.ko", "ext4.ko", "jbd2.ko", "virtio_mmio.ko"} {
		if !strings.Contains(string(list), m) {
			t.Errorf("archive lacks module %s", m)
		}
	}
	var order []string
	for _, r := range recs {
		if "/"+r.Name == ModulesList {
			b := make([]byte, r.FileSize)
			r.ReadAt(b, 0)
			order = strings.Fields(string(b))
		}
	}
	ext4, jbd2 := -1, -1
	for i, p := range order {
		if _, ok := files[p]; !ok {
			t.Errorf("module list names %s, not in the archive", p)
		}
		switch filepath.Base(p) {
		case "ext4.ko":
			ext4 = i
		case "jbd2.ko":
			jbd2 = i
		}
	}
	if ext4 < 0 || jbd2 < 0 || jbd2 > ext4 {
		t.Errorf("module order: jbd2 at %d, ext4 at %d; want jbd2 (a dependency) first", jbd2, ext4)
	}
}

// TestBoardModules builds the host initramfs of each board that names
// host modules (the SoC ports, the ZCU102), from Debian's arm64 kernel:
// every module it names is in the archive's load order, after the modules
// it depends on (its SD controller's driver after the SDHCI or DW-MMC
// core).
func TestBoardModules(t *testing.T) {
	cache := "../../build/cache/arm64"
	testenv.RequireFile(t, filepath.Join(cache, "release"), "run `make testdata`")
	rel, _ := os.ReadFile(filepath.Join(cache, "release"))
	mods := filepath.Join(cache, "modules", strings.TrimSpace(string(rel)))
	dep, err := os.ReadFile(filepath.Join(mods, "modules.dep"))
	if err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{} // module file → its dependencies' files
	byName := map[string]string{} // module name, "-" as "_" → file
	for _, l := range strings.Split(string(dep), "\n") {
		if p, d, ok := strings.Cut(l, ":"); ok {
			file := filepath.Base(p)
			byName[strings.ReplaceAll(strings.TrimSuffix(file, ".ko"), "-", "_")] = file
			deps[file] = nil
			for _, q := range strings.Fields(d) {
				deps[file] = append(deps[file], filepath.Base(q))
			}
		}
	}
	fake := filepath.Join(t.TempDir(), "tandem")
	os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755)
	n := 0
	for _, b := range all.Boards() {
		if len(b.HostModules) == 0 || b.Arch != "arm64" {
			continue
		}
		n++
		t.Run(b.Name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "initrd")
			if err := Build(t.Context(), out, Options{Board: b, ModulesDir: mods, Tandem: fake}); err != nil {
				t.Fatalf("Build() = %v", err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
			if err != nil {
				t.Fatalf("reading the archive: %v", err)
			}
			at := map[string]int{}
			for _, r := range recs {
				if "/"+r.Name == ModulesList {
					buf := make([]byte, r.FileSize)
					r.ReadAt(buf, 0)
					for i, p := range strings.Fields(string(buf)) {
						at[filepath.Base(p)] = i + 1
					}
				}
			}
			for _, m := range b.HostModules {
				file, ok := byName[strings.ReplaceAll(m, "-", "_")]
				if !ok {
					t.Errorf("host module %s is not a module of Debian's kernel %s", m, strings.TrimSpace(string(rel)))
					continue
				}
				if at[file] == 0 {
					t.Errorf("the load order lacks %s", file)
				}
				for _, d := range deps[file] {
					if at[d] == 0 || at[d] > at[file] {
						t.Errorf("%s loads at %d, its dependency %s at %d: want the dependency first", file, at[file], d, at[d])
					}
				}
			}
		})
	}
	if n < 6 {
		t.Errorf("%d arm64 boards name host modules, want the five SoC ports' and the ZCU102's at least", n)
	}
}
