package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/vmm"
)

// asTandemEnv makes the test binary run as tandem itself (see TestMain),
// for tests that start `tandem vmm` children.
const asTandemEnv = "TANDEM_TEST_AS_TANDEM"

func TestMain(m *testing.M) {
	if os.Getenv(asTandemEnv) == "1" {
		main()
		os.Exit(0)
	}
	if dir := os.Getenv(fakeBootEnv); dir != "" {
		os.Exit(fakeBoot(dir))
	}
	code := m.Run()
	removeTandemBin()
	removeDemoImage()
	os.Exit(code)
}

// TestVMMFatalStatus checks that `tandem vmm` ends with vmm.ExitFatal,
// not the VMM-error status a supervisor restarts, for what no restart
// cures: a kernel it refuses, a manifest that no longer loads (a kernel
// gone since the supervisor checked it), a guest not in the manifest.
// None of it opens /dev/kvm.
func TestVMMFatalStatus(t *testing.T) {
	dir := t.TempDir()
	random := filepath.Join(dir, "random")
	if err := os.WriteFile(random, bytes.Repeat([]byte{0x5a, 0xc3, 0x17, 0x88}, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := func(kernel string) string {
		p := filepath.Join(t.TempDir(), "system.yaml")
		if err := os.WriteFile(p, []byte("guests:\n  - name: g\n    kernel: "+kernel+"\n    restart: {policy: always}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, manifest, guest, want string
	}{
		{"kernel refused", manifest(random), "g", "kernel " + random + ": not a bzImage, arm64 Image, zImage or ELF executable"},
		{"kernel gone", manifest(filepath.Join(dir, "gone")), "g", `guest "g": kernel: ` + filepath.Join(dir, "gone") + ": no such file or directory"},
		{"no such guest", manifest(random), "h", `no guest "h"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run([]string{"vmm", "--manifest", tt.manifest, "--guest", tt.guest}, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("tandem vmm = %v, want an error containing %q", err, tt.want)
			}
			if got := exitCode(err); got != int(vmm.ExitFatal) {
				t.Errorf("exit status of tandem vmm = %d (%v), want %d, vmm.ExitFatal", got, err, vmm.ExitFatal)
			}
		})
	}
}

// TestSupervisorLeavesFatalGuest runs `tandem system`'s supervisor over
// a real `tandem vmm` child (this test binary as tandem) whose kernel is
// random bytes, a manifest that CheckHost would refuse but Run does not
// check: the VMM refuses the kernel with status vmm.ExitFatal, and the
// guest, under restart policy always, is not restarted.
func TestSupervisorLeavesFatalGuest(t *testing.T) {
	t.Setenv(asTandemEnv, "1")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, bytes.Repeat([]byte{0x5a, 0xc3, 0x17, 0x88}, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "system.yaml")
	if err := os.WriteFile(p, []byte("guests:\n  - name: g\n    role: control\n    kernel: vmlinuz\n    restart: {policy: always, backoff: 10ms}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := system.LoadManifest(p)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "control.sock")
	var out, log bytes.Buffer
	s := &system.Supervisor{M: m, VMM: []string{os.Args[0], "vmm", "--manifest", p}, RunDir: filepath.Join(dir, "run"), ControlSocket: sock, Out: &out, Log: &log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var ps bytes.Buffer
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ps.Reset()
		if system.Control(sock, "ps", nil, &ps) == nil && strings.Contains(ps.String(), " failed ") {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // twenty back-offs, were it restarted
	ps.Reset()
	system.Control(sock, "ps", nil, &ps)
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not stop")
	}
	want := "tandem: g: cannot run: kernel " + kernel + ": not a bzImage, arm64 Image, zImage or ELF executable (a raw binary needs kernel-format raw); not restarted, as no restart can cure it: fix it, then tandem start g"
	if !strings.Contains(log.String(), want) || strings.Count(log.String(), "g: started") != 1 || strings.Contains(log.String(), "restarting") {
		t.Errorf("supervisor log:\n%s\nwant one start and the line %q, no restart", log.String(), want)
	}
	if row := ps.String(); !strings.Contains(row, "g              control       failed ") || !strings.Contains(row, "cannot run: kernel "+kernel) {
		t.Errorf("tandem ps:\n%s\nwant g failed, with the VMM's reason", row)
	}
}
