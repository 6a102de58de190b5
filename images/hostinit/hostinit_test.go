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

// TestBoardModules builds the ZCU102's host initramfs: its SD
// controller's driver, a module of Debian's kernel that every host does
// not carry, is in the archive and loaded after the SDHCI core it needs.
func TestBoardModules(t *testing.T) {
	cache := "../../build/cache/arm64"
	testenv.RequireFile(t, filepath.Join(cache, "release"), "run `make testdata`")
	rel, _ := os.ReadFile(filepath.Join(cache, "release"))
	mods := filepath.Join(cache, "modules", strings.TrimSpace(string(rel)))
	dir := t.TempDir()
	fake := filepath.Join(dir, "tandem")
	os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755)
	out := filepath.Join(dir, "initrd")
	zcu, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	if err := Build(t.Context(), out, Options{Board: zcu, ModulesDir: mods, Tandem: fake}); err != nil {
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
	var order []string
	for _, r := range recs {
		if "/"+r.Name == ModulesList {
			b := make([]byte, r.FileSize)
			r.ReadAt(b, 0)
			order = strings.Fields(string(b))
		}
	}
	at := map[string]int{}
	for i, p := range order {
		at[filepath.Base(p)] = i + 1
	}
	arasan, core := at["sdhci-of-arasan.ko"], at["sdhci.ko"]
	if arasan == 0 || core == 0 || core > arasan {
		t.Errorf("module order %v: sdhci-of-arasan.ko at %d, sdhci.ko at %d; want both, the core first", order, arasan, core)
	}
}

// TestBoardLine reads the ZCU102's own device tree as the host init
// does, and an x86 host's missing one.
func TestBoardLine(t *testing.T) {
	zcu, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	dtb := "../../build/cache/boards/arm64/" + zcu.DTB
	testenv.RequireFile(t, dtb, "run `make testdata`")
	want := `board "ZynqMP ZCU102 Rev1.0" (xlnx,zynqmp-zcu102-rev1.0, xlnx,zynqmp-zcu102, xlnx,zynqmp), profile zcu102`
	if got := BoardLine(dtb); got != want {
		t.Errorf("BoardLine(%s) = %q, want %q", dtb, got, want)
	}
	if got := BoardLine(filepath.Join(t.TempDir(), "fdt")); !strings.Contains(got, "no device tree") {
		t.Errorf("BoardLine(missing) = %q, want it to say there is no device tree", got)
	}
	if got := KVMLine(filepath.Join(t.TempDir(), "kvm")); !strings.Contains(got, "guests cannot run") {
		t.Errorf("KVMLine(missing) = %q, want it to say guests cannot run", got)
	}
	if got := KVMLine("/dev/null"); got != "KVM ready (/dev/null)" {
		t.Errorf("KVMLine(/dev/null) = %q, want it ready (a character device)", got)
	}
}
