// Command testinit is the init (PID 1) of Tandem's end-to-end test guest.
// It runs on a stock Debian kernel inside a VM that Tandem built, checks
// what the VMM promised the guest, reports each fact on the console, and
// powers the VM off.
//
// It mounts /proc, /sys and /dev (devtmpfs), loads the virtio drivers it
// finds under /lib/modules/$(uname -r) in the order modules.dep gives, then
// writes one marker line per fact to the console:
//
//	TANDEM-TEST kernel=<uname -r>
//	TANDEM-TEST module=<name> loaded            (or "builtin" when the kernel has it already)
//	TANDEM-TEST cpus=<online CPUs>
//	TANDEM-TEST mem=<MemTotal in KiB>
//	TANDEM-TEST disk=/dev/vda size=<bytes> sha256=<hex of the whole disk>    (one per virtio disk)
//	TANDEM-TEST net=<ifname> up mac=<address>   (one per NIC other than lo, after bringing it up)
//	TANDEM-TEST vsock cid=<the guest's CID> host-connect=<ok|errno name>   (when the VMM gave the guest a vsock device)
//	TANDEM-TEST rtc=<rtcN> device=<bus device> since-epoch=<seconds> amba-id=<periphid>    (one per RTC; amba-id for PrimeCells)
//	TANDEM-TEST watchdog=<identity> timeout=<seconds>s registered=<yes|no>   (when the VMM gave the guest one)
//	TANDEM-TEST display=<cardN> driver=<driver> mode=<WxH, the first connector's preferred> fb=<yes|no>   (one per DRM card)
//	TANDEM-TEST input=<inputN> name=<the device's name, spaces as _>   (one per input device)
//	TANDEM-TEST drew=fb0 size=<WxH>             (with a display: guests/testpattern drawn on it; with
//	                                             tandem.hold=DURATION on the command line, init then
//	                                             waits that long, for the test to take a screenshot, and
//	                                             reports input meanwhile, ending the wait once a key and
//	                                             a touch came:)
//	TANDEM-TEST evdev=<eventN> key=<code>        (a key pressed, by its Linux key code)
//	TANDEM-TEST evdev=<eventN> touch=<x>,<y>     (the touch screen touched, at ABS_X, ABS_Y)
//	TANDEM-TEST cpu-features sve=<yes|no> pmu=<perf PMU name|none> cycles=<count|error>   (arm64)
//	TANDEM-TEST done uptime=<seconds since the guest kernel started>
//
// Every line starts with "TANDEM-TEST " at the start of a console line and
// holds one fact as space-separated key=value words, so a test greps for
// it. Any step that fails prints
//
//	TANDEM-TEST fail <why>
//
// and init still powers off, so a broken guest ends the VM instead of
// hanging it; "done" is printed only when no step failed.
//
// It uses only the standard library, x/sys and the test pattern, so the
// guest runs nothing but the kernel and this program.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/guests/internal/guestinit"
	"github.com/tandem-hv/tandem/guests/testpattern"
)

// marker starts every line a test looks for.
const marker = "TANDEM-TEST"

// drivers are the modules the VMM's devices need, by module name. Those a
// kernel lacks are skipped: which devices exist is for the markers to tell.
var drivers = []string{
	"virtio_mmio",
	"virtio_pci",
	"virtio_blk",
	"virtio_net",
	"virtio_console",
	"virtio_rng",
	"vmw_vsock_virtio_transport",
	"wdat_wdt",     // x86: the WDAT's port watchdog
	"sp805_wdt",    // ARM: the SP805
	"virtio_gpu",   // a display (only some images carry DRM)
	"virtio_input", // its keyboard and touch screen
	"evdev",        // their /dev/input/event* (a module in Debian's kernels)
}

// deviceWait bounds how long init waits for a driver's devices to appear:
// probing runs in the kernel's own threads after finit_module returns.
const deviceWait = 5 * time.Second

// moduleInitCompressedFile is MODULE_INIT_COMPRESSED_FILE
// (include/uapi/linux/module.h): the kernel decompresses the file itself
// (Linux 5.17+, CONFIG_MODULE_DECOMPRESS).
const moduleInitCompressedFile = 4

func main() {
	failed := false
	fail := func(format string, args ...any) {
		failed = true
		say("fail " + fmt.Sprintf(format, args...))
	}
	if err := mountAll(); err != nil {
		fail("%v", err)
	}
	rel := release()
	say("kernel=" + rel)
	if err := loadDrivers(rel); err != nil {
		fail("%v", err)
	}
	say(fmt.Sprintf("cpus=%d", onlineCPUs()))
	if kib, err := memTotal(); err != nil {
		fail("%v", err)
	} else {
		say(fmt.Sprintf("mem=%d", kib))
	}
	if err := reportDisks(); err != nil {
		fail("%v", err)
	}
	if err := reportNICs(); err != nil {
		fail("%v", err)
	}
	if err := reportVsock(); err != nil {
		fail("%v", err)
	}
	reportRTCs()
	if err := reportWatchdog(); err != nil {
		fail("%v", err)
	}
	if err := reportDisplays(); err != nil {
		fail("%v", err)
	}
	if err := drawPattern(); err != nil {
		fail("%v", err)
	}
	reportInputs()
	if runtime.GOARCH == "arm64" {
		reportCPUFeatures()
	}
	if !failed {
		say("done uptime=" + uptime())
	}
	powerOff()
}

// say prints one marker line. The leading newline keeps a marker at the
// start of a line even when the kernel's own messages interleave.
func say(fact string) {
	fmt.Fprintf(os.Stdout, "\n%s %s\n", marker, fact)
}

func mountAll() error {
	for _, m := range []struct{ fs, dir string }{
		{"proc", "/proc"},
		{"sysfs", "/sys"},
		{"devtmpfs", "/dev"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
		if err := unix.Mount(m.fs, m.dir, m.fs, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w", m.fs, m.dir, err)
		}
	}
	return nil
}

// uptime is the first field of /proc/uptime: how long the guest took to
// get here, on its own clock.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

func release() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// loadDrivers loads each wanted driver and its dependencies, dependencies
// first. A guest initramfs carries only some modules: a module named in
// modules.dep but absent on disk is an error, one absent from modules.dep
// is simply not wanted.
func loadDrivers(rel string) error {
	dir := filepath.Join("/lib/modules", rel)
	f, err := os.Open(filepath.Join(dir, "modules.dep"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel with every driver built in needs no modules
	}
	if err != nil {
		return fmt.Errorf("reading modules.dep: %w", err)
	}
	deps, err := parseModulesDep(f)
	f.Close()
	if err != nil {
		return err
	}
	loaded := map[string]bool{}
	var load func(p string, depth int) error
	load = func(p string, depth int) error {
		if loaded[p] {
			return nil
		}
		if depth > len(deps) {
			return fmt.Errorf("modules.dep: dependency cycle through %s", p)
		}
		// depmod lists dependencies so that loading from last to first
		// satisfies each before its users.
		ds := deps[p]
		for i := len(ds) - 1; i >= 0; i-- {
			if err := load(ds[i], depth+1); err != nil {
				return err
			}
		}
		loaded[p] = true
		how, err := insmod(filepath.Join(dir, p))
		if err != nil {
			return fmt.Errorf("loading %s: %w", p, err)
		}
		say(fmt.Sprintf("module=%s %s", moduleName(p), how))
		return nil
	}
	for _, name := range drivers {
		for p := range deps {
			if moduleName(p) == name {
				if err := load(p, 0); err != nil {
					return err
				}
			}
		}
	}
	waitForDevices()
	return nil
}

func parseModulesDep(r io.Reader) (map[string][]string, error) {
	deps := map[string][]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("modules.dep: malformed line %q", line)
		}
		deps[mod] = strings.Fields(rest)
	}
	return deps, sc.Err()
}

// moduleName turns "kernel/drivers/char/hw_random/virtio-rng.ko.xz" into
// "virtio_rng": the kernel treats - and _ in module names alike.
func moduleName(p string) string {
	b := filepath.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// insmod loads one module file with finit_module.
func insmod(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	flags := 0
	if strings.HasSuffix(path, ".xz") || strings.HasSuffix(path, ".zst") || strings.HasSuffix(path, ".gz") {
		flags |= moduleInitCompressedFile
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	switch {
	case err == nil:
		return "loaded", nil
	case errors.Is(err, unix.EEXIST):
		return "builtin", nil
	case flags != 0 && errors.Is(err, unix.EINVAL):
		return "", fmt.Errorf("finit_module: %w (compressed module: the kernel needs CONFIG_MODULE_DECOMPRESS)", err)
	}
	return "", fmt.Errorf("finit_module: %w", err)
}

// waitForDevices gives the drivers' probes a moment to create block
// devices and NICs; it returns as soon as something appears.
func waitForDevices() {
	deadline := time.Now().Add(deviceWait)
	for time.Now().Before(deadline) {
		if len(virtioDisks()) > 0 || len(nics()) > 0 {
			// One more beat for the devices' siblings.
			time.Sleep(100 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onlineCPUs counts the CPUs the kernel brought up: the scheduler's
// affinity mask of PID 1 covers exactly those.
func onlineCPUs() int { return runtime.NumCPU() }

func memTotal() (int, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("reading /proc/meminfo: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		var kib int
		if n, _ := fmt.Sscanf(l, "MemTotal: %d kB", &kib); n == 1 {
			return kib, nil
		}
	}
	return 0, errors.New("/proc/meminfo has no MemTotal")
}

func virtioDisks() []string {
	m, _ := filepath.Glob("/sys/block/vd*")
	sort.Strings(m)
	return m
}

func reportDisks() error {
	for _, sys := range virtioDisks() {
		dev := "/dev/" + filepath.Base(sys)
		sum, n, err := hashFile(dev)
		if err != nil {
			return fmt.Errorf("disk %s: %w", dev, err)
		}
		say(fmt.Sprintf("disk=%s size=%d sha256=%s", dev, n, sum))
	}
	return nil
}

func hashFile(p string) (string, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("reading after %d bytes: %w", n, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func nics() []string {
	m, _ := filepath.Glob("/sys/class/net/*")
	var out []string
	for _, p := range m {
		if n := filepath.Base(p); n != "lo" {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func reportNICs() error {
	for _, name := range nics() {
		if err := guestinit.LinkUp(name); err != nil {
			return fmt.Errorf("net %s: %w", name, err)
		}
		mac := "unknown"
		if ifc, err := net.InterfaceByName(name); err == nil {
			mac = ifc.HardwareAddr.String()
		}
		say(fmt.Sprintf("net=%s up mac=%s", name, mac))
	}
	return nil
}

// vsockProbePort is the host port reportVsock connects to. Nothing
// listens there: tandem run routes no vsock connections at all, and a
// supervisor refuses what a guest's allow list does not name.
const vsockProbePort = 1024

// connectTries bounds the vsock probe's connects interrupted by a
// signal.
const connectTries = 5

// reportVsock reports the guest's CID, which the driver reads from the
// device's configuration space, and what a stream connection to the host
// got. ECONNRESET is the device's reset answering the request: a packet
// went out on the TX queue and one came back on RX. A device that never
// answers shows as ETIMEDOUT after the socket's 2 s connect timeout.
func reportVsock() error {
	f, err := os.Open("/dev/vsock")
	if err != nil {
		return nil // no vsock core in this kernel or image: no device to check
	}
	defer f.Close()
	cid, err := unix.IoctlGetUint32(int(f.Fd()), unix.IOCTL_VM_SOCKETS_GET_LOCAL_CID)
	if err != nil {
		return fmt.Errorf("vsock: IOCTL_VM_SOCKETS_GET_LOCAL_CID: %w", err)
	}
	if cid == unix.VMADDR_CID_ANY {
		return nil // the transport has no device: the VMM gave none
	}
	fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("vsock: socket: %w", err)
	}
	defer unix.Close(fd)
	got := "ok"
	// A vsock connect waits with a timeout, and a signal ends that
	// wait with EINTR rather than restarting it: the Go runtime's
	// preemption signal can land there while the answer is on its way
	// (seen on a slow emulated host). The kernel has then dropped the
	// attempt, so it is made again; only the answer counts.
	err = unix.EINTR
	for try := 0; err == unix.EINTR && try < connectTries; try++ {
		err = unix.Connect(fd, &unix.SockaddrVM{CID: unix.VMADDR_CID_HOST, Port: vsockProbePort})
	}
	if err != nil {
		got = errnoName(err)
	}
	say(fmt.Sprintf("vsock cid=%d host-connect=%s", cid, got))
	return nil
}

// powerOff ends the VM. If the reboot call itself fails there is nothing
// left to do: PID 1 must not exit (the kernel would panic), so it sleeps.
func powerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		say("fail power off: " + err.Error())
	}
	for {
		time.Sleep(time.Hour)
	}
}

// reportRTCs tells each real-time clock's device and time. The device
// names the bus address ("9010000.pl031"), so a test tells the VMM's own
// RTC from a host device passed through; a PrimeCell's amba-id is what
// the AMBA bus read from its ID registers at probe.
func reportRTCs() {
	dirs, _ := filepath.Glob("/sys/class/rtc/rtc*")
	sort.Strings(dirs)
	for _, d := range dirs {
		dev := "unknown"
		if p, err := filepath.EvalSymlinks(filepath.Join(d, "device")); err == nil {
			dev = filepath.Base(p)
		}
		fact := fmt.Sprintf("rtc=%s device=%s since-epoch=%s", filepath.Base(d), dev, readTrim(filepath.Join(d, "since_epoch")))
		if id := readTrim(filepath.Join("/sys/bus/amba/devices", dev, "id")); id != "unknown" {
			fact += " amba-id=" + id
		}
		say(fact)
	}
}

// readTrim returns a sysfs attribute's text, or "unknown".
func readTrim(p string) string {
	b, err := os.ReadFile(p)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Where the firmware describes a watchdog: an ACPI WDAT, or a watchdog
// node at the device tree's root.
const (
	wdatTable   = "/sys/firmware/acpi/tables/WDAT"
	dtWatchdogs = "/sys/firmware/devicetree/base/watchdog@*"
	// syslogReadAll is SYSLOG_ACTION_READ_ALL (include/linux/syslog.h).
	syslogReadAll = 3
)

// reportWatchdog opens /dev/watchdog when the firmware describes a
// watchdog and says which driver runs it, its timeout, and whether the
// kernel logged "registration successful" (sp805_wdt does). It then
// stops it with the magic close, a 'V' before the close, so the guest's
// power-off, not the watchdog, ends the VM.
func reportWatchdog() error {
	_, err := os.Stat(wdatTable)
	dt, _ := filepath.Glob(dtWatchdogs)
	if err != nil && len(dt) == 0 {
		return nil
	}
	var f *os.File
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if f, err = os.OpenFile("/dev/watchdog", os.O_WRONLY, 0); err == nil || time.Since(start) > deviceWait {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("the firmware describes a watchdog but opening /dev/watchdog: %v; kernel: %q", err, kernelLines("watchdog", "wdat", "wdt", "sp805"))
	}
	defer f.Close()
	fd := int(f.Fd())
	timeout, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT)
	if err != nil {
		return fmt.Errorf("reading the watchdog timeout: %w", err)
	}
	info, err := unix.IoctlGetWatchdogInfo(fd)
	if err != nil {
		return fmt.Errorf("reading the watchdog's identity: %w", err)
	}
	identity := strings.ReplaceAll(strings.TrimRight(string(info.Identity[:]), "\x00"), " ", "_")
	registered := "no"
	if len(kernelLines("registration successful")) > 0 {
		registered = "yes"
	}
	say(fmt.Sprintf("watchdog=%s timeout=%ds registered=%s", identity, timeout, registered))
	if _, err := f.Write([]byte("V")); err != nil {
		return fmt.Errorf("stopping the watchdog: %w", err)
	}
	return nil
}

// kernelLines are the kernel log's lines that mention any of words,
// case-insensitively.
func kernelLines(words ...string) []string {
	buf := make([]byte, 1<<20)
	n, err := unix.Klogctl(syslogReadAll, buf)
	if err != nil {
		return []string{fmt.Sprintf("reading the kernel log: %v", err)}
	}
	var out []string
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		low := strings.ToLower(l)
		for _, w := range words {
			if strings.Contains(low, w) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return out
}

// reportDisplays tells each DRM card's driver, the mode its first
// connector lists first (the preferred one), and whether the kernel's
// framebuffer emulation gave it /dev/fb0, waiting for that as for other
// devices: DRM registers the framebuffer once its client has probed the
// connectors.
func reportDisplays() error {
	cards, _ := filepath.Glob("/sys/class/drm/card[0-9]")
	sort.Strings(cards)
	for _, c := range cards {
		// A virtio GPU's card hangs off the transport's device
		// (virtio-mmio); the driver that made it is the virtio
		// device's, below that.
		driver := "unknown"
		links, _ := filepath.Glob(filepath.Join(c, "device", "virtio*", "driver"))
		for _, l := range append([]string{filepath.Join(c, "device", "driver")}, links...) {
			if p, err := filepath.EvalSymlinks(l); err == nil {
				driver = filepath.Base(p)
			}
		}
		mode := "none"
		conns, _ := filepath.Glob(c + "-*")
		sort.Strings(conns)
		if len(conns) > 0 {
			if m := strings.Fields(readTrim(filepath.Join(conns[0], "modes"))); len(m) > 0 && m[0] != "unknown" {
				mode = m[0]
			}
		}
		fb := "no"
		for start := time.Now(); time.Since(start) < deviceWait; time.Sleep(50 * time.Millisecond) {
			if _, err := os.Stat("/dev/fb0"); err == nil {
				fb = "yes"
				break
			}
		}
		say(fmt.Sprintf("display=%s driver=%s mode=%s fb=%s", filepath.Base(c), driver, mode, fb))
		if fb == "no" {
			return fmt.Errorf("%s: no /dev/fb0; kernel: %q", filepath.Base(c), kernelLines("drm", "fb", "virtio_gpu"))
		}
	}
	return nil
}

// fbFlushWait is how long the picture drawn on /dev/fb0 takes to reach
// the display: DRM's framebuffer emulation sends what changed to the GPU
// from a worker, a few tens of milliseconds later.
const fbFlushWait = time.Second

// drawPattern draws testpattern on /dev/fb0, when there is one, for the
// test to find in the VMM's screenshot. The framebuffer console stops
// blinking its cursor, so that nothing draws over the picture.
func drawPattern() error {
	if _, err := os.Stat("/dev/fb0"); err != nil {
		return nil
	}
	if err := os.WriteFile("/sys/class/graphics/fbcon/cursor_blink", []byte("0"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("stopping the framebuffer console's cursor: %w", err)
	}
	const sysfs = "/sys/class/graphics/fb0/"
	var w, h, stride int
	if n, _ := fmt.Sscanf(readTrim(sysfs+"virtual_size"), "%d,%d", &w, &h); n != 2 {
		return fmt.Errorf("fb0: virtual_size %q", readTrim(sysfs+"virtual_size"))
	}
	if bpp := readTrim(sysfs + "bits_per_pixel"); bpp != "32" {
		return fmt.Errorf("fb0: %s bits per pixel, want 32 (XRGB8888)", bpp)
	}
	if _, err := fmt.Sscanf(readTrim(sysfs+"stride"), "%d", &stride); err != nil || stride < w*4 {
		return fmt.Errorf("fb0: stride %q for width %d", readTrim(sysfs+"stride"), w)
	}
	// Drawn through a mapping, as graphical programs draw: the kernel's
	// framebuffer emulation finds the pages written and sends their
	// rectangle to the GPU. (What write(2) put on /dev/fb0 never reached
	// the GPU under Debian's 6.1 kernel.)
	f, err := os.OpenFile("/dev/fb0", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fb, err := unix.Mmap(int(f.Fd()), 0, h*stride, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping fb0: %w", err)
	}
	defer unix.Munmap(fb)
	row := make([]byte, 0, w*4)
	for y := range h {
		copy(fb[y*stride:], testpattern.XRGB8888Row(row[:0], y, w))
	}
	time.Sleep(fbFlushWait)
	hold := cmdlineValue("tandem.hold")
	if hold == "" {
		say(fmt.Sprintf("drew=fb0 size=%dx%d", w, h))
		return nil
	}
	d, err := time.ParseDuration(hold)
	if err != nil {
		return fmt.Errorf("tandem.hold=%s: %w", hold, err)
	}
	// The input devices are open before the test hears the picture is
	// there: what it sends from then on reaches evdev's buffers.
	events, err := openInputs()
	if err != nil {
		return err
	}
	say(fmt.Sprintf("drew=fb0 size=%dx%d", w, h))
	watchInput(events, d, say)
	return nil
}

// inputEventSize is sizeof(struct input_event) (include/uapi/linux/input.h)
// for this program's word size: a struct timeval of two longs, then type
// (u16), code (u16) and value (s32).
const inputEventSize = 2*strconv.IntSize/8 + 8

// Event types and codes (include/uapi/linux/input-event-codes.h).
const (
	evSyn     = 0x00
	evKey     = 0x01
	evAbs     = 0x03
	absX      = 0x00
	absY      = 0x01
	btnTouch  = 0x14a
	synReport = 0
)

// inputEvent is one event read from an evdev device, and the device.
type inputEvent struct {
	dev       string
	typ, code uint16
	value     int32
}

// openInputs opens every evdev device and reads each in a goroutine of
// its own, sending its events on the channel it returns.
func openInputs() (<-chan inputEvent, error) {
	devs, _ := filepath.Glob("/dev/input/event*")
	if len(devs) == 0 {
		return nil, fmt.Errorf("no /dev/input/event* to watch while holding the picture; kernel: %q", kernelLines("input", "virtio_input"))
	}
	ch := make(chan inputEvent, 64)
	for _, d := range devs {
		f, err := os.Open(d)
		if err != nil {
			return nil, err
		}
		go func() {
			b := make([]byte, inputEventSize)
			for {
				if _, err := io.ReadFull(f, b); err != nil {
					say(fmt.Sprintf("fail reading %s: %v", d, err))
					return
				}
				e := b[inputEventSize-8:]
				ch <- inputEvent{filepath.Base(d), binary.LittleEndian.Uint16(e), binary.LittleEndian.Uint16(e[2:]), int32(binary.LittleEndian.Uint32(e[4:]))}
			}
		}()
	}
	return ch, nil
}

// watchInput reports through say, for up to d, each key pressed and each
// touch that events bring; it returns early once it has seen both:
//
//	TANDEM-TEST evdev=<eventN> key=<code>        (EV_KEY, value 1)
//	TANDEM-TEST evdev=<eventN> touch=<x>,<y>     (BTN_TOUCH down, at the report's ABS_X, ABS_Y)
func watchInput(events <-chan inputEvent, d time.Duration, say func(string)) {
	end := time.After(d)
	var key, touch bool
	var x, y int32
	down := false
	for !key || !touch {
		var e inputEvent
		select {
		case <-end:
			return
		case e = <-events:
		}
		switch {
		case e.typ == evKey && e.code == btnTouch:
			down = e.value == 1
		case e.typ == evKey && e.value == 1:
			key = true
			say(fmt.Sprintf("evdev=%s key=%d", e.dev, e.code))
		case e.typ == evAbs && e.code == absX:
			x = e.value
		case e.typ == evAbs && e.code == absY:
			y = e.value
		case e.typ == evSyn && e.code == synReport && down:
			touch, down = true, false
			say(fmt.Sprintf("evdev=%s touch=%d,%d", e.dev, x, y))
		}
	}
}

// cmdlineValue is the value of key=value on the kernel's command line,
// or "".
func cmdlineValue(key string) string {
	for _, f := range strings.Fields(readTrim("/proc/cmdline")) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// reportInputs names each input device the kernel registered.
func reportInputs() {
	names, _ := filepath.Glob("/sys/class/input/input*/name")
	sort.Strings(names)
	for _, n := range names {
		say(fmt.Sprintf("input=%s name=%s", filepath.Base(filepath.Dir(n)), strings.ReplaceAll(readTrim(n), " ", "_")))
	}
}

// reportCPUFeatures says whether the CPU has SVE (a word of /proc/cpuinfo's
// Features line), which PMU perf found (arm_pmu registers the device
// tree's arm,armv8-pmuv3 as armv8_pmuv3[_N]), and what a cycles counter
// counted over a short busy loop: the counter is the PMU's own, so a
// count above zero means the PMU counts. Absence is a fact here, not a
// failure: the test says what it expected.
func reportCPUFeatures() {
	sve := "no"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if ok && strings.TrimSpace(k) == "Features" && slices.Contains(strings.Fields(v), "sve") {
				sve = "yes"
			}
		}
	}
	pmu := "none"
	if m, _ := filepath.Glob("/sys/bus/event_source/devices/armv8_pmuv3*"); len(m) > 0 {
		pmu = filepath.Base(m[0])
	}
	say(fmt.Sprintf("cpu-features sve=%s pmu=%s cycles=%s", sve, pmu, countCycles()))
}

// countCycles counts this thread's CPU cycles (PERF_COUNT_HW_CPU_CYCLES,
// a hardware event only a PMU provides) over a busy loop, or says why it
// could not.
func countCycles() string {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_HARDWARE,
		Config: unix.PERF_COUNT_HW_CPU_CYCLES,
		// The first 64 bytes (PERF_ATTR_SIZE_VER0) hold every field
		// set here; any kernel takes that size.
		Size: unix.PERF_ATTR_SIZE_VER0,
		Bits: unix.PerfBitDisabled,
	}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return "error:perf_event_open:" + errnoName(err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return "error:enable:" + errnoName(err)
	}
	x := uint64(1)
	for i := 0; i < 10_000_000; i++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0)
	var buf [8]byte
	if n, err := unix.Read(fd, buf[:]); err != nil || n != len(buf) {
		return fmt.Sprintf("error:read:%d:%v", n, err)
	}
	runtime.KeepAlive(x) // the loop must run
	return fmt.Sprint(binary.LittleEndian.Uint64(buf[:]))
}

// errnoName is an errno's name (ENOENT) where it has one.
func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}
