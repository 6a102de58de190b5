package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system"
)

// TestExamples checks the example files the README shows: each is in the
// README word for word, and each is accepted by the loader a user gives
// it to (`tandem run guest.yaml`, `tandem system system.yaml`), next to
// stand-ins for the kernels, initramfs images and disks it names.
func TestExamples(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		file  string
		files []string // the files it names, relative to it
		load  func(path string) error
	}{
		{"guest.yaml", []string{"vmlinuz", "initrd.img", "root.img", "maps.img"}, func(p string) error {
			_, err := loadGuestFile(p)
			return err
		}},
		{"system.yaml", []string{"vmlinuz", "control.cpio.gz", "info.cpio.gz", "media.img"}, func(p string) error {
			_, err := system.LoadManifest(p)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("../../examples", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(readme), "```yaml\n"+string(b)+"```") {
				t.Errorf("README.md does not show examples/%s as it is: change both together", tt.file)
			}
			dir := t.TempDir()
			p := filepath.Join(dir, tt.file)
			if strings.Contains(string(b), "tap: tap0") {
				// The loader checks that the TAP exists: a TAP of the
				// test's own stands in for tap0.
				b = []byte(strings.ReplaceAll(string(b), "tap: tap0", "tap: "+testTAP(t)))
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte("stand-in"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			// A kernel this host's VMM accepts in place of vmlinuz.
			if _, err := fakekernel.Write(dir, "vmlinuz"); err != nil {
				t.Fatal(err)
			}
			if err := tt.load(p); err != nil {
				t.Errorf("examples/%s: %v", tt.file, err)
			}
		})
	}
}

// testTAP creates a TAP interface for the test and removes it after.
func testTAP(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tdmex%d", os.Getpid()%100000)
	if b, err := exec.Command("ip", "tuntap", "add", name, "mode", "tap").CombinedOutput(); err != nil {
		if testenv.InCI() {
			t.Fatalf("ip tuntap add %s: %v: %s", name, err, b)
		}
		t.Skipf("skipping: creating a TAP needs CAP_NET_ADMIN and iproute2: %v: %s", err, b)
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return name
}
