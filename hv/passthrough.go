package hv

// Device passthrough: a host device tree node handed to an ARM guest.
//
// What may be passed, and how its node reads in the guest, is decided by
// platforms/hostdt.Passthrough from the host's own device tree: denylisted
// nodes and what the host needs (GIC, timer, console, memory, PSCI, CPUs,
// clock/GPIO/pin/interrupt providers) are refused there. This file does
// the host side:
//
//  1. the node's host driver is detached: driver_override is set to a
//     name no driver has, so nothing binds it again, then the driver is
//     unbound; both are undone when the VM is closed;
//  2. each register range is mapped from /dev/mem and given to KVM as a
//     memory slot. KVM on arm64 maps a VM_PFNMAP range that is not RAM as
//     device memory at stage 2 (arch/arm64/kvm/mmu.c, user_mem_abort and
//     kvm_is_device_pfn), so the guest's accesses reach the device
//     without an exit;
//  3. the node, with reg in guest addresses (armvirt.PassthroughBase),
//     goes into the guest's device tree.
//
// Interrupts are not forwarded: that needs the host's VFIO platform
// driver (vfio-platform, vfio-amba), which stock distribution kernels
// leave out. A node with interrupts is refused unless the config passes
// it without them.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// ErrNoInterruptForwarding: a passed device has interrupts, and Tandem
// cannot forward them on this host.
var ErrNoInterruptForwarding = errors.New("the host kernel cannot forward this device's interrupt to a guest")

// hostPaths are where the host's facts are read and changed; tests point
// them at a fake tree.
type hostPaths struct {
	fdt    string // the device tree the host booted with
	sys    string // sysfs
	devMem string
}

var theHost = hostPaths{fdt: "/sys/firmware/fdt", sys: "/sys", devMem: mem.DevMem}

// overrideName is written to a passed device's driver_override: no driver
// has this name, so none binds the device while the guest has it.
const overrideName = "tandem-passthrough"

// passArch is a guest architecture whose hardware is a device tree, so
// it can take host nodes.
type passArch interface {
	// passthroughWindow is where passed devices go in the guest.
	passthroughWindow() hostdt.Window
	// setPassthrough gives the nodes to put in the guest's device tree.
	setPassthrough(nodes []*dtb.Node)
}

// passedDevice is one passed device's host side.
type passedDevice struct {
	node   string // path in the host device tree
	detach *detached
	maps   []*mem.Phys
}

// passThrough is Build's step for Config.Passthrough. It runs after guest
// RAM took its memory slots and before the device tree is written.
func (vm *VM) passThrough() error {
	if len(vm.cfg.Passthrough) == 0 {
		return nil
	}
	pa, ok := vm.arch.(passArch)
	if !ok {
		return fmt.Errorf("passthrough: host device tree nodes go to ARM guests only (this guest is described by ACPI)")
	}
	blob, err := os.ReadFile(theHost.fdt)
	if err != nil {
		return fmt.Errorf("passthrough: reading the host's device tree: %w", err)
	}
	tr, err := dtb.Parse(blob)
	if err != nil {
		return fmt.Errorf("passthrough: host device tree %s: %w", theHost.fdt, err)
	}
	nodes, err := planPassthrough(tr, vm.cfg.Passthrough, pa.passthroughWindow(), theHost.sys)
	if err != nil {
		return err
	}
	slot := uint32(len(vm.mem.Regions()))
	var guestNodes []*dtb.Node
	for _, pn := range nodes {
		d := &passedDevice{node: pn.HostPath}
		vm.passed = append(vm.passed, d)
		if d.detach, err = detachHostDriver(theHost.sys, pn.HostPath, os.Stderr); err != nil {
			return err
		}
		for _, m := range pn.MMIO {
			p, gpa, err := mapRange(theHost.devMem, m)
			if err != nil {
				return fmt.Errorf("passthrough %s: %w", pn.HostPath, err)
			}
			d.maps = append(d.maps, p)
			if err := vm.kvm.SetUserMemoryRegion(slot, gpa, p.Host, false); err != nil {
				return fmt.Errorf("passthrough %s: registers %#x as guest %#x: %w", pn.HostPath, p.Base, gpa, err)
			}
			slot++
		}
		guestNodes = append(guestNodes, pn.Node)
	}
	pa.setPassthrough(guestNodes)
	return nil
}

// mapRange maps the pages holding one register range. hostdt placed the
// guest range at the same offset into its page as the host's.
func mapRange(devMem string, m hostdt.Mapping) (*mem.Phys, uint64, error) {
	page := uint64(os.Getpagesize())
	start := m.Host.Base &^ (page - 1)
	end := (m.Host.Base + m.Host.Size + page - 1) &^ (page - 1)
	gpa := m.Guest.Base - (m.Host.Base - start)
	if gpa%page != 0 {
		return nil, 0, fmt.Errorf("guest address %#x is not at the host's offset into a %d-byte page (a host with larger pages than the device tree's granule)", m.Guest.Base, page)
	}
	p, err := mem.MapPhys(devMem, start, end-start)
	if err != nil {
		return nil, 0, err
	}
	return p, gpa, nil
}

// closePassthrough unmaps the registers and gives each device back to
// its host driver. It runs after the VM is gone, so no memory slot
// refers to a mapping.
func (vm *VM) closePassthrough() {
	for _, d := range vm.passed {
		for _, p := range d.maps {
			p.Close()
		}
		if d.detach != nil {
			if err := d.detach.restore(); err != nil {
				fmt.Fprintf(os.Stderr, "passthrough %s: giving the device back to the host: %v\n", d.node, err)
			}
		}
	}
	vm.passed = nil
}

// planPassthrough decides what the guest gets for each device: refusals
// and the guest description come from hostdt; interrupts are dropped
// where the config says so and refused elsewhere.
func planPassthrough(tr *dtb.Tree, devs []HostDevice, w hostdt.Window, sys string) ([]hostdt.PassNode, error) {
	f, err := hostdt.Read(tr)
	if err != nil {
		return nil, fmt.Errorf("passthrough: host device tree: %w", err)
	}
	// Without a profile there is no denylist; the refusals of what the
	// host itself needs still hold.
	board, _ := hostdt.Match(f, all.Boards)
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
			// tr is this VMM's own copy of the host's tree.
			for _, p := range []string{"interrupts", "interrupts-extended", "interrupt-names", "wakeup-source"} {
				n.DeleteProp(p)
			}
		} else if irq {
			withIRQ[n.Path()] = true
		}
	}
	nodes, err := hostdt.Passthrough(tr, f, board, paths, w)
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

// detached is a host device taken from its driver.
type detached struct {
	dir    string // the device's directory under /sys/bus/BUS/devices
	bus    string // its bus directory, /sys/bus/BUS
	driver string // the driver it had, "" for none
}

// detachHostDriver finds the host device made from the node at path and
// takes it from its driver, saying so on log. A node the host made no
// device for (disabled, or no bus scanned it) needs nothing.
func detachHostDriver(sys, path string, log io.Writer) (*detached, error) {
	dir, bus, err := hostDeviceFor(sys, path)
	if err != nil || dir == "" {
		return nil, err
	}
	d := &detached{dir: dir, bus: bus}
	name := filepath.Base(dir)
	if err := os.WriteFile(filepath.Join(dir, "driver_override"), []byte(overrideName), 0); err != nil {
		return nil, fmt.Errorf("passthrough %s: keeping host drivers off %s: %w", path, dir, err)
	}
	if drv, err := filepath.EvalSymlinks(filepath.Join(dir, "driver")); err == nil {
		d.driver = filepath.Base(drv)
		if err := os.WriteFile(filepath.Join(drv, "unbind"), []byte(name), 0); err != nil {
			d.restore()
			return nil, fmt.Errorf("passthrough %s: unbinding host driver %s from %s: %w", path, d.driver, name, err)
		}
		fmt.Fprintf(log, "passthrough %s: detached host driver %s from %s device %s; it gets the device back when the guest ends\n",
			path, d.driver, filepath.Base(bus), name)
	}
	return d, nil
}

// restore clears driver_override and, if a driver had the device, asks
// the bus to probe it again.
func (d *detached) restore() error {
	err := os.WriteFile(filepath.Join(d.dir, "driver_override"), []byte("\n"), 0)
	if d.driver != "" {
		err = errors.Join(err, os.WriteFile(filepath.Join(d.bus, "drivers_probe"), []byte(filepath.Base(d.dir)), 0))
	}
	return err
}

// deviceBuses are the buses a device tree node becomes a device on:
// platform devices, and AMBA for PrimeCells.
var deviceBuses = []string{"platform", "amba"}

// hostDeviceFor returns the sysfs directory of the device whose of_node
// is the node at path, and its bus directory; "" when there is none.
func hostDeviceFor(sys, path string) (dir, bus string, err error) {
	want, err := filepath.EvalSymlinks(filepath.Join(sys, "firmware", "devicetree", "base", strings.TrimPrefix(path, "/")))
	if err != nil {
		return "", "", nil // no live tree: no devices made from it either
	}
	for _, b := range deviceBuses {
		busDir := filepath.Join(sys, "bus", b)
		ents, err := os.ReadDir(filepath.Join(busDir, "devices"))
		if err != nil {
			continue
		}
		for _, e := range ents {
			dev := filepath.Join(busDir, "devices", e.Name())
			if of, err := filepath.EvalSymlinks(filepath.Join(dev, "of_node")); err == nil && of == want {
				// The device directory itself, not the bus's link to it,
				// so writes go to the device's own attributes.
				real, err := filepath.EvalSymlinks(dev)
				if err != nil {
					return "", "", fmt.Errorf("passthrough %s: %w", path, err)
				}
				return real, busDir, nil
			}
		}
	}
	return "", "", nil
}
