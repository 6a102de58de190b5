package kvm

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctlInt issues an ioctl whose argument is an integer and whose result
// is the return value.
func ioctlInt(fd int, req, arg uintptr) (int, error) {
	for {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return int(r), e
		}
		return int(r), nil
	}
}

// ioctlPtr issues an ioctl whose argument points at a struct mirror.
func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	for {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}

// SetUserMemoryRegion maps host memory host at guest-physical gpa in slot.
// host must stay mapped for the life of the VM.
func (vm *VM) SetUserMemoryRegion(slot uint32, gpa uint64, host []byte, readOnly bool) error {
	if len(host) == 0 {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d: empty mapping", slot)
	}
	r := userspaceMemoryRegion{
		Slot:          slot,
		GuestPhysAddr: gpa,
		MemorySize:    uint64(len(host)),
		UserspaceAddr: uint64(uintptr(unsafe.Pointer(&host[0]))),
	}
	if readOnly {
		r.Flags |= 1 << 1 // KVM_MEM_READONLY
	}
	if err := ioctlPtr(vm.fd, reqSetUserMemoryRegion, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_SET_USER_MEMORY_REGION slot %d at %#x (%d MiB): %s", slot, gpa, len(host)>>20, errnoName(err))
	}
	return nil
}

// IRQLine sets the level of an interrupt line of the in-kernel irqchip.
func (vm *VM) IRQLine(irq uint32, level bool) error {
	l := irqLevel{IRQ: irq}
	if level {
		l.Level = 1
	}
	if err := ioctlPtr(vm.fd, reqIRQLine, unsafe.Pointer(&l)); err != nil {
		return fmt.Errorf("KVM_IRQ_LINE %d: %w", irq, err)
	}
	return nil
}

// IRQFD makes a write to the eventfd fd raise gsi without a trip through
// userspace locks; the kernel injects it directly.
func (vm *VM) IRQFD(fd int, gsi uint32) error {
	r := irqfd{FD: uint32(fd), GSI: gsi}
	if err := ioctlPtr(vm.fd, reqIRQFD, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_IRQFD gsi %d: %w", gsi, err)
	}
	return nil
}

func (vm *VM) ioeventfd(e *ioeventfd) error {
	if err := ioctlPtr(vm.fd, reqIOEventFD, unsafe.Pointer(e)); err != nil {
		return fmt.Errorf("KVM_IOEVENTFD at %#x: %w", e.Addr, err)
	}
	return nil
}

// EnableCap enables a VM capability (KVM_ENABLE_CAP).
func (vm *VM) EnableCap(c Cap, args ...uint64) error {
	e := enableCap{Cap: uint32(c)}
	copy(e.Args[:], args)
	if err := ioctlPtr(vm.fd, reqEnableCap, unsafe.Pointer(&e)); err != nil {
		return fmt.Errorf("KVM_ENABLE_CAP %s: %w", c, err)
	}
	return nil
}

// Device is an in-kernel device made by KVM_CREATE_DEVICE (a vGIC, say).
type Device struct{ fd int }

// CreateDevice creates an in-kernel device of the given KVM_DEV_TYPE_*.
func (vm *VM) CreateDevice(typ uint32) (*Device, error) {
	c := createDevice{Type: typ}
	if err := ioctlPtr(vm.fd, reqCreateDevice, unsafe.Pointer(&c)); err != nil {
		return nil, fmt.Errorf("KVM_CREATE_DEVICE type %d: %w", typ, err)
	}
	return &Device{fd: int(c.FD)}, nil
}

// TestDevice reports whether the kernel can create a device of this type
// (KVM_CREATE_DEVICE_TEST), without creating one.
func (vm *VM) TestDevice(typ uint32) bool {
	c := createDevice{Type: typ, Flags: 1} // KVM_CREATE_DEVICE_TEST
	return ioctlPtr(vm.fd, reqCreateDevice, unsafe.Pointer(&c)) == nil
}

// SetAttr sets a device attribute. val points at the value, or is nil for
// attributes that take none (such as the vGIC's CTRL_INIT).
func (d *Device) SetAttr(group uint32, attr uint64, val *uint64) error {
	a := deviceAttr{Group: group, Attr: attr}
	if val != nil {
		a.Addr = uint64(uintptr(unsafe.Pointer(val)))
	}
	if err := ioctlPtr(d.fd, reqSetDeviceAttr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR group %d attr %#x: %w", group, attr, err)
	}
	return nil
}

// SetAttr32 sets a device attribute whose value is 32 bits wide.
func (d *Device) SetAttr32(group uint32, attr uint64, val uint32) error {
	a := deviceAttr{Group: group, Attr: attr, Addr: uint64(uintptr(unsafe.Pointer(&val)))}
	if err := ioctlPtr(d.fd, reqSetDeviceAttr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR group %d attr %#x: %w", group, attr, err)
	}
	return nil
}

// HasAttr reports whether the device knows the attribute.
func (d *Device) HasAttr(group uint32, attr uint64) bool {
	a := deviceAttr{Group: group, Attr: attr}
	return ioctlPtr(d.fd, reqHasDeviceAttr, unsafe.Pointer(&a)) == nil
}

// Close closes the device's file descriptor.
func (d *Device) Close() error { return unix.Close(d.fd) }

// VCPU is one virtual CPU and its shared kvm_run page.
type VCPU struct {
	ID  int
	fd  int
	run []byte // the mmap of struct kvm_run
}

// CreateVCPU creates vCPU id and maps its kvm_run.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	fd, err := ioctlInt(vm.fd, reqCreateVCPU, uintptr(id))
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, err)
	}
	run, err := unix.Mmap(fd, 0, vm.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mapping kvm_run of vCPU %d: %w", id, err)
	}
	return &VCPU{ID: id, fd: fd, run: run}, nil
}

// Close unmaps kvm_run and closes the vCPU.
func (c *VCPU) Close() error {
	unix.Munmap(c.run)
	return unix.Close(c.fd)
}

func (c *VCPU) header() *runHeader { return (*runHeader)(unsafe.Pointer(&c.run[0])) }

// exitUnion returns a pointer to the exit union viewed as T.
func exitUnion[T any](c *VCPU) *T { return (*T)(unsafe.Pointer(&c.run[exitUnionOffset])) }

// Run enters the guest until the next exit and returns the exit reason.
// A signal that interrupts the vCPU (see SetImmediateExit) returns ExitIntr.
//
// KVM_RUN is issued as a raw system call: the calling goroutine keeps its
// scheduler P for as long as the guest runs, as a C VMM's thread simply
// stays its own. Through the runtime's ordinary system call path the P is
// detached on the way in and must be won back on the way out; when
// another thread has taken it meanwhile (the guest ran for long enough,
// or other goroutines were ready), the vCPU thread waits on the scheduler
// and futex wake-ups before it can handle the exit, which measured as most
// of the difference between a Go and a C exit path. The cost moves to the
// caller: each running vCPU holds a P, so the process needs that many Ps
// beyond those its other goroutines use (vmm raises GOMAXPROCS), and the
// runtime's preemption signal (SIGURG, for garbage collection and its
// 10 ms time slices) ends KVM_RUN with ExitIntr, after which the caller
// simply enters again.
func (c *VCPU) Run() (uint32, error) {
	_, _, e := unix.RawSyscall(unix.SYS_IOCTL, uintptr(c.fd), reqRun, 0)
	switch e {
	case 0:
		return c.header().ExitReason, nil
	case unix.EINTR, unix.EAGAIN:
		return ExitIntr, nil
	default:
		return 0, &RunError{VCPU: c.ID, Errno: e}
	}
}

// SetImmediateExit makes the next KVM_RUN return at once with EINTR.
// Another thread sets it, then signals the vCPU thread, to stop a vCPU.
func (c *VCPU) SetImmediateExit(on bool) {
	var v uint8
	if on {
		v = 1
	}
	c.header().ImmediateExit = v
}

// IOExit describes a KVM_EXIT_IO.
type IOExit struct {
	Out   bool
	Port  uint16
	Size  int // bytes per element: 1, 2 or 4
	Count int // elements, >1 for string I/O (rep ins/outs)
	// Data is the element buffer inside kvm_run: Size*Count bytes. For
	// an IN, the VMM fills it before the next Run.
	Data []byte
}

// IO returns the current I/O exit. The kernel chooses data_offset; it is
// bounds-checked against the mapping all the same.
func (c *VCPU) IO() (IOExit, error) {
	r := exitUnion[runIO](c)
	n := uint64(r.Size) * uint64(r.Count)
	if r.DataOffset > uint64(len(c.run)) || n > uint64(len(c.run))-r.DataOffset {
		return IOExit{}, fmt.Errorf("KVM_EXIT_IO data %#x+%d outside kvm_run", r.DataOffset, n)
	}
	return IOExit{
		Out:   r.Direction == ExitIOOut,
		Port:  r.Port,
		Size:  int(r.Size),
		Count: int(r.Count),
		Data:  c.run[r.DataOffset : r.DataOffset+n],
	}, nil
}

// MMIOExit describes a KVM_EXIT_MMIO.
type MMIOExit struct {
	Addr    uint64
	IsWrite bool
	// Data is the access's bytes inside kvm_run; for a read the VMM
	// fills it before the next Run.
	Data []byte
}

// MMIO returns the current MMIO exit.
func (c *VCPU) MMIO() MMIOExit {
	r := exitUnion[runMMIO](c)
	n := r.Len
	if n > uint32(len(r.Data)) {
		n = uint32(len(r.Data))
	}
	return MMIOExit{Addr: r.PhysAddr, IsWrite: r.IsWrite != 0, Data: r.Data[:n]}
}

// SystemEvent returns the type and data words of a KVM_EXIT_SYSTEM_EVENT.
func (c *VCPU) SystemEvent() (uint32, []uint64) {
	r := exitUnion[runSystemEvent](c)
	n := r.NData
	if n > uint32(len(r.Data)) {
		n = uint32(len(r.Data))
	}
	return r.Type, append([]uint64(nil), r.Data[:n]...)
}

// InternalError returns the suberror and data of a KVM_EXIT_INTERNAL_ERROR.
func (c *VCPU) InternalError() (uint32, []uint64) {
	r := exitUnion[runInternal](c)
	n := r.NData
	if n > uint32(len(r.Data)) {
		n = uint32(len(r.Data))
	}
	return r.Suberror, append([]uint64(nil), r.Data[:n]...)
}

// FailEntry returns the hardware reason of a KVM_EXIT_FAIL_ENTRY.
func (c *VCPU) FailEntry() uint64 {
	return exitUnion[runFailEntry](c).HardwareEntryFailureReason
}

// GetOneReg reads a register by its KVM_REG_* id (arm, arm64).
func (c *VCPU) GetOneReg(id uint64) (uint64, error) {
	var v uint64
	r := oneReg{ID: id, Addr: uint64(uintptr(unsafe.Pointer(&v)))}
	if err := ioctlPtr(c.fd, reqGetOneReg, unsafe.Pointer(&r)); err != nil {
		return 0, fmt.Errorf("KVM_GET_ONE_REG %#x on vCPU %d: %w", id, c.ID, err)
	}
	return v, nil
}

// SetOneReg writes a register by its KVM_REG_* id (arm, arm64). Only the
// low bytes are used for registers narrower than 64 bits: the id encodes
// the size and the kernel reads that many bytes (little-endian host).
func (c *VCPU) SetOneReg(id uint64, val uint64) error {
	r := oneReg{ID: id, Addr: uint64(uintptr(unsafe.Pointer(&val)))}
	if err := ioctlPtr(c.fd, reqSetOneReg, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("KVM_SET_ONE_REG %#x on vCPU %d: %w", id, c.ID, err)
	}
	return nil
}

// ARMVCPUInit initialises an arm/arm64 vCPU (KVM_ARM_VCPU_INIT).
func (c *VCPU) ARMVCPUInit(init VCPUInit) error {
	if err := ioctlPtr(c.fd, reqArmVCPUInit, unsafe.Pointer(&init)); err != nil {
		return fmt.Errorf("KVM_ARM_VCPU_INIT on vCPU %d (target %d, features %#x): %w", c.ID, init.Target, init.Features[0], err)
	}
	return nil
}

// SetAttrInt sets an attribute of the vCPU (KVM_SET_DEVICE_ATTR on its
// file descriptor) whose value is a C int, as the PMU's interrupt is; an
// attribute that takes none, such as the PMU's INIT, is set with
// SetAttrNone.
func (c *VCPU) SetAttrInt(group uint32, attr uint64, val int32) error {
	a := deviceAttr{Group: group, Attr: attr, Addr: uint64(uintptr(unsafe.Pointer(&val)))}
	if err := ioctlPtr(c.fd, reqSetDeviceAttr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR group %d attr %#x on vCPU %d: %w", group, attr, c.ID, err)
	}
	return nil
}

// SetAttrNone sets a vCPU attribute that takes no value.
func (c *VCPU) SetAttrNone(group uint32, attr uint64) error {
	a := deviceAttr{Group: group, Attr: attr}
	if err := ioctlPtr(c.fd, reqSetDeviceAttr, unsafe.Pointer(&a)); err != nil {
		return fmt.Errorf("KVM_SET_DEVICE_ATTR group %d attr %#x on vCPU %d: %w", group, attr, c.ID, err)
	}
	return nil
}

// ARMVCPUFinalize finalises a vCPU feature that KVM_ARM_VCPU_INIT
// enabled and that needs configuring first (KVM_ARM_VCPU_FINALIZE;
// ARMVCPUSVE, whose vector lengths are fixed then). It must come before
// the vCPU's first KVM_RUN and before its registers are read or written.
func (c *VCPU) ARMVCPUFinalize(feature int32) error {
	if err := ioctlPtr(c.fd, reqArmVCPUFinalize, unsafe.Pointer(&feature)); err != nil {
		return fmt.Errorf("KVM_ARM_VCPU_FINALIZE(%d) on vCPU %d: %w", feature, c.ID, err)
	}
	return nil
}

// ARMPreferredTarget returns the vCPU target the host prefers (arm, arm64).
func (vm *VM) ARMPreferredTarget() (VCPUInit, error) {
	var init VCPUInit
	if err := ioctlPtr(vm.fd, reqArmPreferredTarget, unsafe.Pointer(&init)); err != nil {
		return init, fmt.Errorf("KVM_ARM_PREFERRED_TARGET: %w", err)
	}
	return init, nil
}

// MPState is struct kvm_mp_state.
type MPState uint32

// MP states (KVM_MP_STATE_*).
const (
	MPStateRunnable MPState = 0
	MPStateStopped  MPState = 5
)

// SetMPState sets the vCPU's multiprocessing state.
func (c *VCPU) SetMPState(s MPState) error {
	if err := ioctlPtr(c.fd, reqSetMPState, unsafe.Pointer(&s)); err != nil {
		return fmt.Errorf("KVM_SET_MP_STATE on vCPU %d: %w", c.ID, err)
	}
	return nil
}

// GetMPState returns the vCPU's multiprocessing state.
func (c *VCPU) GetMPState() (MPState, error) {
	var s MPState
	if err := ioctlPtr(c.fd, reqGetMPState, unsafe.Pointer(&s)); err != nil {
		return 0, fmt.Errorf("KVM_GET_MP_STATE on vCPU %d: %w", c.ID, err)
	}
	return s, nil
}

var errTooManyEntries = errors.New("too many entries")

// rawIoctl issues an ioctl and returns its result, retrying on EINTR.
func rawIoctl(fd int, req uintptr, p unsafe.Pointer) (uintptr, uintptr, error) {
	for {
		r1, r2, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return r1, r2, e
		}
		return r1, r2, nil
	}
}
