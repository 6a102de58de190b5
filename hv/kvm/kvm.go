// Package kvm is Tandem's typed interface to Linux KVM (/dev/kvm).
//
// golang.org/x/sys has no KVM ioctls, so the request numbers and struct
// mirrors are our own, each citing its source in the kernel's UAPI headers
// and pinned by tests. This package is the only one in Tandem that issues
// raw system calls or uses unsafe; both live in the *_unsafe.go files.
//
// The objects follow the kernel's: a System is the open /dev/kvm, a VM is
// a KVM_CREATE_VM file descriptor, a VCPU is a KVM_CREATE_VCPU descriptor
// with its mapped struct kvm_run.
package kvm

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// DevicePath is where the KVM device node lives.
const DevicePath = "/dev/kvm"

// apiVersion is KVM_API_VERSION: the only version the kernel has ever had.
const apiVersion = 12

// Cap is a KVM capability (KVM_CAP_* in include/uapi/linux/kvm.h).
type Cap uintptr

// Capabilities Tandem checks.
const (
	CapIRQChip           Cap = 0
	CapHLT               Cap = 1
	CapUserMemory        Cap = 3
	CapSetTSSAddr        Cap = 4
	CapExtCPUID          Cap = 7
	CapNRVCPUs           Cap = 9
	CapNRMemslots        Cap = 10
	CapMPState           Cap = 14
	CapIRQRouting        Cap = 25
	CapIRQFD             Cap = 32
	CapPIT2              Cap = 33
	CapIOEventFD         Cap = 36
	CapSetIdentityMap    Cap = 37
	CapMaxVCPUs          Cap = 66
	CapOneReg            Cap = 70
	CapReadonlyMem       Cap = 81
	CapARMPSCI           Cap = 87
	CapDeviceCtrl        Cap = 89
	CapARMEL132Bit       Cap = 93
	CapARMPSCI02         Cap = 102
	CapARMPMUv3          Cap = 126
	CapImmediateExit     Cap = 136
	CapARMVMIPASize      Cap = 165
	CapARMSVE            Cap = 170
	CapARMIRQLineLayout2 Cap = 174
	CapSystemEventData   Cap = 215
)

var capNames = map[Cap]string{
	CapIRQChip: "KVM_CAP_IRQCHIP", CapHLT: "KVM_CAP_HLT", CapUserMemory: "KVM_CAP_USER_MEMORY",
	CapSetTSSAddr: "KVM_CAP_SET_TSS_ADDR", CapExtCPUID: "KVM_CAP_EXT_CPUID", CapNRVCPUs: "KVM_CAP_NR_VCPUS",
	CapNRMemslots: "KVM_CAP_NR_MEMSLOTS", CapMPState: "KVM_CAP_MP_STATE", CapIRQRouting: "KVM_CAP_IRQ_ROUTING",
	CapIRQFD: "KVM_CAP_IRQFD", CapPIT2: "KVM_CAP_PIT2", CapIOEventFD: "KVM_CAP_IOEVENTFD",
	CapSetIdentityMap: "KVM_CAP_SET_IDENTITY_MAP_ADDR", CapMaxVCPUs: "KVM_CAP_MAX_VCPUS", CapOneReg: "KVM_CAP_ONE_REG",
	CapReadonlyMem: "KVM_CAP_READONLY_MEM", CapARMPSCI: "KVM_CAP_ARM_PSCI", CapDeviceCtrl: "KVM_CAP_DEVICE_CTRL", CapARMEL132Bit: "KVM_CAP_ARM_EL1_32BIT",
	CapARMPSCI02: "KVM_CAP_ARM_PSCI_0_2", CapImmediateExit: "KVM_CAP_IMMEDIATE_EXIT",
	CapARMVMIPASize: "KVM_CAP_ARM_VM_IPA_SIZE", CapARMIRQLineLayout2: "KVM_CAP_ARM_IRQ_LINE_LAYOUT_2",
	CapSystemEventData: "KVM_CAP_SYSTEM_EVENT_DATA", CapARMPMUv3: "KVM_CAP_ARM_PMU_V3", CapARMSVE: "KVM_CAP_ARM_SVE",
}

// CapByName returns the capability named as in <linux/kvm.h>
// ("KVM_CAP_IRQFD"), if Tandem knows it.
func CapByName(name string) (Cap, bool) {
	for c, n := range capNames {
		if n == name {
			return c, true
		}
	}
	return 0, false
}

func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return n
	}
	return fmt.Sprintf("KVM_CAP_%d", uintptr(c))
}

// Errors that callers branch on.
var (
	// ErrNoKVM means /dev/kvm does not exist: the host kernel has no KVM,
	// or the module is not loaded.
	ErrNoKVM = errors.New("no " + DevicePath + ": load the kvm module (kvm-intel, kvm-amd, or a host kernel with KVM built in)")
	// ErrPermission means /dev/kvm exists but cannot be opened.
	ErrPermission = errors.New("permission denied on " + DevicePath + ": run as root or join the kvm group")
	// ErrAPIVersion means the kernel speaks a KVM API other than 12.
	ErrAPIVersion = errors.New("unsupported KVM API version")
)

// MissingCapError reports a capability the host's KVM lacks.
type MissingCapError struct {
	Cap Cap
	Why string // what Tandem needs it for
}

func (e *MissingCapError) Error() string {
	return fmt.Sprintf("host KVM lacks %s (needed for %s)", e.Cap, e.Why)
}

// Exit reasons (KVM_EXIT_* in include/uapi/linux/kvm.h).
const (
	ExitUnknown       = 0
	ExitException     = 1
	ExitIO            = 2
	ExitHypercall     = 3
	ExitDebug         = 4
	ExitHLT           = 5
	ExitMMIO          = 6
	ExitIRQWindowOpen = 7
	ExitShutdown      = 8
	ExitFailEntry     = 9
	ExitIntr          = 10
	ExitInternalError = 17
	ExitSystemEvent   = 24
	ExitARMNISV       = 28
)

// System event types (KVM_SYSTEM_EVENT_*).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
	SystemEventWakeup   = 4
	SystemEventSuspend  = 5
)

// IO directions in kvm_run.io (KVM_EXIT_IO_IN/OUT).
const (
	ExitIOIn  = 0
	ExitIOOut = 1
)

// System is an open /dev/kvm.
type System struct {
	fd int
}

// Open opens /dev/kvm and checks the API version.
func Open() (*System, error) {
	return OpenPath(DevicePath)
}

// OpenPath opens the KVM device at path.
func OpenPath(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
		return nil, ErrNoKVM
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		return nil, ErrPermission
	case err != nil:
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	s := &System{fd: fd}
	v, err := ioctlInt(fd, reqGetAPIVersion, 0)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("KVM_GET_API_VERSION: %w", err)
	}
	if v != apiVersion {
		s.Close()
		return nil, fmt.Errorf("%w %d (want %d)", ErrAPIVersion, v, apiVersion)
	}
	return s, nil
}

// Available reports whether /dev/kvm can be opened, and why not. Tests use
// it to skip with a reason.
func Available() error {
	s, err := Open()
	if err != nil {
		return err
	}
	return s.Close()
}

// Close closes /dev/kvm. VMs created from it stay valid.
func (s *System) Close() error { return unix.Close(s.fd) }

// CheckExtension returns the value of KVM_CHECK_EXTENSION (0: absent).
func (s *System) CheckExtension(c Cap) int {
	v, err := ioctlInt(s.fd, reqCheckExtension, uintptr(c))
	if err != nil {
		return 0
	}
	return v
}

// Require returns a *MissingCapError for the first absent capability.
func (s *System) Require(why string, caps ...Cap) error {
	for _, c := range caps {
		if s.CheckExtension(c) <= 0 {
			return &MissingCapError{Cap: c, Why: why}
		}
	}
	return nil
}

// VCPUMmapSize returns the size of the kvm_run mapping.
func (s *System) VCPUMmapSize() (int, error) {
	n, err := ioctlInt(s.fd, reqGetVCPUMmapSize, 0)
	if err != nil {
		return 0, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	return n, nil
}

// VM is a KVM virtual machine.
type VM struct {
	sys      *System
	fd       int
	mmapSize int
}

// CreateVM creates a VM. machineType is 0 except on arm64, where it
// carries the IPA size (KVM_VM_TYPE_ARM_IPA_SIZE).
func (s *System) CreateVM(machineType uintptr) (*VM, error) {
	n, err := s.VCPUMmapSize()
	if err != nil {
		return nil, err
	}
	fd, err := ioctlInt(s.fd, reqCreateVM, machineType)
	if err != nil {
		return nil, fmt.Errorf("KVM_CREATE_VM: %w", err)
	}
	return &VM{sys: s, fd: fd, mmapSize: n}, nil
}

// System returns the /dev/kvm the VM was created from.
func (vm *VM) System() *System { return vm.sys }

// FD returns the VM's file descriptor.
func (vm *VM) FD() int { return vm.fd }

// Close closes the VM. Its vCPUs must be closed first.
func (vm *VM) Close() error { return unix.Close(vm.fd) }

// CheckExtension asks the VM (KVM_CHECK_EXTENSION on the VM fd): on arm64
// some answers depend on the VM's configuration.
func (vm *VM) CheckExtension(c Cap) int {
	v, err := ioctlInt(vm.fd, reqCheckExtension, uintptr(c))
	if err != nil {
		return 0
	}
	return v
}

// CreateIRQChip creates the in-kernel interrupt controller (x86: PIC,
// IOAPIC and LAPICs; arm: a GICv2 in the legacy way).
func (vm *VM) CreateIRQChip() error {
	if _, err := ioctlInt(vm.fd, reqCreateIRQChip, 0); err != nil {
		return fmt.Errorf("KVM_CREATE_IRQCHIP: %w", err)
	}
	return nil
}

// IOEventFD registers an eventfd that KVM signals on a guest write to
// addr (without exiting to userspace). With datamatch, only writes of
// that value match.
func (vm *VM) IOEventFD(fd int, addr uint64, length uint32, pio bool, datamatch *uint64) error {
	e := ioeventfd{Addr: addr, Len: length, FD: int32(fd)}
	if pio {
		e.Flags |= ioeventfdFlagPIO
	}
	if datamatch != nil {
		e.Flags |= ioeventfdFlagDatamatch
		e.Datamatch = *datamatch
	}
	return vm.ioeventfd(&e)
}

// errnoName formats an errno for messages: "EINVAL (invalid argument)".
func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return fmt.Sprintf("%s (%v)", unix.ErrnoName(e), err)
	}
	return err.Error()
}

// RunError is a KVM_RUN that failed: the errno says why. Some are the
// guest's doing rather than the host's (see the vmm package's
// runFailure); errors.Is(err, unix.ENOSYS) tells them apart.
type RunError struct {
	VCPU  int
	Errno unix.Errno
}

func (e *RunError) Error() string {
	return fmt.Sprintf("KVM_RUN on vCPU %d: %s", e.VCPU, errnoName(e.Errno))
}

func (e *RunError) Unwrap() error { return e.Errno }

// NewEventFD returns a non-blocking, close-on-exec eventfd.
func NewEventFD() (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	return os.NewFile(uintptr(fd), "eventfd"), nil
}
