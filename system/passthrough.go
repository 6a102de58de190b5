package system

// Device passthrough, planned: which host device tree nodes a guest may
// have, and how each reads in the guest. A guest file, `tandem run
// --passthrough` and the manifest's passthrough list name nodes
// (HostDevice); ResolvePassthrough reads the host's device tree, lets
// platforms/hostdt refuse what the board profile denylists and what the
// host needs, places the registers in the guest's passthrough window
// (arch/armvirt) and gives vmm.Build the result (vmm.PassDevice). vmm does
// the host side: detaching the host driver, mapping the registers,
// writing the guest's device tree.
//
// Interrupts are not forwarded: that needs the host's VFIO platform
// driver (vfio-platform, vfio-amba), which stock distribution kernels
// leave out. A node with interrupts is refused unless it is passed
// without them. A node that can master DMA is refused outright
// (dmaMasterError): without an IOMMU it would reach all host memory.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
	"github.com/tandem-hv/tandem/vmm"
)

// HostDevice is a host device tree node a guest asks for: its registers
// are mapped into the guest and the node is copied into the guest's
// device tree.
type HostDevice struct {
	// Node is the node's path in the host's device tree, as under
	// /proc/device-tree: "/pl031@9010000", "/soc/can@1c2bc00".
	Node string
	// NoInterrupts passes the device without its interrupts: the guest's
	// node has none, and its driver must poll or do without. Forwarding
	// interrupts needs VFIO platform (see ErrNoInterruptForwarding).
	NoInterrupts bool
}

// ParseHostDevice parses the command-line form of a HostDevice:
// PATH or PATH,interrupts=none. Node names may hold commas but never
// '=', so options are the trailing ",key=value" parts.
func ParseHostDevice(s string) (HostDevice, error) {
	d := HostDevice{Node: s}
	for {
		i := strings.LastIndex(d.Node, ",")
		if i < 0 || !strings.Contains(d.Node[i+1:], "=") {
			break
		}
		switch o := d.Node[i+1:]; o {
		case "interrupts=none":
			d.NoInterrupts = true
		default:
			return HostDevice{}, fmt.Errorf("%s: unknown option %q (want PATH or PATH,interrupts=none)", s, o)
		}
		d.Node = d.Node[:i]
	}
	return d, d.Validate()
}

// ParseInterrupts parses the interrupts field of a passed-through device
// in a guest file or manifest: "none", or empty for the default
// (forwarded).
func ParseInterrupts(s string) (noInterrupts bool, err error) {
	switch s {
	case "":
		return false, nil
	case "none":
		return true, nil
	}
	return false, fmt.Errorf("%q: want none (pass the device without its interrupts), or leave it out to forward them", s)
}

// Validate checks that Node is an absolute node path.
func (d HostDevice) Validate() error {
	if !strings.HasPrefix(d.Node, "/") || d.Node == "/" {
		return fmt.Errorf("%q: want the absolute path of a host device tree node, e.g. /pl031@9010000", d.Node)
	}
	return nil
}

// CheckHostDevices checks a guest's list: every node an absolute path,
// none named twice.
func CheckHostDevices(devs []HostDevice) error {
	for i, d := range devs {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("passthrough %d: %w", i, err)
		}
		for _, e := range devs[:i] {
			if e.Node == d.Node {
				return fmt.Errorf("passthrough %d: %s is listed twice", i, d.Node)
			}
		}
	}
	return nil
}

// ErrNoInterruptForwarding: a passed device has interrupts, and Tandem
// cannot forward them on this host.
var ErrNoInterruptForwarding = errors.New("the host kernel cannot forward this device's interrupt to a guest")

// HostFDT is the device tree the host booted with.
const HostFDT = "/sys/firmware/fdt"

// passHost is where ResolvePassthrough reads the host's facts; tests
// point it at a board's DTB and a fake sysfs.
var passHost = struct{ fdt, sys string }{fdt: HostFDT, sys: "/sys"}

// guestWindow is where passed devices go in an ARM guest.
var guestWindow = hostdt.Window{Base: armvirt.PassthroughBase, Size: armvirt.PassthroughSize, FirstSPI: armvirt.PassthroughFirstSPI}

// ResolvePassthrough decides what a guest gets for each requested host
// node, from the host's device tree (HostFDT): refusals come from
// platforms/hostdt, interrupts are dropped where the request says so and
// refused elsewhere. The result is vmm.Config.Passthrough. No request, no
// work: a host without a device tree is only read when asked.
func ResolvePassthrough(devs []HostDevice) ([]vmm.PassDevice, error) {
	return resolvePassthrough(passHost.fdt, passHost.sys, devs)
}

func resolvePassthrough(fdt, sys string, devs []HostDevice) ([]vmm.PassDevice, error) {
	if len(devs) == 0 {
		return nil, nil
	}
	if err := CheckHostDevices(devs); err != nil {
		return nil, err
	}
	blob, err := os.ReadFile(fdt)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("passthrough: the host has no device tree (%s is missing): host device tree nodes can be passed only on a host booted with one, to ARM guests", fdt)
	}
	if err != nil {
		return nil, fmt.Errorf("passthrough: reading the host's device tree: %w", err)
	}
	tr, err := dtb.Parse(blob)
	if err != nil {
		return nil, fmt.Errorf("passthrough: host device tree %s: %w", fdt, err)
	}
	nodes, err := planPassthrough(tr, devs, guestWindow, sys)
	if err != nil {
		return nil, err
	}
	out := make([]vmm.PassDevice, 0, len(nodes))
	for _, pn := range nodes {
		d := vmm.PassDevice{HostPath: pn.HostPath, Node: pn.Node}
		for _, m := range pn.MMIO {
			d.MMIO = append(d.MMIO, vmm.PassRange{HostBase: m.Host.Base, Size: m.Host.Size, GuestBase: m.Guest.Base})
		}
		out = append(out, d)
	}
	return out, nil
}

// planPassthrough decides what the guest gets for each device: refusals
// and the guest description come from hostdt; interrupts are dropped
// where the request says so and refused elsewhere.
func planPassthrough(tr *dtb.Tree, devs []HostDevice, w hostdt.Window, sys string) ([]hostdt.PassNode, error) {
	f, err := hostdt.Read(tr)
	if err != nil {
		return nil, fmt.Errorf("passthrough: host device tree: %w", err)
	}
	// Without a profile there is no denylist; the refusals of what the
	// host itself needs still hold.
	board, _ := hostdt.Match(f, all.Boards())
	paths := make([]string, len(devs))
	withIRQ := map[string]bool{}
	for i, d := range devs {
		n, err := tr.Lookup(d.Node)
		if err != nil {
			return nil, fmt.Errorf("passthrough %s: %w", d.Node, err)
		}
		paths[i] = n.Path()
		irq := n.Has("interrupts") || n.Has("interrupts-extended")
		if d.NoInterrupts {
			// tr is this process's own copy of the host's tree.
			for _, p := range []string{"interrupts", "interrupts-extended", "interrupt-names", "wakeup-source"} {
				n.DeleteProp(p)
			}
		} else if irq {
			withIRQ[n.Path()] = true
		}
	}
	nodes, err := hostdt.Passthrough(tr, f, board, paths, w)
	var dma *hostdt.DMAMasterError
	if errors.As(err, &dma) {
		return nil, dmaMasterError(sys, dma)
	}
	if err != nil {
		return nil, err
	}
	for _, pn := range nodes {
		if withIRQ[pn.HostPath] {
			return nil, interruptError(sys, pn)
		}
	}
	return nodes, nil
}

// dmaMasterError says why a node that can master DMA cannot be passed on
// this host, and what to do instead. Only an IOMMU programmed with the
// guest's memory could confine the device, and that needs the node
// behind one (iommus) and the host's VFIO platform driver to hand it
// over.
func dmaMasterError(sys string, e *hostdt.DMAMasterError) error {
	vfio := filepath.Join(sys, "bus", "platform", "drivers", "vfio-platform")
	_, noVFIO := os.Stat(vfio)
	var why string
	switch {
	case !e.IOMMU:
		why = "no IOMMU sits in front of it (the node has no iommus), so nothing would keep the guest from programming it to read and write all host memory"
	case noVFIO != nil:
		why = fmt.Sprintf("it sits behind an IOMMU, but the host kernel has no VFIO platform driver to hand it to a guest through it (%s is missing: CONFIG_VFIO_PLATFORM)", vfio)
	default:
		why = "it sits behind an IOMMU and the host has vfio-platform, but Tandem maps passed devices from /dev/mem and does not program their IOMMU through VFIO yet"
	}
	return fmt.Errorf("%w; %s: leave it to the host and give the guest a virtio device in its place (disks, nets, vsock), or pass a device that masters no DMA", e, why)
}

// interruptError says why a device's interrupts cannot be forwarded, and
// what to do instead.
func interruptError(sys string, pn hostdt.PassNode) error {
	bus, driver, config := "platform", "vfio-platform", "CONFIG_VFIO_PLATFORM"
	if pn.Node.IsCompatible("arm,primecell") {
		bus, driver, config = "amba", "vfio-amba", "CONFIG_VFIO_AMBA"
	}
	which := "its interrupt"
	if len(pn.IRQs) > 0 {
		which = fmt.Sprintf("its interrupt (host SPI %d)", pn.IRQs[0].HostSPI)
	}
	instead := fmt.Sprintf("pass it without interrupts if its driver can poll (interrupts: none in the guest file or manifest, --passthrough %s,interrupts=none)", pn.HostPath)
	dir := filepath.Join(sys, "bus", bus, "drivers", driver)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("passthrough %s: %w: %s needs the %s driver (%s; platform devices need vfio-platform, CONFIG_VFIO_PLATFORM), and %s is missing: use a host kernel with it, or %s",
			pn.HostPath, ErrNoInterruptForwarding, which, driver, config, dir, instead)
	}
	return fmt.Errorf("passthrough %s: %w: forwarding %s through %s is not supported yet: %s", pn.HostPath, ErrNoInterruptForwarding, which, driver, instead)
}
