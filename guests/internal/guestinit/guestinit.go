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
		err = unix.FinitModule(int(m.Fd()), "", flags)
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

// Watchdog opens /dev/watchdog, if the guest has one, and pets it from a
// goroutine a few times per timeout, so that a guest whose init hangs
// stops petting and the VMM ends it. It prints
//
//	PREFIX watchdog=IDENTITY timeout=Ns
//
// On x86 the timeout is set to the WDAT's Max Count (the device tree's
// timeout-sec gives an ARM guest's driver its own). hang, when above 0,
// stops the petting after that long, to show the watchdog fire.
func Watchdog(prefix string, hang time.Duration) error {
	f, err := os.OpenFile("/dev/watchdog", os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening /dev/watchdog: %w", err)
	}
	fd := int(f.Fd())
	if b, err := os.ReadFile(wdatTable); err == nil && len(b) >= wdatMaxCount+4 {
		period := binary.LittleEndian.Uint32(b[wdatPeriod:])
		max := binary.LittleEndian.Uint32(b[wdatMaxCount:])
		if t := int(uint64(period) * uint64(max) / 1000); t > 0 {
			if err := unix.IoctlSetPointerInt(fd, unix.WDIOC_SETTIMEOUT, t); err != nil {
				return fmt.Errorf("setting the watchdog timeout to %ds: %w", t, err)
			}
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
