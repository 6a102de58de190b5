package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/images/initramfs"
)

// The demo system is what `make demo` boots on the QEMU virt board and
// internal/boardboot boots on QEMU's emulations of real boards: a
// control guest that publishes over vsock to an infotainment guest,
// both Debian's arm64 kernel with a program of guests/ as init.

// DemoModules are what the demo guests load: their console, a disk,
// vsock, and the watchdog driver (x86 kernels have the first, ARM ones
// both).
var DemoModules = []string{"virtio_mmio", "virtio_blk", "virtio_console", "vmw_vsock_virtio_transport",
	"wdat_wdt", "sp805_wdt"}

// DemoManifest is the arm64 demo system: the control guest on host core
// 1 at SCHED_FIFO 50, publishing to the infotainment guest over vsock.
// Its guests' consoles are the PL011 of Tandem's arm64 VM, whatever the
// host board. The infotainment guest has a display, on which it draws
// its dashboard: 640×360, a quarter of the default, since the demo's
// board is emulated in software and every frame is drawn and copied on it.
const DemoManifest = `# The Tandem demo system (internal/e2e.DemoManifest).
guests:
  - name: control
    role: control
    kernel: vmlinuz
    initrd: control.img
    # cryptomgr.notests: the stock kernel's known-answer tests of its
    # crypto algorithms took 0.55 s of the control guest's boot on the
    # emulated board (docs/bench-notes.md); the control loop uses none.
    cmdline: console=ttyAMA0 quiet panic=-1 cryptomgr.notests tandem.peer=4:5000
    memory: 160M
    host-cpus: [1]
    rt-priority: 50
    vsock:
      cid: 3
      allow: ["infotainment:5000"]
    restart: {policy: always}
  - name: infotainment
    role: infotainment
    kernel: vmlinuz
    initrd: info.img
    # tandem.stale=2s: on the demo's board, emulated in software, the
    # control guest's messages can pause for longer than the 500 ms after
    # which the dashboard shows the link down on a real board.
    cmdline: console=ttyAMA0 quiet panic=-1 tandem.stale=2s
    memory: 192M
    vsock:
      cid: 4
    display: {width: 640, height: 360}
    restart: {policy: always, backoff: 200ms}
    after: [control]
`

// DemoDisplayGuest is the demo guest with a display: its initramfs has
// DisplayModules too.
const DemoDisplayGuest = "infotainment"

// DemoGuests are the demo system's guests and the initramfs files its
// manifest names for them.
var DemoGuests = []struct{ Name, File string }{{"control", "control.img"}, {"infotainment", "info.img"}}

// Marker is a line a guest prints when it works: Expr matches it, What
// says what it is.
type Marker struct{ Guest, Expr, What string }

// DemoMarkers are the lines a demo run waits for, one per guest:
// tandem.until on the host's command line, and what the runs check on
// the guests' consoles. Each is a Go regexp without spaces, commas,
// quotes, backslashes or $ (the kernel command line splits at spaces,
// tandem.until at commas, and U-Boot's boot script quotes the command
// line).
var DemoMarkers = []Marker{
	{"control", `TANDEM-CONTROL.*sent=[1-9]`, "the control loop's report with messages sent"},
	{"infotainment", `TANDEM-INFO.received=[1-9][0-9]*.faults=0.crc=`, "the infotainment receiver's report with messages received and no faults"},
}

// UntilParam is tandem.until= for markers.
func UntilParam(markers []Marker) string {
	var l []string
	for _, m := range markers {
		l = append(l, m.Guest+":"+m.Expr)
	}
	return "tandem.until=" + strings.Join(l, ",")
}

// BuildDemoGuest writes an initramfs for kernel k with the Go program pkg
// as /init, built for goarch, and the DemoModules k has, listed in load
// order in /etc/tandem-modules (the guests' inits load them). goDir is
// where `go build` resolves pkg (any directory of the Tandem tree).
func BuildDemoGuest(file, pkg, goarch string, k Kernel, goDir string) error {
	return buildDemoGuest(file, pkg, goarch, k, goDir, DemoModules)
}

// VTPMModules are what the virtual-TPM test guest loads beyond
// DemoModules: the TIS driver, which Debian's amd64 kernels build in and
// its cloud-arm64 kernel as a module (tpm_tis_core comes with it).
var VTPMModules = append(slices.Clone(DemoModules), "tpm_tis")

// buildDemoGuest is BuildDemoGuest with the modules to load named.
func buildDemoGuest(file, pkg, goarch string, k Kernel, goDir string, modules []string) error {
	mods, order, err := initramfs.Modules(k.Modules, modules, true)
	if err != nil {
		return err
	}
	dir := "/lib/modules/" + filepath.Base(k.Modules)
	var list strings.Builder
	for _, p := range order {
		fmt.Fprintf(&list, "%s/%s\n", dir, p)
	}
	ents := append(initramfs.Console(), mods...)
	ents = append(ents,
		initramfs.Bytes("/etc/tandem-modules", []byte(list.String()), 0o644),
		initramfs.GoProgram("/init", pkg, goarch))
	if err := initramfs.Write(file, ents, initramfs.Options{Gzip: true, GoDir: goDir}); err != nil {
		return fmt.Errorf("building the guest initramfs %s (%s): %w", filepath.Base(file), pkg, err)
	}
	return nil
}

// WriteDemoSystem writes the arm64 demo system into dir, for `tandem
// image build --manifest dir/system.yaml`: the manifest, each guest's
// initramfs with initPkg(guest) as /init (guests/NAME normally; the
// DemoDisplayGuest's with DisplayModules too), and vmlinuz, a link to
// k's kernel. goDir is as for BuildDemoGuest.
func WriteDemoSystem(dir string, k Kernel, initPkg func(guest string) string, goDir string) error {
	return writeDemoSystem(dir, k, nil, initPkg, goDir, DemoManifest)
}

// RTControlKernel is the demo manifest's control guest kernel when it
// is Debian's PREEMPT_RT one (DemoImage.RTKernel).
const RTControlKernel = "vmlinuz-rt"

// rtManifest is manifest with the control guest booting RTControlKernel.
func rtManifest(manifest string) string {
	return strings.Replace(manifest, "    kernel: vmlinuz\n    initrd: control.img\n", "    kernel: "+RTControlKernel+"\n    initrd: control.img\n", 1)
}

// writeDemoSystem is WriteDemoSystem with the manifest given and, when
// rt is set, the control guest on that kernel (its initramfs with that
// kernel's modules, the kernel linked as RTControlKernel).
func writeDemoSystem(dir string, k Kernel, rt *Kernel, initPkg func(guest string) string, goDir, manifest string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, g := range DemoGuests {
		mods := DemoModules
		if g.Name == DemoDisplayGuest {
			mods = append(append([]string(nil), DemoModules...), DisplayModules...)
		}
		gk := k
		if rt != nil && g.Name == "control" {
			gk = *rt
		}
		if err := buildDemoGuest(filepath.Join(dir, g.File), initPkg(g.Name), "arm64", gk, goDir, mods); err != nil {
			return err
		}
	}
	links := map[string]string{"vmlinuz": k.Image}
	if rt != nil {
		links[RTControlKernel] = rt.Image
		manifest = rtManifest(manifest)
	}
	for name, target := range links {
		link := filepath.Join(dir, name)
		os.Remove(link)
		abs, err := filepath.Abs(target)
		if err != nil {
			return err
		}
		if err := os.Symlink(abs, link); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "system.yaml"), []byte(manifest), 0o644)
}

// DemoGuestPkg is the init of a demo guest: guests/NAME.
func DemoGuestPkg(guest string) string { return "github.com/tandem-hv/tandem/guests/" + guest }

// DemoBoard is the board the demo image is built for and booted on.
const DemoBoard = "qemu-virt-arm64"

// DemoImage describes a demo image to build.
type DemoImage struct {
	// Dir is the work directory: the system goes into Dir/system, the
	// image is Dir/tandem-qemu-virt-arm64.img (an absolute path).
	Dir string
	// Tandem is the tandem binary that builds it; Kernel the arm64
	// kernel of the host and the guests.
	Tandem string
	Kernel Kernel
	// InitPkg is each guest's /init (DemoGuestPkg normally).
	InitPkg func(guest string) string
	// Cmdline is added to the host's kernel command line.
	Cmdline string
	// GoDir is as for BuildDemoGuest; Out gets the build's output.
	GoDir string
	Out   io.Writer
	// TPMHost, when set, is the host kernel of a board with a TPM
	// (Arm64CloudKernel: Debian's arm64 kernel does not build tpm_tis),
	// and the control guest is measured: required: it starts only when
	// the board's TPM measured it as the image predicted.
	TPMHost *Kernel
	// BoardDisplay shows the infotainment guest's display on the board's
	// own (display.board: the host's /dev/fb0), which the board then
	// needs: the QEMU virt board has one with trixie's U-Boot
	// (VirtDisplayFirmware).
	BoardDisplay bool
	// RTKernel, when set, is the control guest's kernel: Debian's
	// PREEMPT_RT arm64 one (RTKernel); the infotainment guest keeps
	// Kernel.
	RTKernel *Kernel
}

// VirtDisplayFirmware is Debian trixie's U-Boot for the QEMU virt board
// (scripts/testdata.sh u-boot-qemu-trixie): it drives the board's
// bochs-display and hands it to the host kernel as its EFI framebuffer.
func VirtDisplayFirmware(cache string) (string, error) {
	f := filepath.Join(cache, "pkgs/u-boot-qemu-trixie_all/usr/lib/u-boot/qemu_arm64/u-boot.bin")
	if _, err := os.Stat(f); err != nil {
		return "", fmt.Errorf("no display-capable U-Boot for the QEMU virt board: run scripts/testdata.sh u-boot-qemu-trixie (%w)", err)
	}
	return f, nil
}

// boardDisplayManifest is manifest with the infotainment guest's display
// on the board's own.
func boardDisplayManifest(manifest string) string {
	return strings.Replace(manifest, "display: {width: 640, height: 360}", "display: {width: 640, height: 360, board: true}", 1)
}

// Arm64CloudKernel returns Debian's cloud-arm64 kernel from the cache
// (scripts/testdata.sh arm64-cloud): the arm64 host kernel that drives
// the QEMU virt board's TPM.
func Arm64CloudKernel(cache string) (Kernel, error) {
	dir := filepath.Join(cache, "arm64-cloud")
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return Kernel{}, fmt.Errorf("no cloud-arm64 kernel in %s: run scripts/testdata.sh arm64-cloud (%w)", dir, err)
	}
	k := Kernel{Image: filepath.Join(dir, "vmlinuz"), Modules: filepath.Join(dir, "modules", strings.TrimSpace(string(rel)))}
	for _, f := range []string{k.Image, k.Modules} {
		if _, err := os.Stat(f); err != nil {
			return Kernel{}, fmt.Errorf("incomplete test data: run scripts/testdata.sh arm64-cloud (%w)", err)
		}
	}
	return k, nil
}

// MeasuredDemoManifest is DemoManifest with the control guest measured:
// required.
var MeasuredDemoManifest = strings.Replace(DemoManifest, "    restart: {policy: always}\n", "    restart: {policy: always}\n    measured: required\n", 1)

// BuildDemoImage writes the demo system and builds its image with
// `tandem image build`, taking the timestamps from SOURCE_DATE_EPOCH
// (a fixed one when unset); it returns the image's path.
func BuildDemoImage(d DemoImage) (string, error) {
	dir, err := filepath.Abs(d.Dir)
	if err != nil {
		return "", err
	}
	sys := filepath.Join(dir, "system")
	manifest := DemoManifest
	if d.TPMHost != nil {
		manifest = MeasuredDemoManifest
	}
	if d.BoardDisplay {
		manifest = boardDisplayManifest(manifest)
	}
	if err := writeDemoSystem(sys, d.Kernel, d.RTKernel, d.InitPkg, d.GoDir, manifest); err != nil {
		return "", err
	}
	img := filepath.Join(dir, "tandem-"+DemoBoard+".img")
	args := []string{"image", "build", "--board", DemoBoard,
		"--manifest", filepath.Join(sys, "system.yaml"), "-o", img, "--cmdline", d.Cmdline}
	if d.TPMHost != nil {
		args = append(args, "--host-kernel", d.TPMHost.Image, "--host-modules", d.TPMHost.Modules)
	}
	build := exec.Command(d.Tandem, args...)
	build.Dir = d.GoDir
	build.Stdout, build.Stderr = d.Out, d.Out
	if os.Getenv("SOURCE_DATE_EPOCH") == "" {
		build.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	}
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("tandem image build: %w", err)
	}
	return img, nil
}
