package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/vmm"
)

// badGuest is one guest's input, given to `tandem run` as flags and to
// `tandem system --check` as a manifest's guest.
type badGuest struct {
	kernel, initrd, memory, disk, tap string
	cpus                              string // "" for the default
}

func (g badGuest) runArgs() []string {
	args := []string{"run", "--kernel", g.kernel}
	for _, f := range []struct{ flag, v string }{{"--initrd", g.initrd}, {"--cpus", g.cpus}, {"--memory", g.memory}, {"--disk", g.disk}, {"--net", g.tap}} {
		if f.v != "" {
			args = append(args, f.flag, f.v)
		}
	}
	return args
}

func (g badGuest) manifest() string {
	var b strings.Builder
	fmt.Fprintf(&b, "guests:\n  - name: g\n    kernel: %s\n", g.kernel)
	for _, f := range []struct{ key, v string }{{"initrd", g.initrd}, {"cpus", g.cpus}, {"memory", g.memory}} {
		if f.v != "" {
			fmt.Fprintf(&b, "    %s: %s\n", f.key, f.v)
		}
	}
	if g.disk != "" {
		fmt.Fprintf(&b, "    disks:\n      - path: %s\n", g.disk)
	}
	if g.tap != "" {
		fmt.Fprintf(&b, "    nets:\n      - tap: %s\n", g.tap)
	}
	return b.String()
}

// TestRunAndSystemCheckAgree feeds each bad guest to `tandem run` and, as
// a manifest, to `tandem system --check`: both must refuse it before
// anything runs (neither opens /dev/kvm), in one line naming the same
// field or file. The manifest's error names its file:line and the guest.
func TestRunAndSystemCheckAgree(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, filepath.Join(dir, name), data) }
	kernel, err := fakekernel.Write(dir, "vmlinuz")
	if err != nil {
		t.Fatal(err)
	}
	random := write("random", bytes.Repeat([]byte{0x5a, 0xc3, 0x17, 0x88}, 4096))
	// A bzImage cut short: the magic is there, the rest is not.
	trunc := make([]byte, 0x210)
	copy(trunc[0x202:], "HdrS")
	truncated := write("truncated-bzImage", trunc)
	// An arm64 Image header.
	img := make([]byte, 64)
	copy(img[0x38:], "ARM\x64")
	arm64Image := write("Image", img)
	initrd := write("initrd.img", []byte("initrd"))
	gone := func(name string) string { return filepath.Join(dir, name) }
	truncWant := []string{"kernel", truncated}
	if kvm.HostArch == "x86_64" {
		truncWant = append(truncWant, "boot_flag")
	}

	tests := []struct {
		name  string
		guest badGuest
		skip  bool
		want  []string // in both errors
	}{
		{"random-bytes kernel", badGuest{kernel: random}, false, []string{"kernel", random, "not a bzImage, arm64 Image, zImage or ELF executable"}},
		{"truncated bzImage", badGuest{kernel: truncated}, false, truncWant},
		{"arm64 Image on this host", badGuest{kernel: arm64Image}, kvm.HostArch == "arm64", []string{"kernel", arm64Image, "arm64 guest on an " + kvm.HostArch + " host"}},
		{"cpus 0", badGuest{kernel: kernel, cpus: "0"}, false, []string{"cpus", "0: must be between 1 and 64"}},
		{"memory not a size", badGuest{kernel: kernel, memory: "lots"}, false, []string{"memory", `size "lots": want a number`}},
		{"missing disk", badGuest{kernel: kernel, disk: gone("gone.img")}, false, []string{"disk", gone("gone.img"), "no such file or directory"}},
		{"missing initrd", badGuest{kernel: kernel, initrd: gone("gone.cpio")}, false, []string{"initrd", gone("gone.cpio"), "no such file or directory"}},
		{"TAP that does not exist", badGuest{kernel: kernel, initrd: initrd, tap: "tandem-no-tap"}, false, []string{"net", "tandem-no-tap", "no such interface", "ip tuntap add tandem-no-tap mode tap"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip {
				t.Skipf("skipping: this %s host runs the guest", kvm.HostArch)
			}
			var stdout, stderr bytes.Buffer
			runErr := run(tt.guest.runArgs(), &stdout, &stderr)
			manifest := filepath.Join(t.TempDir(), "system.yaml")
			if err := os.WriteFile(manifest, []byte(tt.guest.manifest()), 0o644); err != nil {
				t.Fatal(err)
			}
			stdout.Reset()
			checkErr := run([]string{"system", "--check", manifest}, &stdout, &stderr)
			for _, r := range []struct {
				what string
				err  error
			}{{"tandem run", runErr}, {"tandem system --check", checkErr}} {
				if r.err == nil {
					t.Errorf("%s = nil error, want a refusal mentioning %q", r.what, tt.want)
					continue
				}
				msg := r.err.Error()
				t.Logf("%s: %s", r.what, msg)
				if strings.Contains(msg, "\n") {
					t.Errorf("%s error spans lines: %q", r.what, msg)
				}
				for _, w := range tt.want {
					if !strings.Contains(msg, w) {
						t.Errorf("%s = %q, want it to mention %q", r.what, msg, w)
					}
				}
				if strings.Contains(msg, kvm.DevicePath) {
					t.Errorf("%s = %q: refused for KVM, not for the input", r.what, msg)
				}
			}
			if got := exitCode(runErr); runErr != nil && got != int(vmm.ExitFatal) {
				t.Errorf("exit status of tandem run = %d, want %d (vmm.ExitFatal: no retry would help)", got, vmm.ExitFatal)
			}
			if checkErr != nil && !strings.HasPrefix(checkErr.Error(), manifest+":") || checkErr != nil && !strings.Contains(checkErr.Error(), `guest "g": `) {
				t.Errorf("tandem system --check = %q, want it to start with %s:LINE and name guest \"g\"", checkErr, manifest)
			}
			if strings.Contains(stdout.String(), "fits this host") {
				t.Errorf("tandem system --check printed %q for a manifest it should refuse", stdout.String())
			}
		})
	}

	// What only a system has: the same checks refuse these manifests.
	host, err := system.DetectHost()
	if err != nil {
		t.Fatalf("DetectHost() = %v", err)
	}
	every := strings.Trim(strings.ReplaceAll(fmt.Sprint(host.CPUs), " ", ", "), "[]")
	systemOnly := []struct {
		name, manifest string
		want           []string
	}{
		{"two control guests", fmt.Sprintf("guests:\n  - name: a\n    role: control\n    kernel: %s\n  - name: b\n    role: control\n    kernel: %s\n", kernel, kernel),
			[]string{":6: ", `guest "b": role: control: guest "a" (line 3) is the control guest already`}},
		{"no housekeeping core", fmt.Sprintf("guests:\n  - name: a\n    kernel: %s\n    host-cpus: [%s]\n", kernel, every),
			[]string{":4: ", `guest "a": host-cpus: every core of this host`, "leave at least one out"}},
		{"fits", fmt.Sprintf("guests:\n  - name: a\n    role: control\n    kernel: %s\n    initrd: %s\n  - name: b\n    kernel: %s\n", kernel, initrd, kernel), nil},
	}
	for _, tt := range systemOnly {
		t.Run(tt.name, func(t *testing.T) {
			manifest := filepath.Join(t.TempDir(), "system.yaml")
			if err := os.WriteFile(manifest, []byte(tt.manifest), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err := run([]string{"system", "--check", manifest}, &stdout, &stderr)
			if tt.want == nil {
				if err != nil || !strings.Contains(stdout.String(), "2 guests, fits this host") {
					t.Errorf("tandem system --check = %v, printed %q; want it to fit", err, stdout.String())
				}
				return
			}
			if err == nil {
				t.Fatalf("tandem system --check = nil error, printed %q; want a refusal", stdout.String())
			}
			for _, w := range append([]string{manifest}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("tandem system --check = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}
