package hostinit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// moduleInitCompressedFile is MODULE_INIT_COMPRESSED_FILE
// (include/uapi/linux/module.h).
const moduleInitCompressedFile = 4

// DataWait bounds the wait for the data partition's device: the block
// drivers probe asynchronously after their modules load.
const DataWait = 20 * time.Second

// ext4 superblock fields (Documentation/filesystems/ext4/super.rst): the
// superblock starts 1024 bytes into the partition.
const (
	ext4SuperOff   = 1024
	ext4MagicOff   = 0x38
	ext4Magic      = 0xef53
	ext4VolNameOff = 0x78
	ext4VolNameLen = 16
)

// Boot prepares the host: file systems, modules, the data partition. It
// returns the manifest's path. log receives one line per step.
func Boot(log io.Writer) (string, error) {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
		{"tmpfs", "/run", "tmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return "", fmt.Errorf("mounting %s on %s: %w", m.fs, m.dst, err)
		}
	}
	fmt.Fprintf(log, "tandem init: %s\n", BoardLine(HostFDT))
	n, absent, err := loadModules(ModulesList)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "tandem init: %d modules loaded\n", n)
	for _, a := range absent {
		fmt.Fprintf(log, "tandem init: module %s skipped: %v\n", filepath.Base(a.path), a.err)
	}
	// After the modules: an x86 host's KVM is one.
	fmt.Fprintf(log, "tandem init: %s\n", KVMLine(KVMDevice))
	label := dataLabel()
	var dev string
	deadline := time.Now().Add(DataWait)
	for {
		dev = findExt4(label)
		if dev != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if dev == "" {
		return "", fmt.Errorf("no ext4 partition labelled %q appeared within %v (block devices: %s): is the image's data partition on a disk this kernel has a driver for?", label, DataWait, strings.Join(blockDevices(), " "))
	}
	os.MkdirAll(DataMount, 0o755)
	if err := unix.Mount(dev, DataMount, "ext4", unix.MS_NOATIME, ""); err != nil {
		return "", fmt.Errorf("mounting the data partition %s on %s: %w", dev, DataMount, err)
	}
	fmt.Fprintf(log, "tandem init: data partition %s mounted on %s\n", dev, DataMount)
	linkByLabel(label, dev)
	return Manifest, nil
}

// dataLabel is tandem.data= from the kernel command line, or the default.
func dataLabel() string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "tandem.data="); ok {
			return strings.TrimPrefix(v, "LABEL=")
		}
	}
	return "tandem-data"
}

// absentModule is a module whose hardware the host lacks.
type absentModule struct {
	path string
	err  error
}

// hardwareAbsent reports whether a module's init failed because what it
// drives is not there: kvm_intel on an AMD CPU ("no hardware support",
// EOPNOTSUPP), a driver finding no device (ENODEV, ENXIO).
func hardwareAbsent(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO)
}

// loadModules loads the modules listed in file, in order. A module the
// kernel already has (built in, or loaded) is not an error; one whose
// hardware the host lacks (hardwareAbsent) is returned in absent, so
// that a host image can carry both x86 KVM vendor modules.
func loadModules(file string) (n int, absent []absentModule, err error) {
	f, err := os.Open(file)
	if err != nil {
		if os.IsNotExist(err) {
			return 0, nil, nil
		}
		return 0, nil, err
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
			return n, absent, fmt.Errorf("module %s: %w", p, err)
		}
		flags := 0
		if strings.HasSuffix(p, ".xz") || strings.HasSuffix(p, ".zst") || strings.HasSuffix(p, ".gz") {
			// The kernel decompresses it (CONFIG_MODULE_DECOMPRESS).
			flags = moduleInitCompressedFile
		}
		err = unix.FinitModule(int(m.Fd()), "", flags)
		m.Close()
		switch {
		case err == nil:
			n++
		case errors.Is(err, unix.EEXIST):
			n++
		case hardwareAbsent(err):
			absent = append(absent, absentModule{p, err})
		default:
			return n, absent, fmt.Errorf("loading module %s: %w", p, err)
		}
	}
	return n, absent, sc.Err()
}

// findExt4 returns the /dev path of the block device holding an ext4 file
// system with the label, or "".
func findExt4(label string) string {
	for _, name := range blockDevices() {
		dev := "/dev/" + name
		f, err := os.Open(dev)
		if err != nil {
			continue
		}
		sb := make([]byte, 1024)
		_, err = f.ReadAt(sb, ext4SuperOff)
		f.Close()
		if err != nil || binary.LittleEndian.Uint16(sb[ext4MagicOff:]) != ext4Magic {
			continue
		}
		if string(bytes.TrimRight(sb[ext4VolNameOff:ext4VolNameOff+ext4VolNameLen], "\x00")) == label {
			return dev
		}
	}
	return ""
}

func blockDevices() []string {
	ents, _ := os.ReadDir("/sys/class/block")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// linkByLabel adds /dev/disk/by-label/LABEL, which udev would make: the
// manifest names host partitions that way.
func linkByLabel(label, dev string) {
	dir := "/dev/disk/by-label"
	os.MkdirAll(dir, 0o755)
	os.Symlink(dev, filepath.Join(dir, label))
}

// PowerOff syncs, unmounts the data partition and powers the board off.
func PowerOff() error {
	unix.Sync()
	unix.Unmount(DataMount, 0)
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
