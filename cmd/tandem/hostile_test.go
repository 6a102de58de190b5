package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/internal/hostileguest"
	"github.com/tandem-hv/tandem/internal/kvmtest"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestHostileGuest runs the hostile guest (internal/hostileguest) in a
// `tandem vmm` as the supervisor starts one, sandboxed, from a manifest
// that gives it one of every virtio device: a read-only disk, a NIC on a
// TAP, virtio-console, virtio-rng, vsock, and a display (virtio-gpu, a
// keyboard and a touch screen). The guest writes garbage into every
// register and queue of each, into empty device slots, the 16550, the
// i8042 and the ACPI registers, with its queues' rings in garbage, past
// the end of its RAM and wrapping, and changed after each notification.
// Then it resets each virtio device and uses it. What the test checks:
//   - the VMM survives and the guest ends as it asked, by powering off;
//   - after the attack every device works again once reset: the disk's
//     first sector reads back, virtio-net sends a frame, virtio-console
//     prints, virtio-rng answers, vsock sends a connection request, the
//     GPU reports its display, each input device its name;
//   - each device's failures are logged (DEVICE_NEEDS_RESET), and the log
//     stays bounded: far fewer lines than the guest made accesses;
//   - no device model panicked, and the read-only disk is unchanged.
func TestHostileGuest(t *testing.T) {
	var kernel string
	if !kvmtest.InEmulatedHost() {
		for _, tool := range hostileguest.Tools {
			testenv.RequireCommand(t, tool, map[string]string{"gcc": "gcc", "objcopy": "binutils"}[tool])
		}
		var err error
		if kernel, err = hostileguest.Build(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	if !kvmtest.HereWith(t, map[string]string{"hostile.bzImage": kernel}) {
		return // it ran in an emulated host
	}
	kernel = kvmtest.Carried("hostile.bzImage", kernel)

	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.img")
	sector := []byte("TANDEM-DISK-SECTOR-ZERO: the hostile guest reads this back\n")
	content := append(append([]byte(nil), sector...), make([]byte, 1<<20-len(sector))...)
	if err := os.WriteFile(disk, content, 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tap := persistentTAP(t, "hostile0")
	manifest := filepath.Join(dir, "system.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(`guests:
  - name: hostile
    kernel: %s
    cmdline: rounds=3
    memory: %dM
    disks: [{path: %s, readonly: true}]
    nets: [{tap: %s}]
    vsock: {cid: 3}
    display: {width: 320, height: 200}
`, kernel, hostileguest.MemoryMiB, disk, tap)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "vmm", "--manifest", manifest, "--guest", "hostile")
	cmd.Env = append(os.Environ(), asTandemEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the hostile guest did not end within 5 minutes\nconsole:\n%s\nVMM log:\n%s", stdout.String(), tail(stderr.String(), 40))
	}
	console := strings.ReplaceAll(stdout.String(), "\r", "")
	log := stderr.String()
	t.Logf("the hostile guest ran for %v; its lines:\n%s", time.Since(start).Round(time.Millisecond), markerLines(console))
	if err != nil {
		t.Fatalf("tandem vmm ended with %v, want status 0 (the guest's power-off)\nconsole:\n%s\nVMM log:\n%s", err, console, tail(log, 40))
	}

	checks := []struct{ name, want string }{
		{"the attack ran to its end", hostileguest.GarbageDone},
		{"the 16550 works after garbage and a re-initialisation", "HOSTILE: uart works"},
		{"the read-only disk reads back after its reset", "HOSTILE: disk works: TANDEM-DISK-SECTOR-ZERO"},
		{"virtio-console prints after its reset", "HOSTILE: virtio-console works"},
		{"virtio-rng answers after its reset", "HOSTILE: rng works: "},
		{"virtio-net sends after its reset", "HOSTILE: net works: 60 bytes sent"},
		{"vsock sends after its reset", "HOSTILE: vsock works: cid 3"},
		{"the GPU answers after its reset", "HOSTILE: gpu works: 320x200"},
		{"the keyboard answers after its reset", "HOSTILE: input works: Tandem virtio keyboard"},
		{"the touch screen answers after its reset", "HOSTILE: input works: Tandem virtio touchscreen"},
		{"every device worked", hostileguest.Done + " ok=8 failed=0"},
	}
	for _, c := range checks {
		if !strings.Contains(console, c.want) {
			t.Errorf("%s: the console lacks %q", c.name, c.want)
		}
	}
	for _, dev := range []string{"virtio-blk", "virtio-console", "virtio-rng", "virtio-net", "virtio-vsock", "virtio-gpu", "virtio-input"} {
		if !regexp.MustCompile(regexp.QuoteMeta(dev) + `: .*device needs reset`).MatchString(log) {
			t.Errorf("%s: no failure logged (device needs reset): the garbage never reached it", dev)
		}
	}
	if strings.Contains(log, "device model failed") || strings.Contains(log, "panic") {
		t.Errorf("a device model panicked:\n%s", tail(log, 40))
	}
	m := regexp.MustCompile(`garbage done: \d+ rounds, (\d+) register accesses`).FindStringSubmatch(console)
	if m != nil {
		accesses, _ := strconv.Atoi(m[1])
		lines := strings.Count(log, "\n")
		t.Logf("%d register accesses, %d lines of VMM log", accesses, lines)
		if lines*50 > accesses {
			t.Errorf("%d lines of VMM log for %d garbage accesses: want the log bounded (fewer than one line in 50)", lines, accesses)
		}
	}
	if got, err := os.ReadFile(disk); err != nil || !bytes.Equal(got, content) {
		t.Errorf("the read-only disk changed under the guest's garbage (%v)", err)
	}
}

// persistentTAP creates a TAP interface that outlives its file (TUNSETIFF,
// TUNSETPERSIST), up, for a VMM to attach to, and removes it when the
// test ends.
func persistentTAP(t *testing.T, name string) string {
	t.Helper()
	tun := func() *os.File {
		f, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("a TAP for virtio-net: %v", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			t.Fatal(err)
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNSETIFF, ifr); err != nil {
			t.Fatalf("TUNSETIFF %s: %v", name, err)
		}
		return f
	}
	f := tun()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.TUNSETPERSIST, 1); err != nil {
		t.Fatalf("TUNSETPERSIST %s: %v", name, err)
	}
	f.Close()
	t.Cleanup(func() {
		f := tun()
		unix.IoctlSetInt(int(f.Fd()), unix.TUNSETPERSIST, 0)
		f.Close()
	})
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	ifr, _ := unix.NewIfreq(name)
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCGIFFLAGS %s: %v", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCSIFFLAGS %s up: %v", name, err)
	}
	return name
}

// markerLines are the console's lines of the hostile guest, without the
// garbage it wrote through the 16550.
func markerLines(console string) string {
	var b strings.Builder
	for _, l := range strings.Split(console, "\n") {
		if i := strings.Index(l, "HOSTILE"); i >= 0 {
			b.WriteString("  " + l[i:] + "\n")
		}
	}
	return b.String()
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
