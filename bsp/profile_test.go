package bsp

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/boards"
)

// TestCheckProfile: what the profile check blocks on, with the field and
// line at fault, and what it only advises.
func TestCheckProfile(t *testing.T) {
	cubie, err := fs.ReadFile(boards.FS, "cubieboard2/board.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(cubie)
	tests := []struct {
		name     string
		board    string // a built-in name, or a board.yaml for a directory
		blockers []string
		detail   string // in the first blocker's, or (none) the first advice's Detail and Fix
	}{
		{"built-in", "cubieboard2", nil, ""},
		{"user-supplied blob", "arndale", nil, "arndale-bl1.bin comes from the user"},
		{"guest-only", "calxeda-highbank", []string{"guest-only"}, "cannot host KVM with any kernel"},
		{"a copy", doc, nil, ""},
		{"overlapping memory", strings.Replace(doc, "  - {base: 0x40000000, size: 0x40000000} # 1 GiB", "  - {base: 0x40000000, size: 0x40000000}\n  - {base: 0x7ff00000, size: 0x100000}", 1),
			[]string{"memory[1]"}, "overlaps memory bank #0 [0x40000000, 0x80000000) (DIR/board.yaml:21) correct it at DIR/board.yaml:21"},
		{"no load addresses", strings.Replace(doc, "  load: {kernel: 0x42000000, dtb: 0x43000000, initrd: 0x43400000, script: 0x43100000}\n", "", 1),
			[]string{"image.load"}, "no load addresses (DIR/board.yaml:60) set kernel/dtb/initrd/script from the board's U-Boot environment (kernel_addr_r, fdt_addr_r, ramdisk_addr_r, scriptaddr; run printenv on the board)"},
		{"a TODO on the image", strings.Replace(doc, "  boot-fs: vfat\n", "  # TODO: check the boot file system.\n  boot-fs: vfat\n", 1),
			[]string{"image.boot-fs"}, "left for the porter (TODO at DIR/board.yaml:74) check the boot file system; then delete the TODO"},
		{"a TODO elsewhere", strings.Replace(doc, "reset: watchdog", "# TODO: is it?\nreset: watchdog", 1), nil, "left for the porter (TODO at DIR/board.yaml:46) is it?; then delete the TODO"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *platforms.Board
			dir := filepath.Join(t.TempDir(), "b")
			if strings.Contains(tt.board, "\n") {
				os.Mkdir(dir, 0o755)
				os.WriteFile(filepath.Join(dir, "board.yaml"), []byte(tt.board), 0o644)
				b, err = platforms.Read(dir)
			} else {
				b, err = all.Lookup(tt.board)
			}
			if err != nil {
				t.Fatal(err)
			}
			s := CheckProfile(b)
			if got := blockers(s); !slices.Equal(got, tt.blockers) || s.OK() != (len(tt.blockers) == 0) {
				t.Fatalf("CheckProfile() blockers = %q (OK %v), want %q", got, s.OK(), tt.blockers)
			}
			if tt.detail == "" {
				return
			}
			for _, it := range s.Items {
				if it.OK {
					continue
				}
				if got := strings.ReplaceAll(it.Detail+" "+it.Fix, dir, "DIR"); !strings.Contains(got, tt.detail) {
					t.Errorf("first failed item %s: %q, want it to contain %q", it.Check, got, tt.detail)
				}
				return
			}
			t.Errorf("CheckProfile() = %+v: no failed item", s.Items)
		})
	}
}
