// Package e2e holds Tandem's end-to-end tests and the guest images they
// boot: Debian's stock cloud kernel with either guests/testinit or a stock
// busybox as init, and a disk image of known content. The tests run the
// VMM inside an emulated KVM host (internal/qemuhost) because stock
// kernels do not boot on this machine kind's own nested /dev/kvm.
//
// Both guests print the same markers (see guests/testinit):
// "TANDEM-TEST key=value ..." lines, ending in "TANDEM-TEST done", or
// "TANDEM-TEST fail <why>".
package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/tandem-hv/tandem/images/initramfs"
	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// Guest is a kind of test guest userland.
type Guest string

// The test guests.
const (
	// GuestTestinit runs guests/testinit, Tandem's own test init.
	GuestTestinit Guest = "testinit"
	// GuestBusybox runs Debian's busybox-static and a shell script, so a
	// userland Tandem did not write is tested too.
	GuestBusybox Guest = "busybox"
)

// GuestModules are the drivers the test guests load, with their
// dependencies, by module name; those the kernel lacks are left out.
// guests/testinit has the same list and DisplayModules: it loads
// whichever of them the image carries.
var GuestModules = []string{
	"virtio_mmio",
	"virtio_pci",
	"virtio_blk",
	"virtio_net",
	"virtio_console",
	"virtio_rng",
	"vmw_vsock_virtio_transport",
	"wdat_wdt",
	"sp805_wdt",
}

// DisplayModules are the drivers a test guest with a display loads as
// well: kept apart from GuestModules, since DRM's modules are large and
// slow to load under emulation, and only the display test needs them.
// evdev gives the input devices their /dev/input/event* nodes, which the
// guests read (Debian builds it as a module).
var DisplayModules = []string{"virtio_gpu", "virtio_input", "evdev"}

// Kernel describes a guest kernel unpacked by scripts/testdata.sh.
type Kernel struct {
	Image   string // the bzImage
	Modules string // its /lib/modules/RELEASE tree
	Busybox string // a static busybox of the same architecture
}

// X86Kernel returns Debian's cloud-amd64 kernel from the cache.
func X86Kernel(cache string) (Kernel, error) { return CachedKernel(cache, "x86") }

// CachedKernel returns the kernel scripts/testdata.sh unpacked for arch
// (its directory under the cache: x86, arm64, armhf).
func CachedKernel(cache, arch string) (Kernel, error) {
	dir := filepath.Join(cache, arch)
	rel, err := os.ReadFile(filepath.Join(dir, "release"))
	if err != nil {
		return Kernel{}, fmt.Errorf("no %s guest kernel in %s: run scripts/testdata.sh %s (%w)", arch, dir, arch, err)
	}
	k := Kernel{
		Image:   filepath.Join(dir, "vmlinuz"),
		Modules: filepath.Join(dir, "modules", strings.TrimSpace(string(rel))),
		Busybox: filepath.Join(dir, "busybox"),
	}
	for _, f := range []string{k.Image, k.Modules, k.Busybox} {
		if _, err := os.Stat(f); err != nil {
			return Kernel{}, fmt.Errorf("incomplete test data: run scripts/testdata.sh %s (%w)", arch, err)
		}
	}
	return k, nil
}

// BuildGuestInitramfs writes the initramfs of guest g for kernel k to
// file (gzip-compressed, as a distribution's would be). goarch is the Go
// architecture of the kernel; goDir the directory `go build` resolves
// the module in (any directory inside the Tandem tree).
func BuildGuestInitramfs(file string, g Guest, k Kernel, goarch, goDir string) error {
	return buildGuestInitramfs(file, g, k, goarch, goDir, GuestModules)
}

// BuildDisplayGuestInitramfs is BuildGuestInitramfs with DisplayModules
// too.
func BuildDisplayGuestInitramfs(file string, g Guest, k Kernel, goarch, goDir string) error {
	return buildGuestInitramfs(file, g, k, goarch, goDir, append(append([]string(nil), GuestModules...), DisplayModules...))
}

func buildGuestInitramfs(file string, g Guest, k Kernel, goarch, goDir string, modules []string) error {
	mods, order, err := initramfs.Modules(k.Modules, modules, true)
	if err != nil {
		return err
	}
	ents := append(initramfs.Console(), mods...)
	switch g {
	case GuestTestinit:
		ents = append(ents, initramfs.GoProgram("/init", "github.com/tandem-hv/tandem/guests/testinit", goarch))
	case GuestBusybox:
		script, err := busyboxInit("/lib/modules/"+filepath.Base(k.Modules), order)
		if err != nil {
			return err
		}
		ents = append(ents,
			initramfs.File("/bin/busybox", k.Busybox, 0o755),
			initramfs.Bytes("/init", script, 0o755),
		)
	default:
		return fmt.Errorf("unknown test guest %q (want %q or %q)", g, GuestTestinit, GuestBusybox)
	}
	return initramfs.Write(file, ents, initramfs.Options{Gzip: true, GoDir: goDir})
}

// busyboxInitText is the busybox guest's /init. It prints the markers of
// guests/testinit with busybox's applets; the modules are listed at build
// time in dependency order, since busybox's modprobe would want a full
// module tree.
var busyboxInitText = template.Must(template.New("init").Parse(`#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
say() { echo; echo "TANDEM-TEST $*"; }
failed=
fail() { failed=1; say "fail $*"; }
say "kernel=$(uname -r)"
{{range .Modules}}insmod {{$.Dir}}/{{.Path}} && say "module={{.Name}} loaded" || fail "insmod {{.Name}}"
{{end}}
# Probing runs after insmod returns: wait up to 5 s for a disk or a NIC.
i=0
while [ $i -lt 250 ]; do
	ls /sys/block | grep -q '^vd' && break
	ls /sys/class/net | grep -qv '^lo$' && break
	usleep 20000
	i=$((i+1))
done
usleep 100000
say "cpus=$(nproc)"
say "mem=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
for s in /sys/block/vd*; do
	[ -e "$s" ] || continue
	d=/dev/${s##*/}
	if sum=$(sha256sum "$d"); then
		say "disk=$d size=$(($(cat "$s/size") * 512)) sha256=${sum%% *}"
	else
		fail "disk $d: sha256sum failed"
	fi
done
for n in /sys/class/net/*; do
	n=${n##*/}
	[ "$n" = lo ] && continue
	if ip link set "$n" up; then
		say "net=$n up mac=$(cat /sys/class/net/$n/address)"
	else
		fail "net $n: ip link set up failed"
	fi
done
[ -z "$failed" ] && say "done uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
`))

func busyboxInit(dir string, order []string) ([]byte, error) {
	type mod struct{ Path, Name string }
	data := struct {
		Dir     string
		Modules []mod
	}{Dir: dir}
	for _, p := range order {
		data.Modules = append(data.Modules, mod{Path: p, Name: initramfs.ModuleName(path.Base(p))})
	}
	var b bytes.Buffer
	if err := busyboxInitText.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("busybox init script: %w", err)
	}
	return b.Bytes(), nil
}

// WriteDisk writes a disk image of size bytes (a multiple of 512) with a
// deterministic, non-repeating pattern, and returns its SHA-256 in hex.
// Every 512-byte sector differs, so a VMM that reads the wrong sector, or
// a short read, changes the sum.
func WriteDisk(file string, size int) (string, error) {
	if size <= 0 || size%512 != 0 {
		return "", fmt.Errorf("disk size %d: want a positive multiple of 512", size)
	}
	b := make([]byte, size)
	for sec := 0; sec < size/512; sec++ {
		s := b[sec*512 : (sec+1)*512]
		copy(s, fmt.Sprintf("tandem e2e disk sector %d\n", sec))
		for i := 64; i < 512; i++ {
			s[i] = byte(sec*31 + i*7)
		}
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return "", fmt.Errorf("writing disk image: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Facts are the markers a test guest printed, in order: each line's
// key=value words, and "fail"/"done" as keys of their own.
type Facts []map[string]string

// ParseFacts extracts the TANDEM-TEST markers from console text.
func ParseFacts(console string) Facts {
	const marker = "TANDEM-TEST "
	var facts Facts
	for _, line := range strings.Split(console, "\n") {
		i := strings.Index(line, marker)
		if i < 0 {
			continue
		}
		rest := strings.TrimSpace(strings.TrimRight(line[i+len(marker):], "\r"))
		f := map[string]string{}
		if why, ok := strings.CutPrefix(rest, "fail "); ok || rest == "fail" {
			f["fail"] = why
			facts = append(facts, f)
			continue
		}
		for _, w := range strings.Fields(rest) {
			k, v, _ := strings.Cut(w, "=")
			f[k] = v
		}
		facts = append(facts, f)
	}
	return facts
}

// Find returns the first fact with key, or nil.
func (fs Facts) Find(key string) map[string]string {
	for _, f := range fs {
		if _, ok := f[key]; ok {
			return f
		}
	}
	return nil
}

// Failures lists the guest's fail markers.
func (fs Facts) Failures() []string {
	var out []string
	for _, f := range fs {
		if why, ok := f["fail"]; ok {
			out = append(out, why)
		}
	}
	return out
}

// qemuDataFiles are the firmware files microvm needs, from QEMU's data
// directory.
var qemuDataFiles = []string{"bios-microvm.bin", "qboot.rom", "linuxboot_dma.bin", "kvmvapic.bin"}

// QEMUFiles lists this machine's qemu-system-x86_64 with its shared
// libraries (from ldd) and firmware, at their own paths.
func QEMUFiles() (string, map[string]string, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "", nil, err
	}
	qemu, err = filepath.EvalSymlinks(qemu)
	if err != nil {
		return "", nil, err
	}
	out, err := exec.Command("ldd", qemu).Output()
	if err != nil {
		return "", nil, fmt.Errorf("ldd %s: %w", qemu, err)
	}
	files := map[string]string{qemu: qemu}
	for _, l := range strings.Split(string(out), "\n") {
		fs := strings.Fields(l)
		var lib string
		switch {
		case len(fs) >= 3 && fs[1] == "=>" && strings.HasPrefix(fs[2], "/"):
			lib = fs[2]
		case len(fs) >= 1 && strings.HasPrefix(fs[0], "/"):
			lib = fs[0] // the dynamic loader
		default:
			continue
		}
		files[lib] = lib
	}
	for _, f := range qemuDataFiles {
		p, err := qemuDataFile(f)
		if err != nil {
			return "", nil, err
		}
		files[p] = p
	}
	return qemu, files, nil
}

// qemuDataFile finds a firmware file where QEMU would.
func qemuDataFile(name string) (string, error) {
	for _, d := range qemuhost.FirmwareDirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("QEMU firmware %s not found in %s: install Debian's qemu-system-x86 and seabios (make deps)", name, strings.Join(qemuhost.FirmwareDirs, ", "))
}

// GuestFiles are what one test guest boots from inside an emulated host:
// the cached Debian kernel, the testinit initramfs, a disk, and tandem
// built for the host.
type GuestFiles struct {
	Kernel               Kernel
	Initrd, Disk, Tandem string
}

// PrepareGuest builds the testinit guest for a cache architecture (x86,
// arm64) and tandem for the matching GOARCH, under out; root is the
// module's root.
func PrepareGuest(root, out, arch, goarch string) (*GuestFiles, error) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return nil, err
	}
	k, err := CachedKernel(cache, arch)
	if err != nil {
		return nil, err
	}
	g := &GuestFiles{
		Kernel: k,
		Initrd: filepath.Join(out, "initrd-testinit-"+goarch),
		Disk:   filepath.Join(out, "disk-"+goarch+".img"),
		Tandem: filepath.Join(out, "tandem-"+goarch),
	}
	if err := BuildGuestInitramfs(g.Initrd, GuestTestinit, k, goarch, root); err != nil {
		return nil, err
	}
	if _, err := WriteDisk(g.Disk, 4<<20); err != nil {
		return nil, err
	}
	build := exec.Command("go", "build", "-trimpath", "-o", g.Tandem, "./cmd/tandem")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch)
	if b, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building tandem for %s: %v\n%s", goarch, err, b)
	}
	return g, nil
}

// Files maps where each file goes in the emulated host: /tandem and
// /guest/{vmlinuz,initrd,disk.img}.
func (g *GuestFiles) Files() map[string]string {
	return map[string]string{"/tandem": g.Tandem, "/guest/vmlinuz": g.Kernel.Image, "/guest/initrd": g.Initrd, "/guest/disk.img": g.Disk}
}
