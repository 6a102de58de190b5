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
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
		return writeFile(t, filepath.Join(dir, name), bytes.Repeat([]byte{0x5a}, size))
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

var (
	tandemOnce sync.Once
	tandemBin  string
	tandemErr  error
)

// buildTandem builds this command once per test run with `go build`, as
// a user would, into a directory removed when the tests end.
func buildTandem(t *testing.T) string {
	t.Helper()
	goBin := testenv.RequireCommand(t, "go", "golang-go")
	tandemOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tandem-bin")
		if err != nil {
			tandemErr = err
			return
		}
		tandemBin = filepath.Join(dir, "tandem")
		out, err := exec.Command(goBin, "build", "-o", tandemBin, ".").CombinedOutput()
		if err != nil {
			tandemErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if tandemErr != nil {
		t.Fatal(tandemErr)
	}
	return tandemBin
}

// removeTandemBin removes the tandem binary tests built, once they are
// done (TestMain).
func removeTandemBin() {
	if tandemBin != "" {
		os.RemoveAll(filepath.Dir(tandemBin))
	}
}

// testCache is the test-data cache ($TANDEM_CACHE, else build/cache at
// the repository's root), as an absolute path, with Debian's arm64 kernel.
func testCache(t *testing.T) string {
	t.Helper()
	c := testCacheRoot(t)
	testenv.RequireFile(t, filepath.Join(c, "arm64", "vmlinuz"), "run `make testdata`, or set TANDEM_CACHE")
	return c
}

// qemuSystem writes a manifest for the QEMU virt board under dir: one
// guest whose kernel is Debian's arm64 kernel from the cache (a link).
func qemuSystem(t *testing.T, dir, cache string) string {
	t.Helper()
	sys := filepath.Join(dir, "system")
	os.MkdirAll(sys, 0o755)
	if err := os.Symlink(filepath.Join(cache, "arm64", "vmlinuz"), filepath.Join(sys, "vmlinuz")); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(sys, "system.yaml")
	if err := os.WriteFile(m, []byte("guests:\n  - name: control\n    role: control\n    kernel: vmlinuz\n    memory: 128M\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// tandemCmd is the built tandem with args, run from the repository's
// root (where it finds the source to build the board's tandem), with the
// cache, TMPDIR and SOURCE_DATE_EPOCH (unset when epoch is "") given.
func tandemCmd(t *testing.T, tandem, cache, tmp, epoch string, args ...string) *exec.Cmd {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tandem, args...)
	cmd.Dir = root
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") && !strings.HasPrefix(kv, "TMPDIR=") && !strings.HasPrefix(kv, "TANDEM_CACHE=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "TANDEM_CACHE="+cache, "TMPDIR="+tmp)
	if epoch != "" {
		cmd.Env = append(cmd.Env, "SOURCE_DATE_EPOCH="+epoch)
	}
	return cmd
}

// TestImageBuildSignalled runs the real tandem binary building the QEMU
// virt board's image with Debian's cached kernel, signals it mid-build
// (once a given temporary file appears, or a given stage is reported),
// and checks
// that it exits with the signal's status, saying so, that the output
// directory and $TMPDIR hold exactly what they held before (no temporary
// file, no half-written image, the older image of the same name as it
// was), and that none of its children is left running.
func TestImageBuildSignalled(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds tandem and image builds to interrupt (-short)")
	}
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	cache := testCache(t)
	tandem := buildTandem(t)
	dir := t.TempDir()
	manifest := qemuSystem(t, dir, cache)
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, bytes.Repeat([]byte{0xa5}, 1<<20), 0o644)
	// A 128 GiB data partition keeps mke2fs busy for a second or so,
	// and gives the copy and the block map a few hundred MiB of file
	// system metadata.
	slow := []string{"--host-initrd", initrd, "--data-size", "128G"}
	tests := []struct {
		name string
		args []string
		// The moment to signal: once file exists (a glob under the
		// test's directory, which holds out, the output directory, and
		// tmp, the build's $TMPDIR), or once stage is reported.
		file, stage string
		sig         syscall.Signal
		// group signals tandem's process group, as a Ctrl-C in a
		// terminal does: mke2fs gets the signal too.
		group bool
	}{
		{"SIGINT as go starts building the host's tandem", nil, "tmp/initramfs-go-*/go-build*", "", syscall.SIGINT, false},
		{"SIGINT while go links the host's tandem", nil, "tmp/initramfs-go-*/go-build*/b001/exe", "", syscall.SIGINT, false},
		{"Ctrl-C while go links the host's tandem", nil, "tmp/initramfs-go-*/go-build*/b001/exe", "", syscall.SIGINT, true},
		{"SIGINT while mke2fs runs", slow, "out/.x.img.work*/data.ext4", "", syscall.SIGINT, false},
		{"Ctrl-C while mke2fs runs", slow, "out/.x.img.work*/data.ext4", "", syscall.SIGINT, true},
		{"SIGTERM while mke2fs runs", slow, "out/.x.img.work*/data.ext4", "", syscall.SIGTERM, false},
		{"SIGINT while the data partition is copied", slow, "", "copying the data partition", syscall.SIGINT, false},
		{"SIGINT while the block map is written", slow, "", "writing the block map", syscall.SIGINT, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.args == nil && runtime.GOARCH == "arm64" {
				t.Skip("skipping: on an arm64 machine the host initramfs takes this tandem as it is, too quick to interrupt")
			}
			base := t.TempDir()
			out, tmp := filepath.Join(base, "out"), filepath.Join(base, "tmp")
			os.MkdirAll(out, 0o755)
			os.MkdirAll(tmp, 0o755)
			os.WriteFile(filepath.Join(out, "x.img"), []byte("an older image\n"), 0o644)
			os.WriteFile(filepath.Join(out, "x.bmap"), []byte("its block map\n"), 0o644)
			os.WriteFile(filepath.Join(out, "notes.txt"), []byte("kept\n"), 0o644)
			before, tmpBefore := snapshot(t, out), snapshot(t, tmp)

			args := append([]string{"image", "build", "--board", "qemu-virt-arm64", "--manifest", manifest,
				"-o", filepath.Join(out, "x.img"), "--fetch=false"}, tt.args...)
			cmd := tandemCmd(t, tandem, cache, tmp, "", args...)
			var stdout, stderr lockedBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer cmd.Process.Kill()

			var exited error
			var seen bool
			start := time.Now()
		poll:
			for deadline := time.After(5 * time.Minute); ; {
				if m, _ := filepath.Glob(filepath.Join(base, tt.file)); tt.file != "" && len(m) > 0 {
					seen = true
					break
				}
				if tt.stage != "" && strings.Contains(stderr.String(), tt.stage) {
					seen = true
					break
				}
				select {
				case exited = <-done:
					break poll
				case <-deadline:
					t.Fatalf("no %s%s after 5 minutes", tt.file, tt.stage)
				case <-time.After(2 * time.Millisecond):
				}
			}
			if !seen {
				t.Fatalf("tandem image build ended (%v) before %s%s:\n%s%s", exited, tt.file, tt.stage, stdout.String(), stderr.String())
			}
			to := cmd.Process.Pid
			if tt.group {
				to = -to
			}
			if err := syscall.Kill(to, tt.sig); err != nil {
				t.Fatal(err)
			}
			signalled := time.Now()
			select {
			case exited = <-done:
			case <-time.After(time.Minute):
				t.Fatalf("tandem image build still running a minute after %v", tt.sig)
			}
			t.Logf("%s%s after %.2fs; %v sent; exited %.2fs later: %v", tt.file, tt.stage, signalled.Sub(start).Seconds(), tt.sig, time.Since(signalled).Seconds(), exited)
			t.Logf("stderr:\n%s", stderr.String())
			var ee *exec.ExitError
			if !errors.As(exited, &ee) {
				t.Fatalf("tandem image build exited with %v, want a non-zero status", exited)
			}
			if want := 128 + int(tt.sig); ee.ExitCode() != want {
				t.Errorf("exit status %d, want %d (128 + %v)", ee.ExitCode(), want, tt.sig)
			}
			want := "interrupted by " + map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGTERM: "SIGTERM"}[tt.sig]
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q", want)
			}
			sameTree(t, "output directory", before, snapshot(t, out))
			sameTree(t, "TMPDIR", tmpBefore, snapshot(t, tmp))
			for wait := time.Now(); ; time.Sleep(10 * time.Millisecond) {
				left := processesNaming(base)
				if len(left) == 0 {
					break
				}
				// Every child is waited for before tandem exits: any still
				// there is an orphan.
				if time.Since(wait) > 100*time.Millisecond {
					t.Errorf("processes still running after tandem exited: %q", left)
					break
				}
			}
		})
	}
}

// processesNaming lists the command lines of the running processes that
// name path in their arguments: an interrupted build's children (go's
// compiler and linker, mke2fs) all do.
func processesNaming(path string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(path)) {
			out = append(out, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}

// lockedBuffer is a bytes.Buffer a child process writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
