package main

import (
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tandem-hv/tandem/strictyaml"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/vmm"
)

func init() { subcommands = append(subcommands, newRunCmd) }

// guestFile is the YAML form of one guest (`tandem run guest.yaml`).
// Relative paths are taken from the file's directory.
type guestFile struct {
	Name   string `yaml:"name"`
	Kernel string `yaml:"kernel"`
	// KernelFormat and LoadAddress: a raw image and where it goes.
	KernelFormat string `yaml:"kernel-format"`
	LoadAddress  uint64 `yaml:"load-address"`
	Initrd       string `yaml:"initrd"`
	// Firmware, in place of a kernel: an arm64 guest starts in it
	// (U-Boot's qemu_arm64 u-boot.bin) and boots from its disks.
	Firmware string  `yaml:"firmware"`
	Cmdline  *string `yaml:"cmdline"` // nil: left out, the console on the guest's UART
	CPUs     *int    `yaml:"cpus"`    // nil: left out, 1
	Memory   string  `yaml:"memory"`
	Disks    []struct {
		Path     string `yaml:"path"`
		ReadOnly bool   `yaml:"readonly"`
	} `yaml:"disks"`
	Nets []struct {
		TAP string `yaml:"tap"`
		MAC string `yaml:"mac"`
	} `yaml:"nets"`
	Console string `yaml:"console"`
	// ConsoleLimit caps a file: console ("64M"; "0": no cap).
	ConsoleLimit string `yaml:"console-limit"`
	Restart      bool   `yaml:"restart"`
	// Display gives the guest a virtio-gpu display, keyboard and touch
	// screen; both sizes 0: 1280×720.
	Display *struct {
		Width  int `yaml:"width"`
		Height int `yaml:"height"`
		// VNC serves the display: "unix:PATH" or "tcp:127.0.0.1:PORT".
		VNC            string `yaml:"vnc"`
		VNCAllowRemote bool   `yaml:"vnc-allow-remote"`
	} `yaml:"display"`
	// Passthrough names host device tree nodes for the guest (ARM).
	Passthrough []struct {
		Node       string `yaml:"node"`
		Interrupts string `yaml:"interrupts"`
	} `yaml:"passthrough"`
}

// runSpec is what `tandem run` runs: the VMM configuration, the host
// devices to resolve into it before it is built, the console and whether
// a reset restarts the guest.
type runSpec struct {
	cfg         vmm.Config
	passthrough []system.HostDevice
	console     string
	// consoleLimit caps a file: console, in bytes (0: no cap).
	consoleLimit uint64
	restart      bool
}

type runFlags struct {
	kernel, initrd, cmdline string
	firmware                string
	// cmdlineSet says --cmdline was given, empty or not.
	cmdlineSet   bool
	kernelFormat string
	loadAddress  uint64
	cpus         int
	memory       string
	disks, nets  []string
	passthrough  []string
	console      string
	consoleLimit string
	restart      bool
	dumpDTB      string
	reportMemory bool
	timeline     bool
	watchdog     time.Duration
	vsock        uint32
	display      string
	vnc          string
	vncRemote    bool
	screenshot   string
	noSandbox    bool
	pmu, sve     bool
}

func newRunCmd() *cobra.Command {
	var f runFlags
	c := &cobra.Command{
		Use:   "run [guest.yaml]",
		Short: "Boot one guest (bzImage on x86_64 hosts; arm64 Image or zImage on arm64 hosts; ELF executables and raw binaries on both)",
		Long: `Boot one guest kernel under KVM with a serial console, virtio-blk disks,
virtio-net (TAP), virtio-console and virtio-rng; with --display, a virtio-gpu
display with a virtio-input keyboard and touch screen.

The exit status tells how the guest ended: 0 power-off, 2 reset (without
--restart), 3 crash, 4 stopped by a signal, 5 its watchdog expired
(--watchdog, or a guest of a system manifest with watchdog:), 6 it could not
start and no retry would help (its configuration, a file, or the host's KVM
is at fault: the message says which), 1 another error of the VMM.`,
		Example: `  tandem run --kernel vmlinuz --initrd initrd.img --cmdline "console=ttyS0" --cpus 2 --memory 512M --disk root.img
  tandem run --kernel vmlinuz --disk data.img,ro --net tap0 --console pty
  tandem run guest.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tl *vmm.Timeline
			if f.timeline {
				tl = vmm.NewTimeline()
			}
			var spec runSpec
			var err error
			if len(args) == 1 {
				if cmd.Flags().Changed("kernel") {
					return fmt.Errorf("give either a guest file or --kernel, not both")
				}
				spec, err = loadGuestFile(args[0])
			} else {
				f.cmdlineSet = cmd.Flags().Changed("cmdline")
				spec, err = f.config()
			}
			// A refused input is fatal, as Build's refusals are: the
			// exit status says that running it again would not help.
			if err != nil {
				return &vmm.FatalError{Err: err}
			}
			cfg, console, restart := spec.cfg, spec.console, spec.restart
			if cfg.Passthrough, err = system.ResolvePassthrough(spec.passthrough); err != nil {
				return &vmm.FatalError{Err: fmt.Errorf("passing host devices through: %w", err)}
			}
			if f.dumpDTB != "" {
				return writeGuestDTB(cfg, f.dumpDTB)
			}
			stderr := cmd.ErrOrStderr()
			if f.noSandbox {
				warnNoSandbox(stderr)
			} else {
				cfg.Sandbox = &vmm.Sandbox{Log: stderr}
				if f.reportMemory {
					// The report reads /proc/self/smaps at the end.
					cfg.Sandbox.Read = []string{"/proc/self"}
				}
				// A sandboxed VMM cannot build its VM again: each boot
				// of a guest that restarts runs in a process of its own.
				if restart && os.Getenv(bootEnv) == "" {
					exe, err := os.Executable()
					if err != nil {
						return err
					}
					return runBoots(cmd.Context(), append([]string{exe}, os.Args[1:]...), console, stderr)
				}
			}
			if os.Getenv(bootEnv) != "" {
				restart = false // the parent restarts it (runBoots)
			}
			closeConsole, err := openConsole(console, spec.consoleLimit, &cfg, stderr)
			if err != nil {
				return err
			}
			defer closeConsole()
			var shot *os.File
			if f.screenshot != "" {
				if cfg.Display == nil {
					return &vmm.FatalError{Err: fmt.Errorf("--screenshot-on-exit %s: the guest has no display: add --display (or display: in its guest file)", f.screenshot)}
				}
				// Opened now: the sandboxed VMM may not create files.
				if shot, err = os.Create(f.screenshot); err != nil {
					return &vmm.FatalError{Err: fmt.Errorf("--screenshot-on-exit: %w", err)}
				}
				defer shot.Close()
			}
			tl.Step("reading the configuration, opening the console")
			cfg.Timeline = tl
			var shotTo io.Writer // nil, not a nil *os.File, without the flag
			if shot != nil {
				shotTo = shot
			}
			return runGuest(cmd.Context(), cfg, restart, reportTo(f.reportMemory, stderr), shotTo)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.kernel, "kernel", "", "guest kernel: bzImage, arm64 Image, zImage or ELF executable (or a raw binary, with --kernel-format raw)")
	fl.StringVar(&f.kernelFormat, "kernel-format", "auto", "how to read --kernel: auto (from its header), raw (a binary for the host's architecture, loaded as-is) or raw-aarch32 (a 32-bit ARM binary on an arm64 host)")
	fl.Uint64Var(&f.loadAddress, "load-address", 0, "where a raw image is loaded and entered (default: RAM + 0x80000 on arm64, RAM + 0x8000 on 32-bit ARM; required on x86_64)")
	fl.StringVar(&f.initrd, "initrd", "", "initial ramdisk")
	fl.StringVar(&f.firmware, "firmware", "", "boot an arm64 guest from firmware in place of --kernel: `FILE` (U-Boot's qemu_arm64 u-boot.bin, as Debian's u-boot-qemu installs it) is mapped read-only as the guest's flash and boots what is on its disks (extlinux.conf, EFI)")
	fl.StringVar(&f.cmdline, "cmdline", "", "kernel command line, as given (an empty one included); without it the console on the guest's UART, ttyS0 or ttyAMA0")
	fl.IntVar(&f.cpus, "cpus", 1, "number of vCPUs")
	fl.StringVar(&f.memory, "memory", "512M", "guest RAM (K, M, G suffixes)")
	fl.StringArrayVar(&f.disks, "disk", nil, "virtio-blk disk: PATH[,ro] (repeatable)")
	fl.StringArrayVar(&f.nets, "net", nil, "virtio-net on a host TAP interface: NAME (repeatable)")
	fl.StringArrayVar(&f.passthrough, "passthrough", nil, "pass a host device tree node to the guest (ARM): PATH[,interrupts=none], e.g. /pl031@9010000 (repeatable; see docs/porting.md)")
	fl.StringVar(&f.console, "console", "stdio", "console: stdio, file:PATH or pty")
	fl.StringVar(&f.consoleLimit, "console-limit", defaultConsoleLimit, "largest file a file:PATH console grows to (K, M, G suffixes; 0: no limit): past it output is dropped after a one-line note")
	fl.BoolVar(&f.restart, "restart", false, "restart the guest when it resets instead of exiting with status 2")
	fl.StringVar(&f.dumpDTB, "dump-dtb", "", "write the device tree generated for the guest (arm64) to `FILE` and exit without running it")
	fl.DurationVar(&f.watchdog, "watchdog", 0, "give the guest a watchdog device (SP805 on ARM, WDAT on x86) with this timeout, in whole seconds; it runs once the guest's driver starts it")
	fl.Uint32Var(&f.vsock, "vsock", 0, "give the guest a virtio-vsock device with this `CID` (3 or more); tandem run routes no connections, so the guest's are refused (tandem system routes them)")
	fl.StringVar(&f.vnc, "vnc", "", "serve the display over VNC at `ADDR`: unix:PATH, or tcp:127.0.0.1:PORT (implies --display 1280x720 when --display is not given)")
	fl.BoolVar(&f.vncRemote, "vnc-allow-remote", false, "let --vnc listen on a TCP address other hosts can reach: the VNC server has no password or encryption")
	fl.StringVar(&f.screenshot, "screenshot-on-exit", "", "write what the guest's display shows when it ends to `FILE`, a PNG")
	fl.StringVar(&f.display, "display", "", "give the guest a virtio-gpu display of `WIDTHxHEIGHT` pixels (e.g. 1280x720), with a virtio-input keyboard and touch screen")
	fl.BoolVar(&f.pmu, "pmu", true, "give an arm64 guest a PMU (perf's hardware counters) where the host's KVM offers one; --pmu=false takes it away")
	fl.BoolVar(&f.sve, "sve", true, "give an arm64 guest SVE, with the vector lengths the host's KVM offers, where it does; --sve=false takes it away")
	fl.BoolVar(&f.reportMemory, "report-memory", false, "print the VMM's resident memory (total, guest RAM, overhead) when the guest ends")
	fl.BoolVar(&f.noSandbox, "no-sandbox", false, "run the guest without the VMM's sandbox (seccomp filter, Landlock, limits, dropped capabilities): for debugging only")
	fl.BoolVar(&f.timeline, "timeline", false, "print, when the guest ends, how long each step from the VMM's start to the guest's first instruction took (TANDEM-TIMELINE lines on standard error)")
	return c
}

func (f *runFlags) config() (runSpec, error) {
	mem, err := vmm.ParseSize(f.memory)
	if err != nil {
		return runSpec{}, fmt.Errorf("--memory: %w", err)
	}
	format, err := vmm.ParseKernelFormat(f.kernelFormat)
	if err != nil {
		return runSpec{}, fmt.Errorf("--kernel-format %w", err)
	}
	cfg := vmm.Config{Kernel: f.kernel, KernelFormat: format, LoadAddress: f.loadAddress, Initrd: f.initrd, Firmware: f.firmware, CPUs: f.cpus, Memory: mem,
		NoPMU: !f.pmu, NoSVE: !f.sve}
	if f.cmdlineSet {
		cmdline := f.cmdline
		cfg.Cmdline = &cmdline
	}
	for _, d := range f.disks {
		path, opts, _ := strings.Cut(d, ",")
		disk := vmm.Disk{Path: path}
		switch opts {
		case "":
		case "ro":
			disk.ReadOnly = true
		default:
			return runSpec{}, fmt.Errorf("--disk %s: unknown option %q (want PATH or PATH,ro)", d, opts)
		}
		cfg.Disks = append(cfg.Disks, disk)
	}
	for _, n := range f.nets {
		cfg.Nets = append(cfg.Nets, vmm.Net{TAP: n})
	}
	if f.watchdog != 0 {
		cfg.Watchdog = &vmm.Watchdog{Timeout: f.watchdog}
	}
	if f.vsock != 0 {
		if f.vsock < system.MinGuestCID || f.vsock > system.MaxGuestCID {
			return runSpec{}, fmt.Errorf("--vsock %d: guest CIDs are %d to %d (0-2 are reserved, 2 is the host)", f.vsock, system.MinGuestCID, uint32(system.MaxGuestCID))
		}
		// No Host: every connection the guest opens is answered with a
		// reset, which is what a guest sees of a port nobody listens on.
		cfg.Vsock = &vmm.Vsock{CID: f.vsock}
	}
	if f.display != "" {
		d, err := parseDisplay(f.display)
		if err != nil {
			return runSpec{}, fmt.Errorf("--display %s: %w", f.display, err)
		}
		cfg.Display = d
	}
	if f.vnc != "" || f.vncRemote {
		if cfg.Display == nil {
			cfg.Display = &vmm.Display{}
		}
		cfg.Display.VNC, cfg.Display.VNCAllowRemote = f.vnc, f.vncRemote
	}
	var pass []system.HostDevice
	for _, p := range f.passthrough {
		d, err := system.ParseHostDevice(p)
		if err != nil {
			return runSpec{}, fmt.Errorf("--passthrough %w", err)
		}
		pass = append(pass, d)
	}
	if err := system.CheckHostDevices(pass); err != nil {
		return runSpec{}, err
	}
	limit, err := vmm.ParseSize(f.consoleLimit)
	if err != nil {
		return runSpec{}, fmt.Errorf("--console-limit: %w", err)
	}
	return runSpec{cfg: cfg, passthrough: pass, console: f.console, consoleLimit: limit, restart: f.restart}, nil
}

// loadGuestFile decodes a guest file strictly: an unknown field or a type
// error is reported with the file and line.
func loadGuestFile(path string) (runSpec, error) {
	var g guestFile
	data, err := os.ReadFile(path)
	if err != nil {
		return runSpec{}, fmt.Errorf("guest file: %w", err)
	}
	if err := strictyaml.Decode(path, data, &g); err != nil {
		return runSpec{}, fmt.Errorf("guest file: %w", err)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	format, err := vmm.ParseKernelFormat(g.KernelFormat)
	if err != nil {
		return runSpec{}, fmt.Errorf("%s: kernel-format: %w", path, err)
	}
	cfg := vmm.Config{Name: g.Name, Kernel: rel(g.Kernel), KernelFormat: format, LoadAddress: g.LoadAddress, Initrd: rel(g.Initrd), Firmware: rel(g.Firmware), Cmdline: g.Cmdline, CPUs: 1}
	if g.CPUs != nil {
		cfg.CPUs = *g.CPUs
	}
	memStr := g.Memory
	if memStr == "" {
		memStr = "512M"
	}
	if cfg.Memory, err = vmm.ParseSize(memStr); err != nil {
		return runSpec{}, fmt.Errorf("%s: memory: %w", path, err)
	}
	for _, d := range g.Disks {
		cfg.Disks = append(cfg.Disks, vmm.Disk{Path: rel(d.Path), ReadOnly: d.ReadOnly})
	}
	for i, n := range g.Nets {
		nt := vmm.Net{TAP: n.TAP}
		if n.MAC != "" {
			mac, err := parseMAC(n.MAC)
			if err != nil {
				return runSpec{}, fmt.Errorf("%s: nets[%d].mac: %w", path, i, err)
			}
			nt.MAC = mac
		}
		cfg.Nets = append(cfg.Nets, nt)
	}
	if d := g.Display; d != nil {
		cfg.Display = &vmm.Display{Width: d.Width, Height: d.Height, VNC: d.VNC, VNCAllowRemote: d.VNCAllowRemote}
	}
	// at locates field f of the file: "guest.yaml:7".
	at := func(f string) string {
		for ; f != ""; f = parentField(f) {
			if l := strictyaml.Line(data, f); l > 0 {
				return fmt.Sprintf("%s:%d", path, l)
			}
		}
		return path
	}
	var pass []system.HostDevice
	for i, p := range g.Passthrough {
		field := fmt.Sprintf("passthrough[%d]", i)
		none, err := system.ParseInterrupts(p.Interrupts)
		if err != nil {
			return runSpec{}, fmt.Errorf("%s: %s.interrupts: %w", at(field+".interrupts"), field, err)
		}
		d := system.HostDevice{Node: p.Node, NoInterrupts: none}
		if p.Node == "" {
			return runSpec{}, fmt.Errorf("%s: %s: missing node: give the host device tree path, e.g. /pl031@9010000", at(field), field)
		}
		pass = append(pass, d)
	}
	console := g.Console
	if console == "" {
		console = "stdio"
	}
	limitStr := g.ConsoleLimit
	if limitStr == "" {
		limitStr = defaultConsoleLimit
	}
	limit, err := vmm.ParseSize(limitStr)
	if err != nil {
		return runSpec{}, fmt.Errorf("%s: console-limit: %w", at("console-limit"), err)
	}
	if err := system.CheckHostDevices(pass); err != nil {
		return runSpec{}, fmt.Errorf("%s: %w", path, err)
	}
	// The VMM's own checks, made before /dev/kvm, located in the file.
	if err := cfg.Check(); err != nil {
		var ce *vmm.ConfigError
		if errors.As(err, &ce) {
			return runSpec{}, fmt.Errorf("%s: %w", at(ce.Field), err)
		}
		return runSpec{}, fmt.Errorf("%s: %w", path, err)
	}
	return runSpec{cfg: cfg, passthrough: pass, console: console, consoleLimit: limit, restart: g.Restart}, nil
}

// parseDisplay reads --display's WIDTHxHEIGHT; the VMM's checks bound it.
func parseDisplay(s string) (*vmm.Display, error) {
	ws, hs, ok := strings.Cut(s, "x")
	w, werr := strconv.Atoi(ws)
	h, herr := strconv.Atoi(hs)
	if !ok || werr != nil || herr != nil || w <= 0 || h <= 0 {
		return nil, fmt.Errorf("want WIDTHxHEIGHT in pixels, e.g. %dx%d", vmm.DefaultDisplayWidth, vmm.DefaultDisplayHeight)
	}
	return &vmm.Display{Width: w, Height: h}, nil
}

// parentField is the field holding f: "nets" for "nets[0]", "nets[0]"
// for "nets[0].tap", "" at the top.
func parentField(f string) string {
	i := strings.LastIndexAny(f, ".[")
	if i < 0 {
		return ""
	}
	return f[:i]
}

// reportTo returns w when on, else nil.
func reportTo(on bool, w io.Writer) io.Writer {
	if on {
		return w
	}
	return nil
}

// runGuest builds and runs the guest, building it afresh after each reset
// when restart is on. SIGINT and SIGTERM stop it. A cfg.Timeline records
// the first build only, and is printed to standard error when that guest
// ends. shot, when set, receives a PNG of the guest's display as the
// guest ends for good.
func runGuest(ctx context.Context, cfg vmm.Config, restart bool, report io.Writer, shot io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer cancel()
	for {
		vm, err := vmm.Build(cfg)
		if err != nil {
			return err
		}
		// Best effort: it only lowers the VMM's resident set.
		_ = vmm.ReleaseStartupPages()
		cfg.Timeline.Step("releasing start-up pages")
		stopDumps := vmm.DumpOnSignal(vm, syscall.SIGUSR1) // kill -USR1: where each vCPU is
		err = vm.Run(ctx)
		stopDumps()
		if cfg.Timeline != nil {
			cfg.Timeline.WriteTo(os.Stderr)
			cfg.Timeline = nil
		}
		if report != nil {
			if u, uerr := vm.MemoryUse(); uerr == nil {
				fmt.Fprintf(report, "TANDEM-VMM rss-kib=%d guest-rss-kib=%d overhead-kib=%d file-kib=%d heap-kib=%d\n",
					u.RSS>>10, u.GuestRSS>>10, u.Overhead()>>10, u.FileRSS>>10, u.HeapInuse>>10)
			}
		}
		var ee *vmm.ExitErr
		if restart && errors.As(err, &ee) && ee.Exit == vmm.ExitReset {
			vm.Close()
			continue
		}
		if shot != nil {
			if serr := writeScreenshot(vm, shot); serr != nil {
				fmt.Fprintf(os.Stderr, "tandem: --screenshot-on-exit: %v\n", serr)
			}
		}
		vm.Close()
		return err
	}
}

// writeScreenshot writes what vm's display shows as a PNG.
func writeScreenshot(vm *vmm.VM, w io.Writer) error {
	d := vm.Display()
	if d == nil {
		return fmt.Errorf("the guest has no display")
	}
	img, err := d.GPU.Snapshot()
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// writeGuestDTB builds the guest, as run would, and writes its generated
// device tree to file instead of running it.
func writeGuestDTB(cfg vmm.Config, file string) error {
	vm, err := vmm.Build(cfg)
	if err != nil {
		return err
	}
	defer vm.Close()
	b := vm.DeviceTree()
	if b == nil {
		return fmt.Errorf("--dump-dtb: kernel %s: this guest is described by ACPI, not a device tree", cfg.Kernel)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		return fmt.Errorf("--dump-dtb: %w", err)
	}
	return nil
}
