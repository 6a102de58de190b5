// Package guestinit is what the demo guests' init does before the demo
// runs: mount the pseudo file systems, load the kernel modules the image
// builder listed, and read tandem.* words from the command line. Like
// every guest program it uses the standard library and x/sys only.
package guestinit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// moduleList names the modules to load, one path a line, dependencies
// first; the image builder writes it.
const moduleList = "/etc/tandem-modules"

// MODULE_INIT_COMPRESSED_FILE (include/uapi/linux/module.h).
const moduleInitCompressedFile = 4

// Boot mounts the pseudo file systems and loads the listed modules.
func Boot() error {
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		os.MkdirAll(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	f, err := os.Open(moduleList)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		m, err := os.Open(p)
		if err != nil {
			return err
		}
		flags := 0
		if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
			flags = moduleInitCompressedFile
		}
		err = unix.FinitModule(int(m.Fd()), moduleParams(p), flags)
		m.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading %s: %w", p, err)
		}
	}
	return sc.Err()
}

// CmdlineArgs returns the tandem.KEY=VALUE words of the kernel command
// line.
func CmdlineArgs() map[string]string {
	out := map[string]string{}
	b, _ := os.ReadFile("/proc/cmdline")
	for _, w := range strings.Fields(string(b)) {
		if k, v, ok := strings.Cut(w, "="); ok && strings.HasPrefix(k, "tandem.") {
			out[strings.TrimPrefix(k, "tandem.")] = v
		}
	}
	return out
}

// wdatTable is where Linux shows the firmware's ACPI WDAT, and
// wdatPeriod, wdatMaxCount where its Timer Period (ms) and Max Count sit
// (after the 36-byte table header: header length, PCI location, period).
const (
	wdatTable    = "/sys/firmware/acpi/tables/WDAT"
	wdatPeriod   = 36 + 12
	wdatMaxCount = 36 + 16
)

// wdatTimeout is the timeout, in whole seconds, of the WDAT's Max Count
// periods, or 0 when the guest has no WDAT.
func wdatTimeout() int {
	b, err := os.ReadFile(wdatTable)
	if err != nil {
		return 0
	}
	return wdatTimeoutOf(b)
}

func wdatTimeoutOf(b []byte) int {
	if len(b) < wdatMaxCount+4 {
		return 0
	}
	period := binary.LittleEndian.Uint32(b[wdatPeriod:])
	max := binary.LittleEndian.Uint32(b[wdatMaxCount:])
	return int(min(uint64(period)*uint64(max)/1000, 1<<31-1))
}

// moduleParams are the parameters a module is loaded with. wdat_wdt
// gets its timeout from the WDAT: the driver otherwise starts at 30 s,
// and a WDAT whose Max Count is shorter makes it warn and program 30 s
// anyway, so the kernel would ping a watchdog that power-on armed too
// rarely to keep it from firing before /dev/watchdog is opened.
func moduleParams(path string) string {
	name, _, _ := strings.Cut(path[strings.LastIndexByte(path, '/')+1:], ".")
	if name == "wdat_wdt" {
		if t := wdatTimeout(); t > 0 {
			return fmt.Sprintf("timeout=%d", t)
		}
	}
	return ""
}

// Watchdog opens /dev/watchdog, if the guest has one, and pets it from a
// goroutine a few times per timeout, so that a guest whose init hangs
// stops petting and the VMM ends it. It prints
//
//	PREFIX watchdog=IDENTITY timeout=Ns
//
// On x86 the timeout is set to the WDAT's Max Count (the device tree's
// timeout-sec gives an ARM guest's driver its own). hang, when above 0,
// stops the petting after that long, to show the watchdog fire.
//
// When the firmware describes a watchdog (a WDAT, or a watchdog node in
// the device tree) but there is no /dev/watchdog, it prints why, as far
// as the guest can tell:
//
//	PREFIX watchdog=none device=STATE
//	PREFIX watchdog kernel: LINE
//
// STATE says whether the watchdog's platform or AMBA device exists and
// which driver it is bound to; the kernel's log lines are those that
// mention the watchdog.
func Watchdog(prefix string, hang time.Duration) error {
	f, err := os.OpenFile("/dev/watchdog", os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		if described() {
			fmt.Printf("%s watchdog=none device=%s\n", prefix, watchdogDevices())
			for _, l := range kernelWatchdogLines() {
				fmt.Printf("%s watchdog kernel: %s\n", prefix, l)
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening /dev/watchdog: %w", err)
	}
	fd := int(f.Fd())
	if t := wdatTimeout(); t > 0 {
		if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, t); err != nil {
			return fmt.Errorf("setting the watchdog timeout to %ds: %w", t, err)
		}
	}
	timeout, err := unix.IoctlGetInt(fd, unix.WDIOC_GETTIMEOUT)
	if err != nil || timeout <= 0 {
		return fmt.Errorf("reading the watchdog timeout: %d, %v", timeout, err)
	}
	identity := "?"
	if info, err := unix.IoctlGetWatchdogInfo(fd); err == nil {
		identity = strings.TrimRight(string(info.Identity[:]), "\x00")
	}
	fmt.Printf("%s watchdog=%s timeout=%ds\n", prefix, identity, timeout)
	every := time.Duration(timeout) * time.Second / 3
	go func() {
		start := time.Now()
		for {
			if hang > 0 && time.Since(start) >= hang {
				fmt.Printf("%s hang: no more watchdog pings\n", prefix)
				select {} // f stays open: closing it without 'V' would not stop it either
			}
			unix.IoctlWatchdogKeepalive(fd)
			time.Sleep(every)
		}
	}()
	return nil
}

// Where the guest's firmware and kernel show its watchdog.
const (
	dtWatchdogs   = "/sys/firmware/devicetree/base/watchdog@*"
	sysWatchdogs  = "/sys/bus/*/devices/*"
	syslogReadAll = 3 // SYSLOG_ACTION_READ_ALL (include/linux/syslog.h)
)

// described says whether the firmware tells of a watchdog.
func described() bool {
	if _, err := os.Stat(wdatTable); err == nil {
		return true
	}
	m, _ := filepath.Glob(dtWatchdogs)
	return len(m) > 0
}

// watchdogDevices names the platform and AMBA devices that look like a
// watchdog (wdat_wdt, NAME.watchdog) and their drivers, as
// "BUS/DEVICE:DRIVER" with "unbound" for none, or "absent".
func watchdogDevices() string {
	paths, _ := filepath.Glob(sysWatchdogs)
	var out []string
	for _, p := range paths {
		name := filepath.Base(p)
		if name != "wdat_wdt" && !strings.HasSuffix(name, ".watchdog") {
			continue
		}
		drv := "unbound"
		if l, err := os.Readlink(filepath.Join(p, "driver")); err == nil {
			drv = filepath.Base(l)
		}
		out = append(out, filepath.Base(filepath.Dir(filepath.Dir(p)))+"/"+name+":"+drv)
	}
	if len(out) == 0 {
		return "absent"
	}
	return strings.Join(out, ",")
}

// kernelWatchdogLines are the kernel log's lines about the watchdog.
func kernelWatchdogLines() []string {
	buf := make([]byte, 1<<20)
	n, err := unix.Klogctl(syslogReadAll, buf)
	if err != nil {
		return []string{fmt.Sprintf("reading the kernel log: %v", err)}
	}
	return watchdogLines(string(buf[:n]))
}

// watchdogLines picks the lines of a kernel log that mention a
// watchdog, without their <level> prefix.
func watchdogLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if len(l) > 3 && l[0] == '<' && l[2] == '>' {
			l = l[3:]
		}
		low := strings.ToLower(l)
		for _, w := range []string{"watchdog", "wdat", "wdt", "sp805"} {
			if strings.Contains(low, w) {
				out = append(out, strings.TrimSpace(l))
				break
			}
		}
	}
	return out
}

// LinkUp sets the network interface name up (SIOCSIFFLAGS IFF_UP).
func LinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS: %w", err)
	}
	return nil
}
