package vmm

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/display/vnc"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/fsx"
	"github.com/tandem-hv/tandem/hv/devices/virtio"
)

// Config describes one guest: what the VMM needs to build it. The CLI and
// the system manifest both produce one.
type Config struct {
	Name   string // for messages; "guest" when empty
	Kernel string // path to a bzImage, arm64 Image, zImage, ELF executable or raw image
	// KernelFormat says how Kernel is read: "" or KernelAuto from its
	// header, KernelRaw or KernelRawAArch32 as a raw binary.
	KernelFormat KernelFormat
	// LoadAddress is where a raw image goes and is entered; 0 is the
	// architecture's default (RAM + 0x80000 on arm64, RAM + 0x8000 on
	// 32-bit ARM; x86 has none, and refuses 0).
	LoadAddress uint64
	Initrd      string // optional
	// Firmware, in place of Kernel, is a firmware image an arm64 guest
	// starts in (U-Boot's qemu_arm64 u-boot.bin): mapped read-only as
	// the first flash bank, it finds the guest's disks in the device
	// tree and boots what is on them.
	Firmware string
	// Cmdline is the kernel command line as given, empty included; nil
	// (none given at all) is the guest architecture's console on its
	// UART (console=ttyS0, console=ttyAMA0).
	Cmdline *string
	CPUs    int
	Memory  uint64 // bytes
	Disks   []Disk
	Nets    []Net
	// Console carries the guest's console: its UART and virtio-console.
	Console Console
	// Lock pins guest RAM in host memory (no swapping under a control loop).
	Lock bool
	// HugePages backs guest RAM with transparent huge pages where possible.
	HugePages bool
	// VCPUAffinity, when set, pins every vCPU thread to these host cores;
	// the VMM's other threads stay where the process was started (the
	// supervisor starts it on the housekeeping cores).
	VCPUAffinity []int
	// RTPriority, when above 0, runs the vCPU threads under SCHED_FIFO
	// at this priority (a control guest on dedicated cores).
	RTPriority int
	// Vsock, when set, gives the guest a virtio-vsock device.
	Vsock *Vsock
	// Display, when set, gives the guest a virtio-gpu display with a
	// keyboard and a touch screen (virtio-input) to go with it.
	Display *Display
	// Passthrough are host devices handed to the guest (ARM guests),
	// already resolved from the host's device tree (see PassDevice).
	Passthrough []PassDevice
	// Watchdog, when set, gives the guest a watchdog timer.
	Watchdog *Watchdog
	// TPM, when set, gives the guest a TPM 2.0 (x86_64 and arm64 guests).
	TPM *TPM
	// NoPMU and NoSVE take from an arm64 guest the PMU and SVE it gets
	// by default where the host's KVM offers them.
	NoPMU, NoSVE bool
	// Sandbox, when set, confines the VMM process once the guest is
	// built, before it runs (sandbox.go). Nil runs it unconfined.
	Sandbox *Sandbox
	// Timeline, when set, records how long each step of Build took and
	// when the first vCPU entered the guest.
	Timeline *Timeline
}

// TPM is a guest's virtual TPM: a TIS device (hv/devices/tpm) whose
// commands a software TPM executes, serving them on Socket (swtpm socket
// --server type=unixio). The TPM's state is the software TPM's.
type TPM struct {
	Socket string
}

// PassDevice is a host device tree node passed through to the guest, as
// decided before Build: what may be passed, where it goes in the guest
// and how its node reads there is worked out by the caller from the
// host's device tree (system.ResolvePassthrough). Build does the host
// side (see passthrough.go): it detaches the host driver, maps each
// register range into the guest and puts Node into the guest's device
// tree.
type PassDevice struct {
	// HostPath is the node's path in the host's device tree, as under
	// /proc/device-tree: "/pl031@9010000". It names the device in
	// messages and finds the host device whose driver is detached.
	HostPath string
	// MMIO are the device's register ranges.
	MMIO []PassRange
	// Node is the guest's node: reg in guest addresses for a parent with
	// #address-cells = <2> and #size-cells = <2>, inside the passthrough
	// window (armvirt.PassthroughBase), and nothing naming host nodes.
	Node *dtb.Node
}

// PassRange is one register range of a passed device: host physical
// [HostBase, HostBase+Size) seen by the guest at GuestBase, which has the
// same offset into its page as HostBase.
type PassRange struct {
	HostBase, Size, GuestBase uint64
}

// Vsock is a guest's virtio-vsock device: its CID and where its
// connections go (nil Host: every connection is refused).
type Vsock struct {
	CID  uint32
	Host virtio.VsockHost
}

// Display is a guest's virtio-gpu scanout and the input devices that go
// with it; a display server (VNC, screenshots) reaches them through
// VM.Display.
type Display struct {
	// Width and Height are the scanout's mode, in pixels; both 0: 1280×720.
	Width, Height int
	// VNC, when set, serves the display over VNC at this address:
	// "unix:/run/tandem/NAME.vnc" or "tcp:127.0.0.1:5901". A TCP
	// address other hosts can reach needs VNCAllowRemote.
	VNC            string
	VNCAllowRemote bool
	// VNCListener, when set, is the VNC server's listening socket, made
	// by the caller (the supervisor, or a restarting tandem run, which
	// keep it across the guest's boots and close it); VNC only names it.
	VNCListener net.Listener
}

// Display sizes, in pixels (virtio-gpu's limits).
const (
	DefaultDisplayWidth  = virtio.DefaultDisplayWidth
	DefaultDisplayHeight = virtio.DefaultDisplayHeight
	MinDisplayWidth      = virtio.MinDisplayWidth
	MinDisplayHeight     = virtio.MinDisplayHeight
	MaxDisplayWidth      = virtio.MaxDisplayWidth
	MaxDisplayHeight     = virtio.MaxDisplayHeight
)

// displayDevices is how many virtio devices a display adds: the GPU, the
// keyboard and the touch screen.
const displayDevices = 3

// gpuConfig is the GPU's configuration for the display.
func (d *Display) gpuConfig() virtio.GPUConfig {
	return virtio.GPUConfig{Width: d.Width, Height: d.Height}
}

// hostMemory bounds the host memory the display's GPU may hold for the
// guest: its resources' pixels, twice, for the garbage collector's
// headroom.
func (d *Display) hostMemory() uint64 { return 2 * virtio.DefaultGPUMemory }

// Disk is a virtio-blk backend.
type Disk struct {
	Path     string // raw image file or block device
	ReadOnly bool
}

// Net is a virtio-net backend.
type Net struct {
	TAP string           // host TAP interface name
	MAC net.HardwareAddr // nil: derived from the guest name and index
}

// Console is where a guest's console goes and comes from.
type Console struct {
	Out io.Writer // nil discards
	In  io.Reader // nil: no input
}

// Limits on a guest's shape.
const (
	MaxCPUs    = 64
	MinMemory  = 16 << 20
	maxDevices = 16
)

// Validate checks a Config's fields before anything is built, naming the
// field and the fix in its error, a *ConfigError. It reads nothing but
// the files' metadata and the host's memory; Check adds the kernel's
// format and the host's interfaces.
func (c *Config) Validate() error {
	if c.Kernel == "" && c.Firmware == "" {
		return &ConfigError{Field: "kernel", Label: "kernel", Err: errors.New("no kernel given (--kernel PATH, or kernel: in the guest file; or --firmware PATH, firmware:, for a guest that boots from its disk)")}
	}
	if err := c.validateFirmware(); err != nil {
		return err
	}
	for _, f := range []struct{ field, path string }{{"kernel", c.Kernel}, {"initrd", c.Initrd}, {"firmware", c.Firmware}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return &ConfigError{Field: f.field, Label: f.field, Value: f.path, Err: fsx.UnwrapPathError(err)}
		}
		if !st.Mode().IsRegular() {
			return &ConfigError{Field: f.field, Label: f.field, Value: f.path, Err: errors.New("not a regular file")}
		}
	}
	if _, err := ParseKernelFormat(string(c.KernelFormat)); err != nil {
		return &ConfigError{Field: "kernel-format", Label: "kernel format", Err: err}
	}
	if c.LoadAddress != 0 && !c.KernelFormat.raw() {
		return &ConfigError{Field: "load-address", Label: "load address", Value: fmt.Sprintf("%#x", c.LoadAddress),
			Err: errors.New("only a raw image takes a load address (an ELF executable or a kernel says where it goes): give kernel-format raw, or drop the load address")}
	}
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return &ConfigError{Field: "cpus", Label: "cpus", Value: strconv.Itoa(c.CPUs), Err: fmt.Errorf("must be between 1 and %d", MaxCPUs)}
	}
	memErr := func(format string, args ...any) error {
		return &ConfigError{Field: "memory", Label: "memory", Value: FormatSize(c.Memory), Err: fmt.Errorf(format, args...)}
	}
	if c.Memory < MinMemory {
		return memErr("must be at least %s", FormatSize(MinMemory))
	}
	if c.Memory%(2<<20) != 0 {
		return memErr("must be a multiple of 2M")
	}
	if host, err := HostMemory(); err == nil && c.Memory > host {
		return memErr("more than the host has (%.1f GiB); lower it", float64(host)/(1<<30))
	}
	n := len(c.Disks) + len(c.Nets) + 2
	if c.Display != nil {
		n += displayDevices
	}
	if n > maxDevices {
		return &ConfigError{Field: "disks", Label: "devices", Err: fmt.Errorf("%d virtio devices, at most %d: drop some disks or nets", n, maxDevices)}
	}
	if d := c.Display; d != nil {
		if _, err := virtio.NewGPU(d.gpuConfig()); err != nil {
			return &ConfigError{Field: "display", Label: "display", Value: fmt.Sprintf("%dx%d", d.Width, d.Height), Err: err}
		}
		if d.VNC != "" {
			if _, err := vnc.ParseAddr(d.VNC, d.VNCAllowRemote); err != nil {
				return &ConfigError{Field: "display.vnc", Label: "VNC address", Err: err}
			}
		}
	}
	for i, d := range c.Disks {
		st, err := os.Stat(d.Path)
		if err != nil {
			return diskError(i, d.Path, fsx.UnwrapPathError(err))
		}
		if st.IsDir() {
			return diskError(i, d.Path, errors.New("is a directory, want an image file or block device"))
		}
	}
	for i, n := range c.Nets {
		if n.TAP == "" {
			return &ConfigError{Field: fmt.Sprintf("nets[%d]", i), Label: fmt.Sprintf("net %d", i), Err: errors.New("no TAP interface name")}
		}
	}
	for i, d := range c.Passthrough {
		passErr := func(format string, args ...any) error {
			return &ConfigError{Field: fmt.Sprintf("passthrough[%d].node", i), Label: fmt.Sprintf("passthrough %d", i), Err: fmt.Errorf(format, args...)}
		}
		if !strings.HasPrefix(d.HostPath, "/") || d.HostPath == "/" {
			return passErr("%q: want the absolute path of a host device tree node", d.HostPath)
		}
		if d.Node == nil {
			return passErr("%s has no guest device tree node", d.HostPath)
		}
		for _, e := range c.Passthrough[:i] {
			if e.HostPath == d.HostPath {
				return passErr("%s is listed twice", d.HostPath)
			}
		}
	}
	if c.Watchdog != nil {
		if err := c.Watchdog.validate(); err != nil {
			return &ConfigError{Field: "watchdog", Err: err}
		}
	}
	if c.TPM != nil {
		st, err := os.Stat(c.TPM.Socket)
		if err == nil && st.Mode()&os.ModeSocket == 0 {
			err = errors.New("not a socket: want the command socket of a software TPM (swtpm socket --server type=unixio,path=...)")
		}
		if err != nil {
			return &ConfigError{Field: "vtpm", Label: "TPM socket", Value: c.TPM.Socket, Err: fsx.UnwrapPathError(err)}
		}
	}
	return nil
}

// validateFirmware refuses what a firmware guest cannot have: the
// firmware loads the kernel and its initrd from the guest's disk, and
// reads no load address or kernel format.
func (c *Config) validateFirmware() error {
	if c.Firmware == "" {
		return nil
	}
	fwErr := func(msg string) error {
		return &ConfigError{Field: "firmware", Label: "firmware", Value: c.Firmware, Err: errors.New(msg)}
	}
	switch {
	case c.Kernel != "":
		return fwErr("a guest boots either a kernel or firmware, not both: drop the kernel (the firmware loads one from the guest's disk), or drop the firmware")
	case c.Initrd != "":
		return fwErr("the firmware loads the initrd from the guest's disk: drop the initrd")
	case c.KernelFormat != "" && c.KernelFormat != KernelAuto:
		return fwErr("a kernel format is for a kernel: drop kernel-format")
	case c.LoadAddress != 0:
		return fwErr("a load address is for a raw kernel image: drop load-address")
	}
	return nil
}

// diskError is a *ConfigError about disk i.
func diskError(i int, path string, err error) error {
	return &ConfigError{Field: fmt.Sprintf("disks[%d]", i), Label: fmt.Sprintf("disk %d", i), Value: path, Err: err}
}

// HostMemory returns the host's total RAM from /proc/meminfo.
func HostMemory() (uint64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo MemTotal %q: %w", fields[1], err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemTotal")
}

// ParseSize parses a memory size: a number of bytes, or with a K, M, G or
// T suffix (binary units, optional trailing "B" or "iB").
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	shift := 0
	if t != "" {
		switch t[len(t)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		case 't', 'T':
			shift = 40
		}
		if shift != 0 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || t == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional K, M, G or T suffix (e.g. 512M)", s)
	}
	if n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n << shift, nil
}

// FormatSize prints a size in the largest binary unit that divides it.
func FormatSize(n uint64) string {
	for _, u := range []struct {
		shift  uint
		suffix string
	}{{40, "T"}, {30, "G"}, {20, "M"}, {10, "K"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.suffix)
		}
	}
	return strconv.FormatUint(n, 10)
}

// cmdlineOr returns the configured command line, empty included, or def
// when none was given at all: each architecture knows the name of its
// console UART.
func (c *Config) cmdlineOr(def string) string {
	if c.Cmdline != nil {
		return *c.Cmdline
	}
	return def
}
