package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
)

// TestImageBuildBadInput checks that `tandem image build` refuses bad
// input with an error naming the file and the fix, and leaves no output
// file behind.
func TestImageBuildBadInput(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	dir := t.TempDir()
	write := func(name string, size int) string {
		return writeFile(t, filepath.Join(dir, name), bytes.Repeat([]byte{0x5a}, size))
	}
	kernel := write("host/Image", 4096)
	initrd := write("host/initrd", 4096)
	dtb := write("host/board.dtb", 1024)
	write("sys/vmlinuz", 4096)
	good := filepath.Join(dir, "sys", "system.yaml")
	os.WriteFile(good, []byte("guests:\n  - name: control\n    kernel: vmlinuz\n"), 0o644)
	missing := filepath.Join(dir, "sys", "missing.yaml")
	os.WriteFile(missing, []byte("guests:\n  - name: control\n    kernel: nope/vmlinuz\n"), 0o644)
	blobs := filepath.Join(dir, "blobs")
	write("blobs/idbloader.img", 0x7f8000+1) // one byte more than its slot
	// Debian's arm64 kernel config: the host kernel can host KVM, so the
	// build goes on to what each case is about.
	config := filepath.Join(testCacheRoot(t), "boards", "arm64", "config")
	testenv.RequireFile(t, config, "run scripts/testdata-boards.sh or make testdata")

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"manifest names a missing kernel",
			[]string{"--board", "cubieboard2", "--manifest", missing},
			[]string{missing, "kernel", "nope/vmlinuz", "no such file"}},
		{"unknown board",
			[]string{"--board", "cubieboard3", "--manifest", good},
			[]string{"cubieboard3", "built-in boards", "cubieboard2", "qemu-virt-arm64", "arndale", "board directory"}},
		{"the vendor's first stages not supplied",
			[]string{"--board", "j721e-evm", "--manifest", good},
			[]string{"no boot file tiboot3.bin (for the boot partition) given", "from the board vendor's BSP", "--blobs DIR"}},
		{"the vendor's flash.bin not supplied",
			[]string{"--board", "imx8mp-evk", "--manifest", good},
			[]string{"board imx8mp-evk needs its", "flash.bin, written at byte 0x8000 of the image", "Debian does not ship it", "--blobs DIR"}},
		{"blob larger than its slot",
			[]string{"--board", "rockpro64", "--manifest", good, "--blobs", blobs},
			[]string{filepath.Join(blobs, "idbloader.img"), "8355841 bytes", "holds 8355840", "built for this board"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outDir := filepath.Join(dir, "out-"+strings.ReplaceAll(tt.name, " ", "-"))
			os.MkdirAll(outDir, 0o755)
			args := append([]string{"image", "build", "-o", filepath.Join(outDir, "x.img"),
				"--host-kernel", kernel, "--host-kernel-config", config, "--host-initrd", initrd, "--dtb", dtb, "--fetch=false"}, tt.args...)
			var stdout, stderr bytes.Buffer
			err := run(args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%v) = nil, want an error", args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run() = %q, want it to mention %q", err, w)
				}
			}
			if left, _ := os.ReadDir(outDir); len(left) != 0 {
				t.Errorf("run() left %s behind, want no output file", left[0].Name())
			}
		})
	}
}

// TestCachedDTB: image build's default device tree is found in Debian's
// vendor folders, in either cache layout, when the profile names the
// file alone.
func TestCachedDTB(t *testing.T) {
	cache := t.TempDir()
	boards := writeFile(t, filepath.Join(cache, "boards", "arm64", "renesas", "r8a774a1-hihope-rzg2m.dtb"), nil)
	dtbs := writeFile(t, filepath.Join(cache, "arm64", "dtbs", "rockchip", "rk3399-rock-pi-4b.dtb"), nil)
	flat := writeFile(t, filepath.Join(cache, "armhf", "dtbs", "omap5-uevm.dtb"), nil)
	tests := []struct {
		arch      platforms.Arch
		dtb, want string
	}{
		{platforms.ARM64, "r8a774a1-hihope-rzg2m.dtb", boards},
		{platforms.ARM64, "renesas/r8a774a1-hihope-rzg2m.dtb", boards},
		{platforms.ARM64, "rk3399-rock-pi-4b.dtb", dtbs},
		{platforms.ARM, "omap5-uevm.dtb", flat},
		{platforms.ARM64, "missing.dtb", ""},
	}
	for _, tt := range tests {
		b := &platforms.Board{Name: "b", Arch: tt.arch, Image: platforms.Image{DTB: tt.dtb}}
		got, err := boardDTB(cache, b)
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("boardDTB(%s) = %q, %v, want %q", tt.dtb, got, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), filepath.Join(cache, "arm64", "dtbs")) {
			t.Errorf("boardDTB(%s) = %v, want it to name both places it looked", tt.dtb, err)
		}
	}
}
