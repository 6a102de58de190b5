package vmm

// Device passthrough: a host device tree node handed to an ARM guest.
//
// What may be passed, and how its node reads in the guest, is decided
// before Build from the host's own device tree (system.ResolvePassthrough,
// with platforms/hostdt): Config.Passthrough holds the result. This file
// does the host side:
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
// leave out, so the nodes come without them.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandem-hv/tandem/arch/armvirt"
	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/hv/mem"
)

// hostPaths are where the host's devices are found and changed; tests
// point them at a fake tree.
type hostPaths struct {
	sys    string // sysfs
	devMem string
}

var theHost = hostPaths{sys: "/sys", devMem: mem.DevMem}

// overrideName is written to a passed device's driver_override: no driver
// has this name, so none binds the device while the guest has it.
const overrideName = "tandem-passthrough"

// passArch is a guest architecture whose hardware is a device tree, so
// it can take host nodes.
type passArch interface {
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
	for _, d := range vm.cfg.Passthrough {
		for _, m := range d.MMIO {
			if !inWindow(m) {
				return fmt.Errorf("passthrough %s: guest range %#x+%#x is outside the passthrough window %#x+%#x",
					d.HostPath, m.GuestBase, m.Size, armvirt.PassthroughBase, armvirt.PassthroughSize)
			}
		}
	}
	var guestNodes []*dtb.Node
	for _, pd := range vm.cfg.Passthrough {
		d := &passedDevice{node: pd.HostPath}
		vm.passed = append(vm.passed, d)
		var err error
		if d.detach, err = detachHostDriver(theHost.sys, pd.HostPath, os.Stderr); err != nil {
			return err
		}
		for _, m := range pd.MMIO {
			p, gpa, err := mapRange(theHost.devMem, m)
			if err != nil {
				return fmt.Errorf("passthrough %s: %w", pd.HostPath, err)
			}
			d.maps = append(d.maps, p)
			if err := vm.kvm.SetUserMemoryRegion(vm.nextSlot(), gpa, p.Host, false); err != nil {
				return fmt.Errorf("passthrough %s: registers %#x as guest %#x: %w", pd.HostPath, p.Base, gpa, err)
			}
		}
		guestNodes = append(guestNodes, pd.Node)
	}
	pa.setPassthrough(guestNodes)
	return nil
}

// inWindow reports whether a range's guest side lies in the passthrough
// window, clear of guest RAM and of the VMM's own devices.
func inWindow(m PassRange) bool {
	end := m.GuestBase + m.Size
	return m.Size > 0 && end > m.GuestBase && m.GuestBase >= armvirt.PassthroughBase && end <= armvirt.PassthroughBase+armvirt.PassthroughSize
}

// mapRange maps the pages holding one register range. The guest range
// was placed at the same offset into its page as the host's.
func mapRange(devMem string, m PassRange) (*mem.Phys, uint64, error) {
	page := uint64(os.Getpagesize())
	start := m.HostBase &^ (page - 1)
	end := (m.HostBase + m.Size + page - 1) &^ (page - 1)
	gpa := m.GuestBase - (m.HostBase - start)
	if gpa%page != 0 {
		return nil, 0, fmt.Errorf("guest address %#x is not at the host's offset into a %d-byte page (a host with larger pages than the device tree's granule)", m.GuestBase, page)
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
