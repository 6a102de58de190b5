package bsp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/jaypipes/ghw"

	"github.com/tandem-hv/tandem/platforms"
)

// Host is a live machine to check. Root prefixes /dev, /sys and /proc so
// tests can point it at a fake tree. The porting kit does not open
// /dev/kvm itself: KVM answers for it (the CLI fills it from hv/kvm), so
// the kit stays below the VMM's layers.
type Host struct {
	Root string
	// Arch is the host's architecture as KVM names it: x86_64, arm64 or
	// arm.
	Arch string
	// KVM opens the host's KVM and asks it for the named capabilities.
	KVM func(caps []string) KVMProbe
	// Inventory returns cores and memory (ghw when nil).
	Inventory func() (Inventory, error)
}

// KVMProbe is what opening the host's /dev/kvm told.
type KVMProbe struct {
	// Err is why /dev/kvm did not open; nil when it did.
	Err error
	// Absent says there is no /dev/kvm at all (rather than, say, no
	// permission to open it).
	Absent bool
	// Caps is KVM_CHECK_EXTENSION's answer for each capability asked for,
	// by its name in <linux/kvm.h> (KVM_CAP_IRQFD).
	Caps map[string]int
}

// Inventory is the host's hardware as ghw reports it.
type Inventory struct {
	Cores       int      `json:"cores"`
	Threads     int      `json:"threads"`
	MemoryBytes int64    `json:"memory_bytes"`
	Disks       []string `json:"disks,omitempty"`
}

// GHWInventory reads cores, memory and disks with ghw.
func GHWInventory() (Inventory, error) {
	var inv Inventory
	cpu, err := ghw.CPU(ghw.WithDisableWarnings())
	if err != nil {
		return inv, fmt.Errorf("reading CPU inventory: %w", err)
	}
	inv.Cores, inv.Threads = int(cpu.TotalCores), int(cpu.TotalHardwareThreads)
	mem, err := ghw.Memory(ghw.WithDisableWarnings())
	if err != nil {
		return inv, fmt.Errorf("reading memory inventory: %w", err)
	}
	inv.MemoryBytes = mem.TotalUsableBytes
	if blk, err := ghw.Block(ghw.WithDisableWarnings()); err == nil {
		for _, d := range blk.Disks {
			inv.Disks = append(inv.Disks, fmt.Sprintf("%s %d MiB %s", d.Name, d.SizeBytes>>20, d.DriveType))
		}
	}
	return inv, nil
}

func (h Host) path(p string) string { return filepath.Join(h.Root, p) }

// minGuestMemory is the least RAM a two-guest system runs in: a small
// control guest, an infotainment guest and the host.
const minGuestMemory = 512 << 20

// CheckHost checks the running machine as a host for board b (nil: any).
//
// How EL2 is decided without dmesg: on arm64 and arm, KVM only creates
// /dev/kvm when the kernel was entered at EL2/HYP (kvm_arm_init fails with
// "HYP mode not available" otherwise), so a /dev/kvm that opens and
// answers KVM_CHECK_EXTENSION proves the EL2 boot. On x86 the CPU flags
// (vmx/svm in /proc/cpuinfo) are checked as well.
func (h Host) CheckHost(b *platforms.Board) Section {
	s := Section{Title: "Live host"}
	add := func(it Item) { s.Items = append(s.Items, it) }
	arch := h.Arch
	if b != nil {
		add(Item{Check: "architecture", OK: string(b.Arch) == arch, Detail: arch,
			Fix: fmt.Sprintf("run on the %s board (%s), or check the board this host is", b.Name, b.Arch)})
	}
	caps := hostCaps(arch)
	probe := KVMProbe{Err: errors.New("no KVM probe given"), Absent: true}
	if h.KVM != nil {
		probe = h.KVM(KVMCapabilities(arch))
	}
	kvmOK := probe.Err == nil
	switch {
	case probe.Err != nil && probe.Absent:
		fix := "load kvm (modprobe kvm-intel or kvm-amd), or boot a kernel with CONFIG_KVM=y"
		if arch == "arm64" || arch == "arm" {
			fix = "boot the kernel at EL2 (HYP): the firmware or U-Boot must not drop to EL1 (sunxi: U-Boot with CONFIG_ARMV7_NONSEC/PSCI); and use a kernel with CONFIG_KVM=y"
		}
		add(Item{Check: "/dev/kvm", Detail: probe.Err.Error(), Fix: fix})
	case probe.Err != nil:
		add(Item{Check: "/dev/kvm", Detail: probe.Err.Error(), Fix: "run as root or add the user to the kvm group"})
	default:
		el2 := "opens: KVM initialised"
		if arch == "arm64" || arch == "arm" {
			el2 += ", so the kernel was entered at EL2"
		}
		add(Item{Check: "/dev/kvm", OK: true, Detail: el2})
		for _, c := range caps {
			n := probe.Caps[c.name]
			add(Item{Check: c.name, OK: n > 0, Detail: fmt.Sprintf("%d (%s)", n, c.why), Advisory: c.advisory,
				Fix: "use a newer host kernel"})
		}
	}
	if arch == "x86_64" {
		cpuinfo, err := os.ReadFile(h.path("/proc/cpuinfo"))
		flags := string(cpuinfo)
		ok := err == nil && (strings.Contains(flags, " vmx") || strings.Contains(flags, " svm"))
		// A working /dev/kvm is the stronger proof (a paravirtual KVM such as
		// kvm_pvm runs without the flags), so the flag is advisory then.
		add(Item{Check: "VT-x/AMD-V CPU flag", OK: ok, Advisory: kvmOK, Detail: map[bool]string{true: "vmx or svm present", false: "no vmx/svm flag in /proc/cpuinfo"}[ok],
			Fix: "enable virtualization in the firmware setup"})
	}
	inv := h.Inventory
	if inv == nil {
		inv = GHWInventory
	}
	if in, err := inv(); err != nil {
		add(Item{Check: "inventory", Detail: err.Error(), Advisory: true})
	} else {
		want := 2
		if b != nil && b.CPU.Count > want {
			want = b.CPU.Count
		}
		cores := max(in.Cores, runtime.NumCPU())
		add(Item{Check: "cores", OK: cores >= 2, Detail: fmt.Sprintf("%d online (profile: %d)", cores, want),
			Fix: "Tandem needs two cores: one for the control guest, one for the rest"})
		add(Item{Check: "memory", OK: in.MemoryBytes >= minGuestMemory, Detail: fmt.Sprintf("%d MiB", in.MemoryBytes>>20),
			Fix: fmt.Sprintf("at least %d MiB", minGuestMemory>>20)})
	}
	tpms, _ := filepath.Glob(h.path("/dev/tpm*"))
	add(Item{Check: "TPM", OK: len(tpms) > 0, Advisory: true, Detail: strings.Join(tpms, " "),
		Fix: "measured boot needs a TPM (/dev/tpm0 or /dev/tpmrm0); load the TPM driver or add swtpm"})
	vfio := VFIOPlatformAvailable(h.Root)
	add(Item{Check: "VFIO platform", OK: vfio == nil, Advisory: true, Detail: errString(vfio),
		Fix: "modprobe vfio-platform (CONFIG_VFIO_PLATFORM) to pass host devices through"})
	return s
}

// hostCaps are the KVM capabilities a host of arch needs, and why.
func hostCaps(arch string) []capCheck {
	caps := []capCheck{
		{"KVM_CAP_USER_MEMORY", "guest memory", false},
		{"KVM_CAP_IRQFD", "device interrupts", false},
		{"KVM_CAP_IOEVENTFD", "virtio notifications", false},
		{"KVM_CAP_IMMEDIATE_EXIT", "stopping vCPUs", false},
	}
	if arch == "arm64" {
		caps = append(caps,
			capCheck{"KVM_CAP_ARM_PSCI_0_2", "guest PSCI 0.2 (SMP, reset)", false},
			capCheck{"KVM_CAP_ARM_EL1_32BIT", "AArch32 guests", true})
	}
	return caps
}

// KVMCapabilities names the capabilities the host check of a host of
// arch asks Host.KVM for.
func KVMCapabilities(arch string) []string {
	var names []string
	for _, c := range hostCaps(arch) {
		names = append(names, c.name)
	}
	return names
}

// capCheck is a KVM capability the host check asks for.
type capCheck struct {
	name     string // as in <linux/kvm.h>
	why      string
	advisory bool
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// ErrNoVFIOPlatform: the host kernel offers no VFIO platform driver.
var ErrNoVFIOPlatform = errors.New("no VFIO platform driver")

// vfioPlatformDriver is where the vfio-platform driver registers.
const vfioPlatformDriver = "/sys/bus/platform/drivers/vfio-platform"

// VFIOPlatformAvailable reports whether the host kernel under root ("" or
// "/" for this machine) offers VFIO platform, which passing a device tree
// node through to a guest needs.
func VFIOPlatformAvailable(root string) error {
	p := filepath.Join(root, vfioPlatformDriver)
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%w: %s missing: load vfio-platform (CONFIG_VFIO_PLATFORM) and bind the device to it", ErrNoVFIOPlatform, p)
	}
	return nil
}
