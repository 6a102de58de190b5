package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/images"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/measure"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// measuredSystem is the manifest of TestMeasuredBootAgainstImage: a
// control guest that requires its measurements to match, and an
// infotainment guest that starts after it.
const measuredSystem = `guests:
  - name: control
    role: control
    kernel: vmlinuz
    initrd: control.cpio
    cmdline: console=ttyAMA0 quiet
    memory: 128M
    measured: required
  - name: infotainment
    kernel: info-vmlinuz
    memory: 256M
    after: [control]
`

// TestMeasuredBootAgainstImage builds the QEMU virt board's image with
// the real tandem binary from a manifest of Debian's arm64 kernel, takes
// the data partition's files out of the image as a board would mount
// them, and runs the supervisor on them with swtpm as the board's TPM.
// As built, PCR 15 read back once the guests run equals, byte for byte,
// what tandem image build predicted, and tandem attest agrees. With the
// control kernel changed by one byte after the build, the control guest
// does not start and says the kernel is why, the infotainment guest
// starts, and tandem attest names the kernel. The guests' VMMs are
// stand-ins (a shell that sleeps): measuring happens before any VMM.
func TestMeasuredBootAgainstImage(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping: builds tandem and an image (-short)")
	}
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	debugfs := testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	cache := testCache(t)
	tandem := buildTandem(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "system")
	os.MkdirAll(src, 0o755)
	kernel, err := os.ReadFile(filepath.Join(cache, "arm64", "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"vmlinuz": kernel, "info-vmlinuz": kernel, "control.cpio": []byte("070701 an initramfs"),
		"system.yaml": []byte(measuredSystem),
	} {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "board.img")
	tmp := filepath.Join(dir, "tmp")
	os.MkdirAll(tmp, 0o755)
	out, err := tandemCmd(t, tandem, cache, tmp, "", "image", "build", "--board", "qemu-virt-arm64",
		"--manifest", filepath.Join(src, "system.yaml"), "-o", img, "--fetch=false").CombinedOutput()
	if err != nil {
		t.Fatalf("tandem image build: %v\n%s", err, out)
	}
	expectedFile := filepath.Join(dir, "board."+system.ExpectedMeasurements)
	if !strings.Contains(string(out), "expected measurements: "+expectedFile) {
		t.Errorf("tandem image build does not name %s:\n%s", expectedFile, out)
	}
	expected, err := measure.LoadExpected(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	board := extractData(t, debugfs, img, filepath.Join(dir, "data"))
	if b, err := os.ReadFile(filepath.Join(board, system.ExpectedMeasurements)); err != nil || !bytes.Equal(b, expected.Marshal()) {
		t.Fatalf("the data partition's %s (%v) differs from %s", system.ExpectedMeasurements, err, expectedFile)
	}

	t.Run("as built", func(t *testing.T) {
		tpm, log := runMeasured(t, board, map[string]string{"control": system.StateRunning, "infotainment": system.StateRunning})
		got := readTPMPCRT(t, tpm)
		if got != expected.Value {
			t.Errorf("PCR %d = %x, tandem image build predicted %x", measure.PCR, got, expected.Value)
		}
		var stdout bytes.Buffer
		if err := run([]string{"attest", "--expected", expectedFile, "--tpm", tpm, "--log", log}, &stdout, &bytes.Buffer{}); err != nil {
			t.Errorf("tandem attest = %v\n%s", err, stdout.String())
		}
		if want := fmt.Sprintf("PCR %d = %x: as expected", measure.PCR, expected.Value); !strings.Contains(stdout.String(), want) {
			t.Errorf("tandem attest printed %q, want %q", stdout.String(), want)
		}
		stdout.Reset()
		if err := run([]string{"measurements", "--tpm", tpm, "--log", log}, &stdout, &bytes.Buffer{}); err != nil {
			t.Errorf("tandem measurements = %v\n%s", err, stdout.String())
		}
		for _, want := range []string{"EV_IPL", "tandem control kernel vmlinuz", "tandem infotainment manifest", fmt.Sprintf("PCR %d in the TPM:  %x", measure.PCR, expected.Value)} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("tandem measurements lacks %q:\n%s", want, stdout.String())
			}
		}
	})

	t.Run("control kernel changed by one byte", func(t *testing.T) {
		k := filepath.Join(board, "vmlinuz")
		b, err := os.ReadFile(k)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(k, b, 0o644); err != nil {
			t.Fatal(err)
		}
		defer func() {
			b[len(b)/2] ^= 1
			os.WriteFile(k, b, 0o644)
		}()
		tpm, log := runMeasured(t, board, map[string]string{"control": system.StateFailed, "infotainment": system.StateRunning})
		var stdout bytes.Buffer
		err = run([]string{"attest", "--expected", expectedFile, "--tpm", tpm, "--log", log}, &stdout, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "control kernel vmlinuz differs: sha256 ") {
			t.Errorf("tandem attest = %v, want the control kernel named\n%s", err, stdout.String())
		}
		if !strings.Contains(stdout.String(), "MISMATCH control kernel vmlinuz differs") {
			t.Errorf("tandem attest printed %q, want the kernel's mismatch", stdout.String())
		}
	})
}

// extractData copies the image's data partition out with debugfs, as
// the board mounts it, and returns the directory.
func extractData(t *testing.T, debugfs, img, dir string) string {
	t.Helper()
	in, err := images.Inspect(img)
	if err != nil {
		t.Fatal(err)
	}
	var data *images.Partition
	for i, p := range in.Partitions {
		if p.Name == "data" {
			data = &in.Partitions[i]
		}
	}
	if data == nil {
		t.Fatalf("%s has no data partition: %+v", img, in.Partitions)
	}
	os.MkdirAll(dir, 0o755)
	if out, err := exec.Command(debugfs, "-R", "rdump / "+dir, fmt.Sprintf("%s?offset=%d", img, data.Start)).CombinedOutput(); err != nil {
		t.Fatalf("debugfs rdump: %v\n%s", err, out)
	}
	return dir
}

// runMeasured runs the supervisor on dir's system.yaml with a fresh
// swtpm, stand-in VMMs and the expected measurements beside the
// manifest, until tandem ps shows the guests in the states wanted; it
// returns the TPM's socket and the event log.
func runMeasured(t *testing.T, dir string, want map[string]string) (tpm, log string) {
	t.Helper()
	run := t.TempDir()
	sw, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(run, "tpm"), Socket: filepath.Join(run, "tpm.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Stop() })
	m, err := system.LoadManifest(filepath.Join(dir, "system.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	control := filepath.Join(run, "control.sock")
	s := &system.Supervisor{M: m, VMM: []string{"/bin/sh", "-c", "exec sleep 600", "vmm"},
		RunDir: run, ControlSocket: control, Out: &bytes.Buffer{}, Log: &logs, TPM: sw.Socket()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var rows string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var b bytes.Buffer
		if system.Control(control, "ps", nil, &b) != nil {
			continue
		}
		rows = b.String()
		ok := true
		for g, st := range want {
			ok = ok && strings.Contains(rows, g) && psState(rows, g) == st
		}
		if ok {
			return sw.Socket(), filepath.Join(run, system.MeasurementLog)
		}
	}
	t.Fatalf("tandem ps never showed %v:\n%s\nsupervisor log:\n%s", want, rows, logs.String())
	return "", ""
}

// psState is a guest's STATE column in tandem ps's output.
func psState(ps, guest string) string {
	for _, l := range strings.Split(ps, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[0] == guest {
			return f[2]
		}
	}
	return ""
}

func readTPMPCRT(t *testing.T, sock string) [32]byte {
	t.Helper()
	v, err := readTPMPCR(sock)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
