package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// snapshot lists a directory tree: each path under it with its kind, size
// and, for a file, its SHA256; symbolic links with their targets.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			m[rel] = "symlink to " + target
		case d.IsDir():
			m[rel] = "directory"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			m[rel] = fmt.Sprintf("%d bytes, sha256 %s", len(b), hex.EncodeToString(sum[:8]))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	return m
}

// sameTree fails the test when a directory's snapshot changed, naming
// every path that came, went or changed.
func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	if maps.Equal(before, after) {
		return
	}
	all := maps.Clone(before)
	maps.Copy(all, after)
	keys := slices.Sorted(maps.Keys(all))
	for _, k := range keys {
		b, inB := before[k]
		a, inA := after[k]
		switch {
		case !inB:
			t.Errorf("%s: %s left behind (%s)", what, k, a)
		case !inA:
			t.Errorf("%s: %s removed (was %s)", what, k, b)
		case a != b:
			t.Errorf("%s: %s changed: %s, was %s", what, k, a, b)
		}
	}
}

// TestCancelledCommandsLeaveNothing runs each command that writes files
// with its context already cancelled, as a Ctrl-C at its first step
// would: each must fail with an interruptedError and leave its output
// directory as it was, older outputs of the same name untouched. (The
// imports and bsp import end in milliseconds, too soon for a signal to
// land mid-way; TestImageBuildSignalled sends real ones.)
func TestCancelledCommandsLeaveNothing(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	dir := t.TempDir()
	write := func(name string, size int) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte{0x5a}, size), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kernel := write("in/vmlinuz", 1<<20)
	initrd := write("in/initrd", 1<<20)
	write("in/sys/vmlinuz", 4096)
	manifest := filepath.Join(dir, "in", "sys", "system.yaml")
	os.WriteFile(manifest, []byte("guests:\n  - name: control\n    kernel: vmlinuz\n"), 0o644)
	image := write("in/flash.img", 64<<10)
	card := write("in/card", 64<<10)
	build := []string{"image", "build", "--board", "qemu-virt-arm64", "--manifest", manifest, "--host-kernel", kernel, "--fetch=false"}
	tests := []struct {
		name string
		args []string // OUT stands for the output's path
		out  string   // the output's name in the output directory
	}{
		{"image build, host initramfs", append(slices.Clone(build), "-o", "OUT"), "x.img"},
		{"image build", append(slices.Clone(build), "--host-initrd", initrd, "-o", "OUT"), "x.img"},
		{"import xl", []string{"import", "xl", xlTestdata + "control.cfg", "-o", "OUT"}, "system.yaml"},
		{"import dom0less", []string{"import", "dom0less", xlTestdata + "dom0less.dtb", "-o", "OUT"}, "system.yaml"},
		{"bsp import", []string{"bsp", "import", "../../dtb/testdata/qemu-virt.dtb", "--name", "my-virt", "-o", "OUT"}, "myvirt"},
		{"image flash", []string{"image", "flash", image, card}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outDir := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "-"))
			os.MkdirAll(outDir, 0o755)
			os.WriteFile(filepath.Join(outDir, "notes.txt"), []byte("kept\n"), 0o644)
			args := slices.Clone(tt.args)
			if tt.out != "" {
				os.WriteFile(filepath.Join(outDir, tt.out+".old"), []byte("an older output\n"), 0o644)
				for i, a := range args {
					if a == "OUT" {
						args[i] = filepath.Join(outDir, tt.out)
					}
				}
			}
			before, cardBefore := snapshot(t, outDir), snapshot(t, filepath.Dir(card))
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			var stdout, stderr bytes.Buffer
			err := runContext(ctx, args, &stdout, &stderr)
			var in *interruptedError
			if !errors.As(err, &in) {
				t.Fatalf("run(%q) = %v, want an interruptedError", args, err)
			}
			if !strings.Contains(err.Error(), "interrupted") || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line saying interrupted", err)
			}
			t.Logf("%s", err)
			sameTree(t, "output directory", before, snapshot(t, outDir))
			sameTree(t, "input directory", cardBefore, snapshot(t, filepath.Dir(card)))
		})
	}
}

