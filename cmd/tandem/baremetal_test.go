package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/baremetal"
	"github.com/tandem-hv/tandem/internal/kvmtest"
)

// TestRunBareMetal boots the x86_64 bare-metal test guest through
// `tandem run`, as an ELF executable and as a raw image (flags and guest
// file), and reads back the command line it was handed: the console's
// only when none is given at all; `--cmdline ”` and `cmdline: ""` an
// empty one.
func TestRunBareMetal(t *testing.T) {
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	if kvm.HostArch != "x86_64" {
		t.Skipf("skipping: the bare-metal test guest is x86_64 code, and this host is %s", kvm.HostArch)
	}
	dir := t.TempDir()
	elfPath := writeFile(t, filepath.Join(dir, "guest.elf"), baremetal.X86ELF())
	rawPath := writeFile(t, filepath.Join(dir, "guest.bin"), baremetal.X86Code)
	// A guest file's console is its own console: field.
	rawFile := func(name, cmdline string) string {
		return writeFile(t, filepath.Join(dir, name+".yaml"), []byte("kernel: guest.bin\nkernel-format: raw\nload-address: 0x100000\nmemory: 64M\n"+
			"console: file:"+filepath.Join(dir, name+".console")+"\n"+cmdline))
	}
	tests := []struct {
		name     string
		args     []string
		wantLine string
	}{
		{"ELF, no --cmdline", []string{"--kernel", elfPath}, "console=ttyS0"},
		{"ELF, --cmdline ''", []string{"--kernel", elfPath, "--cmdline", ""}, ""},
		{"raw, --cmdline given", []string{"--kernel", rawPath, "--kernel-format", "raw", "--load-address", "0x100000", "--cmdline", "quiet"}, "quiet"},
		{"guest file, raw, no cmdline:", []string{rawFile("none", "")}, "console=ttyS0"},
		{"guest file, raw, cmdline: \"\"", []string{rawFile("empty", "cmdline: \"\"\n")}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			console := filepath.Join(dir, fmt.Sprintf("flags%d.console", i))
			args := append([]string{"run", "--no-sandbox", "--memory", "64M", "--console", "file:" + console}, tt.args...)
			if file, ok := strings.CutSuffix(tt.args[0], ".yaml"); ok {
				args, console = []string{"run", "--no-sandbox", tt.args[0]}, file+".console"
			}
			var stdout, stderr bytes.Buffer
			if err := run(args, &stdout, &stderr); err != nil {
				t.Fatalf("run(%q) = %v; stderr: %s", args, err, stderr.String())
			}
			out, err := os.ReadFile(console)
			if err != nil {
				t.Fatal(err)
			}
			if want := baremetal.X86Marker + tt.wantLine + baremetal.X86End; string(out) != want {
				t.Errorf("console = %q, want %q", out, want)
			}
		})
	}
}
