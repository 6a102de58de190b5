package platforms

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goodYAML is a small, valid board.yaml; TestParseCorrupt breaks it one
// line at a time. Its line numbers matter: they are in the wants.
const goodYAML = `# A test board.
name: test
arch: arm
cpu:
  compatible: arm,cortex-a7
  count: 2
  virtualization: true
memory:
  - {base: 0x40000000, size: 0x40000000}
gic:
  version: 2
  dist: {base: 0x01c81000, size: 0x1000}
  cpu: {base: 0x01c82000, size: 0x2000}
  hyp: {base: 0x01c84000, size: 0x2000}
  vcpu: {base: 0x01c86000, size: 0x2000}
  maintenance-ppi: 9
smp: psci
dtb: test.dtb
image:
  table: mbr
  first-partition: 0x100000
  boot-fs: vfat
  boot-script: boot.scr
  blobs:
    - name: SPL
      file: spl.bin
      offset: 0x2000
      max-len: 0xfe000
  load: {kernel: 0x42000000, dtb: 0x43000000, initrd: 0x43300000, script: 0x43100000}
`

func TestParse(t *testing.T) {
	b, err := Parse("test/board.yaml", []byte(goodYAML))
	if err != nil {
		t.Fatalf("Parse() = %v, want nil", err)
	}
	want := good()
	want.SMP, want.DTB = SMPPSCI, "test.dtb"
	want.Image.BootScript = "boot.scr"
	want.Image.Load = LoadAddrs{Kernel: 0x42000000, DTB: 0x43000000, Initrd: 0x43300000, Script: 0x43100000}
	want.Image.Blobs[0].File = "spl.bin"
	switch {
	case b.Name != want.Name || b.Arch != want.Arch || b.CPU.Count != want.CPU.Count || b.CPU.Compatible != want.CPU.Compatible:
		t.Errorf("Parse() = %+v, want %+v", b, want)
	case b.GIC != want.GIC:
		t.Errorf("GIC = %+v, want %+v", b.GIC, want.GIC)
	case b.Memory[0] != want.Memory[0]:
		t.Errorf("Memory = %v, want %v", b.Memory, want.Memory)
	case b.Image.Blobs[0] != want.Image.Blobs[0] || b.Image.Load != want.Image.Load:
		t.Errorf("Image = %+v, want %+v", b.Image, want.Image)
	case b.Image.DTB != "test.dtb":
		t.Errorf("Image.DTB = %q, want the board's DTB, test.dtb", b.Image.DTB)
	case b.File != "test/board.yaml" || b.Dir != "":
		t.Errorf("File, Dir = %q, %q; want test/board.yaml, \"\"", b.File, b.Dir)
	}
}

// TestParseCorrupt breaks goodYAML one line at a time: each error names
// the file and the line of the field at fault.
func TestParseCorrupt(t *testing.T) {
	tests := []struct {
		name, old, new string
		want           string
	}{
		{"unknown field", "  maintenance-ppi: 9", "  maintenance_ppi: 9", `b.yaml:16: unknown field "maintenance_ppi"`},
		{"unknown top-level field", "smp: psci", "smp: psci\nsmp-method: psci", `b.yaml:18: unknown field "smp-method"`},
		{"field of the loader", "smp: psci", "smp: psci\ndir: /tmp", `b.yaml:18: unknown field "dir"`},
		{"bad hex", "0x01c84000", "0x01c8400g", "b.yaml:14: cannot use !!str `0x01c8400g` into uint64"},
		{"negative address", "base: 0x40000000,", "base: -1,", "b.yaml:9: cannot use !!int `-1` into uint64"},
		{"count not a number", "count: 2", "count: two", "b.yaml:6: cannot use !!str `two` into int"},
		{"bool not a bool", "virtualization: true", "virtualization: si", "b.yaml:7: cannot use !!str `si` into bool"},
		{"duplicate key", "arch: arm", "arch: arm\narch: arm64", `b.yaml:4: mapping key "arch" already defined at line 3`},
		{"overlapping memory", "  - {base: 0x40000000, size: 0x40000000}", "  - {base: 0x40000000, size: 0x40000000}\n  - {base: 0x7fff0000, size: 0x20000}",
			"b.yaml:10: memory[1]: memory bank #1 [0x7fff0000, 0x80010000) overlaps memory bank #0"},
		{"overlapping GIC regions", "hyp: {base: 0x01c84000", "hyp: {base: 0x01c82800", "b.yaml:14: gic.hyp: GIC region GICH [0x1c82800, 0x1c84800) overlaps GIC region GICC"},
		{"GIC region left out", "  hyp: {base: 0x01c84000, size: 0x2000}\n", "", "b.yaml:10: gic: GICv2 profile lacks the virtualization interface"},
		{"overlapping blobs", "      max-len: 0xfe000", "      max-len: 0x2000\n    - {name: U-Boot, file: u.bin, offset: 0x3000, max-len: 0x1000}",
			"b.yaml:29: image.blobs[1]: blob U-Boot [0x3000, 0x4000) overlaps blob SPL [0x2000, 0x4000)"},
		{"blob into the partition", "max-len: 0xfe000", "max-len: 0xfe200", "b.yaml:25: image.blobs[0]: blob SPL [0x2000, 0x100200) runs into the first partition"},
		{"blob unaligned", "offset: 0x2000", "offset: 0x2001", "b.yaml:27: image.blobs[0].offset: blob SPL at 0x2001 not sector aligned"},
		{"bad table", "table: mbr", "table: msdos", `b.yaml:20: image.table: partition table "msdos", want mbr or gpt`},
		{"bad SMP", "smp: psci", "smp: pcsi", `b.yaml:17: smp: SMP bring-up "pcsi", want psci`},
		{"no name", "name: test\n", "", "b.yaml: name: no name"},
		{"load address outside RAM", "kernel: 0x42000000", "kernel: 0x02000000", "b.yaml:29: image.load.kernel: kernel load address 0x2000000 is in no memory bank"},
		{"clusters disagree", "  virtualization: true", "  virtualization: true\n  clusters:\n    - compatible: arm,cortex-a7\n      count: 1",
			"b.yaml:8: cpu.clusters: the clusters hold 1 cores, the CPU count says 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(goodYAML, tt.old) {
				t.Fatalf("goodYAML has no %q", tt.old)
			}
			doc := strings.Replace(goodYAML, tt.old, tt.new, 1)
			_, err := Parse("b.yaml", []byte(doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() = %v, want an error containing %q", err, tt.want)
			}
			var p *Problem
			if errors.As(err, &p) && !errors.Is(err, ErrInvalid) {
				t.Errorf("Parse() = %v: a Problem that is not ErrInvalid", err)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "board.yaml"), []byte(goodYAML), 0o644)
	os.WriteFile(filepath.Join(dir, "test.dtb"), []byte("a dtb"), 0o644)
	b, err := Load(dir)
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	if b.Dir != dir || b.File != filepath.Join(dir, "board.yaml") {
		t.Errorf("Dir, File = %q, %q; want %q and its board.yaml", b.Dir, b.File, dir)
	}
	if got, want := b.DTBPath(b.DTB, "/cache"), filepath.Join(dir, "test.dtb"); got != want {
		t.Errorf("DTBPath() = %q, want the directory's copy %q", got, want)
	}
	if got, want := b.Blobs(), filepath.Join(dir, "blobs"); got != want {
		t.Errorf("Blobs() = %q, want %q", got, want)
	}
	os.Remove(filepath.Join(dir, "test.dtb"))
	if got, want := b.DTBPath(b.DTB, "/cache"), "/cache/armhf/test.dtb"; got != want {
		t.Errorf("DTBPath() without a copy = %q, want Debian's %q", got, want)
	}

	errs := []struct {
		name, dir, want string
	}{
		{"no directory", filepath.Join(dir, "nope"), "no board.yaml in it"},
		{"a file", filepath.Join(dir, "board.yaml"), "not a directory"},
	}
	for _, tt := range errs {
		if _, err := Load(tt.dir); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Load() = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestImageProblems(t *testing.T) {
	tests := []struct {
		name string
		load LoadAddrs
		uefi bool
		want string // "" for none
	}{
		{"all set", LoadAddrs{Kernel: 1, DTB: 2, Initrd: 3, Script: 4}, false, ""},
		{"none", LoadAddrs{}, false, "image.load: no load addresses: set kernel/dtb/initrd/script from the board's U-Boot environment (kernel_addr_r, fdt_addr_r, ramdisk_addr_r, scriptaddr; run printenv on the board)"},
		{"no initrd", LoadAddrs{Kernel: 1, DTB: 2}, false, "image.load: no initrd load address"},
		{"UEFI", LoadAddrs{}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := good()
			b.Image.DTB = "test.dtb"
			b.Image.Load = tt.load
			if !tt.uefi {
				b.Image.BootScript = "boot.scr"
			}
			ps := b.ImageProblems()
			switch {
			case tt.want == "" && len(ps) != 0:
				t.Errorf("ImageProblems() = %v, want none", ps)
			case tt.want != "" && (len(ps) != 1 || !strings.Contains(ps[0].Error(), tt.want)):
				t.Errorf("ImageProblems() = %v, want one containing %q", ps, tt.want)
			}
		})
	}
}
