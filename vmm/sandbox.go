package vmm

// The VMM's sandbox. Once the guest is built (every file, device and
// socket the VMM will use is open) and every vCPU thread is placed on its
// cores, and before any of them enters the guest, Run confines the
// process with package sandbox:
//
//   - limits: open files (what is open plus the vsock streams), address
//     space (guest RAM and passed registers plus the VMM's own budget),
//     no core dumps (they would hold the guest's RAM); the last two from
//     the start of Build;
//   - Landlock: the guest's kernel and initrd, its disks, /dev/kvm, the
//     TUN device, the sysfs files that give passed devices back to their
//     host drivers, its software TPM's socket, and the UNIX sockets the
//     caller names; nothing else;
//   - every capability dropped (a VMM started with CAP_NET_ADMIN for its
//     TAPs or CAP_SYS_NICE for SCHED_FIFO has used them by then);
//   - a seccomp filter, default EPERM, on every thread, listing what the
//     running VMM's threads make: the Go runtime's calls on all of them
//     (sandbox.GoRuntime), and the calls below, by thread kind.
//
// The lists were found by running Debian's stock guests under `tandem
// run` and `tandem system` with strace -f in the emulated x86_64 and
// arm64 hosts (disks, a TAP, the consoles, vsock both ways, SIGUSR1
// dumps, a restart and a stop by SIGTERM, a passed PL031 given back at
// the end, a memory report) and keeping the calls made after the filter
// went up; a watchdog's expiry runs under it in TestSystemWatchdog.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/sandbox"
)

// Sandbox is what the caller adds to the VM's own sandbox (Config.Sandbox).
type Sandbox struct {
	// Connect are UNIX sockets the VMM connects to while the guest runs
	// (the supervisor's socket for the guest's vsock connections).
	Connect []string
	// Read are more files or directories it reads while the guest runs
	// (/proc/self, for tandem run --report-memory).
	Read []string
	// Log receives what the host lacks of the sandbox, once (a kernel
	// without Landlock); nil: standard error.
	Log io.Writer
	// Applied, when set, is called once the sandbox is up, before the
	// vCPUs enter the guest (tests).
	Applied func(sandbox.Report)
}

// Sandbox limits.
const (
	// vmmAddressSpace is the VMM's address space beyond guest RAM and
	// passed registers: the Go runtime's reservations, the binary, the
	// heap, the threads' stacks, the vCPUs' kvm_run pages. A running
	// VMM under Debian's stock guests maps about 1.1 GiB of it
	// (/proc/PID/status VmPeak less guest RAM, in the emulated hosts,
	// nearly all of it the runtime's reservations, untouched).
	vmmAddressSpace = 2 << 30
	// openFilesHeadroom is what the VMM may open beyond what is open
	// when the sandbox goes up: the vsock device's streams (at most 256,
	// each a socket to the supervisor) and the runtime's own.
	openFilesHeadroom = 300
)

// vcpuCalls are made by the vCPU threads: entering the guest and reading
// a vCPU's state (KVM's ioctls only, kvm.RunningRequests, and a
// terminal's settings, which tandem run restores at the end); setting a
// TAP's receive offloads to what the guest's virtio-net driver accepted
// (TUNSETOFFLOAD, as the driver starts or resets the device: on any
// other descriptor it fails); interrupting another vCPU (tgkill, in
// GoRuntime); raising an interrupt through an irqfd (write).
func vcpuCalls() []sandbox.Rule {
	var reqs []uint64
	for _, r := range kvm.RunningRequests() {
		reqs = append(reqs, uint64(r.Number))
	}
	reqs = append(reqs, unix.TCGETS, unix.TCSETS, unix.TUNSETOFFLOAD)
	return []sandbox.Rule{{Syscall: "ioctl", Arg: 1, Values: reqs}}
}

// deviceCalls are made by the device models' goroutines and the VMM's
// own, on a host of architecture goarch: disks (positioned and vectored
// reads and writes, flushes), TAPs (vectored writes), vsock streams to
// the supervisor (UNIX sockets only: connect, accept, half-close, the
// kernel's socket options and addresses), files opened late (the sysfs
// files that give a passed device back, /proc/self for a memory report),
// and the guest's memory unmapped at the end.
func deviceCalls(goarch string) []sandbox.Rule {
	return []sandbox.Rule{
		{Syscall: "pread64"}, {Syscall: "pwrite64"}, {Syscall: "preadv"}, {Syscall: "pwritev"},
		{Syscall: "fsync"}, {Syscall: "fdatasync"},
		{Syscall: "readv"}, {Syscall: "writev"},
		{Syscall: "socket", Arg: 0, Values: []uint64{unix.AF_UNIX}},
		{Syscall: "connect"}, {Syscall: "accept4"}, {Syscall: "shutdown"},
		{Syscall: "getsockopt"}, {Syscall: "setsockopt"}, {Syscall: "getsockname"}, {Syscall: "getpeername"},
		{Syscall: "openat"}, {Syscall: statAt[goarch]}, {Syscall: "fstat"},
		{Syscall: "munmap"},
	}
}

// statAt is fstatat(2)'s name in the filter's tables (system call 262 on
// x86_64, 79 on arm64, which strace shows as newfstatat on both).
var statAt = map[string]string{"amd64": "newfstatat", "arm64": "fstatat"}

// measured are the host architectures whose running VMMs' calls were
// measured. Elsewhere (ARMv7 hosts are built for, never run) nobody
// knows what the threads call, and a filter from another architecture's
// list could end a guest on a legitimate path: the sandbox goes up
// without seccomp, and says so.
var measured = map[string]bool{"amd64": true, "arm64": true}

// runningCalls is the filter's list on a host of architecture goarch, nil
// where it was never measured.
func runningCalls(goarch string) []sandbox.Rule {
	if !measured[goarch] {
		return nil
	}
	return append(append(sandbox.GoRuntime(), vcpuCalls()...), deviceCalls(goarch)...)
}

// sandboxPolicy is the running VM's policy: its files, its limits, and
// what its threads call.
func (vm *VM) sandboxPolicy(s *Sandbox) (sandbox.Policy, error) {
	p := sandbox.Policy{Paths: vm.sandboxPaths(s), Syscalls: runningCalls(runtime.GOARCH)}
	open, err := openFiles()
	if err != nil {
		return p, err
	}
	p.Limits = append(buildLimits(vm.cfg, vm.passedBytes()),
		sandbox.Limit{Resource: unix.RLIMIT_NOFILE, Name: "open files", Value: uint64(open) + openFilesHeadroom})
	return p, nil
}

// buildLimits are the limits a sandboxed VMM takes before it builds its
// VM, so that reading the guest's kernel and the rest of the build run
// under them too: its address space (guest RAM, passed registers, a
// display's resources, its own budget) and no core dumps. passed is the passed registers' size,
// known once they are mapped; the sandbox sets the limits again with it.
func buildLimits(cfg Config, passed uint64) []sandbox.Limit {
	var regs uint64
	for _, d := range cfg.Passthrough {
		for _, m := range d.MMIO {
			// Whole pages either side, as mapRange maps them.
			regs += m.Size + 2*uint64(os.Getpagesize())
		}
	}
	var display uint64
	if cfg.Display != nil {
		display = cfg.Display.hostMemory()
	}
	var flash uint64
	if cfg.Firmware != "" {
		// The flash the firmware is mapped from, with its guard pages.
		flash = armvirt.FlashSize + 2*uint64(os.Getpagesize())
	}
	return []sandbox.Limit{
		{Resource: unix.RLIMIT_AS, Name: "address space", Value: cfg.Memory + max(regs, passed) + vmmAddressSpace + display + flash},
		{Resource: unix.RLIMIT_CORE, Name: "core dumps", Value: 0},
	}
}

// sandboxPaths are the files the VMM may still open: its guest's, and
// what the caller adds.
func (vm *VM) sandboxPaths(s *Sandbox) []sandbox.Path {
	ps := []sandbox.Path{{Path: kvm.DevicePath, Write: true}}
	for _, p := range []string{vm.cfg.Kernel, vm.cfg.Firmware} {
		if p != "" {
			ps = append(ps, sandbox.Path{Path: p})
		}
	}
	if vm.cfg.Initrd != "" {
		ps = append(ps, sandbox.Path{Path: vm.cfg.Initrd})
	}
	for _, d := range vm.cfg.Disks {
		ps = append(ps, sandbox.Path{Path: d.Path, Write: !d.ReadOnly})
	}
	if len(vm.cfg.Nets) > 0 {
		ps = append(ps, sandbox.Path{Path: tunDevice, Write: true})
	}
	for _, d := range vm.passed {
		if d.detach == nil {
			continue
		}
		ps = append(ps, sandbox.Path{Path: filepath.Join(d.detach.dir, "driver_override"), Write: true})
		if d.detach.driver != "" {
			ps = append(ps, sandbox.Path{Path: filepath.Join(d.detach.bus, "drivers_probe"), Write: true})
		}
	}
	if t := vm.cfg.TPM; t != nil {
		// The TPM device connects to its software TPM for each command.
		ps = append(ps, sandbox.Path{Path: t.Socket, Connect: true})
	}
	for _, c := range s.Connect {
		ps = append(ps, sandbox.Path{Path: c, Connect: true})
	}
	for _, r := range s.Read {
		ps = append(ps, sandbox.Path{Path: r})
	}
	return ps
}

// tunDevice is where TAPs are attached (hv/devices/virtio).
const tunDevice = "/dev/net/tun"

// passedBytes is the address space the passed devices' registers take.
func (vm *VM) passedBytes() uint64 {
	var n uint64
	for _, d := range vm.passed {
		for _, p := range d.maps {
			n += uint64(len(p.Host))
		}
	}
	return n
}

// openFiles counts the process's open descriptors.
func openFiles() (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, fmt.Errorf("counting open files: %w", err)
	}
	return len(ents), nil
}

// applySandbox confines the process for the running guest. It runs once
// every vCPU thread is placed and before any enters the guest (Run).
func (vm *VM) applySandbox() error {
	s := vm.cfg.Sandbox
	p, err := vm.sandboxPolicy(s)
	if err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	r, err := sandbox.Apply(p)
	if err != nil {
		// The host is at fault (a kernel without seccomp filters, say):
		// no restart cures it.
		return &FatalError{Err: fmt.Errorf("sandbox: %w (--no-sandbox runs the guest without it, for debugging)", err)}
	}
	if len(r.Missing) > 0 {
		log := s.Log
		if log == nil {
			log = os.Stderr
		}
		fmt.Fprintf(log, "tandem: %s: sandbox: %s\n", vm.name(), r)
	}
	if s.Applied != nil {
		s.Applied(r)
	}
	return nil
}
