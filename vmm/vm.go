// Package vmm runs one virtual machine on KVM: Config → Build (a readable
// list of steps) → Run, with one OS thread per vCPU and a plain exit
// dispatcher.
//
// A guest is untrusted. Everything it can reach — its RAM, its device
// registers, its virtqueues — is checked before use; a misbehaving guest
// fails its own devices or ends its own VM, never the VMM.
package vmm

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/devices/virtio"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/sandbox"
)

// Exit says how a guest ended.
type Exit int

// How a guest can end. The values are the process exit statuses of
// `tandem run` and `tandem vmm`, so a supervisor can tell them apart.
const (
	ExitPowerOff Exit = 0 // the guest powered off (PSCI SYSTEM_OFF, ACPI S5)
	ExitError    Exit = 1 // the VMM failed (a returned error)
	ExitReset    Exit = 2 // the guest asked for a reset and restart is off
	ExitCrash    Exit = 3 // the guest crashed (triple fault, KVM internal error, crash event)
	ExitStopped  Exit = 4 // stopped from outside (signal, context)
	ExitWatchdog Exit = 5 // the guest stopped pinging its watchdog
	// ExitFatal: the guest could not start, and no restart would help:
	// its configuration or the host is at fault (see FatalError).
	ExitFatal Exit = 6
)

func (e Exit) String() string {
	switch e {
	case ExitPowerOff:
		return "power-off"
	case ExitError:
		return "error"
	case ExitReset:
		return "reset"
	case ExitCrash:
		return "crash"
	case ExitStopped:
		return "stopped"
	case ExitWatchdog:
		return "watchdog"
	case ExitFatal:
		return "fatal"
	}
	return fmt.Sprintf("exit(%d)", int(e))
}

// ExitErr is the error Run returns, as an *ExitErr, when the guest ended
// in any way other than powering off; the CLI turns it into the process's
// exit status. (ExitError is one such Exit: the VMM failed.)
type ExitErr struct {
	Exit   Exit
	Reason string
}

func (e *ExitErr) Error() string   { return fmt.Sprintf("guest ended: %s: %s", e.Exit, e.Reason) }
func (e *ExitErr) ExitCode() int   { return int(e.Exit) }
func (e *ExitErr) Is(t error) bool { _, ok := t.(*ExitErr); return ok }

// archGuest is what differs per guest architecture. Each step of Build
// that depends on the guest's architecture calls into it.
type archGuest interface {
	// memoryRanges lays out guest RAM of the given size.
	memoryRanges(size uint64) []mem.Range
	// setupVM creates the in-kernel interrupt controller and timers.
	setupVM(vm *VM) error
	// virtioSlot places the i-th virtio-mmio device.
	virtioSlot(i int) (devices.Placement, error)
	// addPlatformDevices adds the console UART and the board's fixed devices.
	addPlatformDevices(vm *VM) error
	// checkKernel says what is wrong with the guest's kernel file, before
	// any of KVM is opened; loadKernel reads it again into guest memory.
	checkKernel(c *Config) error
	// loadKernel places kernel, initrd and the hardware description.
	loadKernel(vm *VM) error
	// setupVCPU resets one vCPU to the boot state.
	setupVCPU(vm *VM, cpu *kvm.VCPU) error
	// finishVM completes the VM once every vCPU exists (arm64: the vGIC
	// is initialised and the device tree, which lists the vCPUs, written).
	finishVM(vm *VM) error
}

// VM is one built virtual machine.
type VM struct {
	cfg  Config
	arch archGuest

	sys   *kvm.System
	kvm   *kvm.VM
	mem   *mem.Memory
	mmio  bus.Bus
	pio   bus.Bus
	vcpus []*kvm.VCPU
	// slots counts the KVM memory slots taken: guest RAM's, then
	// passed-through registers' and a firmware guest's flash (nextSlot).
	slots uint32

	virtio   []*virtio.MMIO
	placed   []devices.Placement // virtio devices, in slot order
	irqs     []*os.File          // eventfds behind irqfds
	gsis     []uint32            // the GSI of each of irqs
	closers  []io.Closer
	warn     *devices.RateLimited
	stopOnce sync.Once
	outcome  atomic.Int32 // Exit, once stopping
	reason   atomic.Value // string
	stopping atomic.Bool
	tids     []atomic.Int32              // vCPU thread ids, for kicking
	dumpTo   []atomic.Pointer[io.Writer] // DumpState's request per vCPU
	vsock    *virtio.Vsock               // nil without Config.Vsock
	display  *DisplayDevices             // nil without Config.Display
	passed   []*passedDevice
	// notifyFiles are the eventfds KVM signals for QueueNotify writes;
	// notifiers counts the goroutines serving them.
	notifyFiles []*os.File
	notifiers   sync.WaitGroup
}

// Vsock returns the guest's vsock device, or nil.
func (vm *VM) Vsock() *virtio.Vsock { return vm.vsock }

// DisplayDevices are a guest's display and its input devices.
type DisplayDevices struct {
	GPU      *virtio.GPU
	Keyboard *virtio.Input
	Touch    *virtio.Input
	fanout   flushFanout // the GPU's flushes go to its sinks (AddFlushSink)
}

// Display returns the guest's display devices, or nil without
// Config.Display.
func (vm *VM) Display() *DisplayDevices { return vm.display }

// newDisplayDevices makes the devices of a display: the touch screen's
// coordinates are the scanout's pixels.
func newDisplayDevices(d *Display) (*DisplayDevices, error) {
	gpu, err := virtio.NewGPU(d.gpuConfig())
	if err != nil {
		return nil, err
	}
	touch, err := virtio.NewTouchscreen(gpu.Size())
	if err != nil {
		return nil, err
	}
	dd := &DisplayDevices{GPU: gpu, Keyboard: virtio.NewKeyboard(), Touch: touch}
	gpu.SetFlushHandler(func(damage image.Rectangle) { dd.fanout.flushed(gpu, damage) })
	return dd, nil
}

// Build creates the VM. It checks its inputs first (Check), before it
// opens /dev/kvm. The steps run in this order because each needs the one
// before: devices are placed before the kernel is loaded since the
// hardware description (ACPI or device tree) lists them. An error no
// restart can cure (Check's, or the host's KVM missing or refused) is a
// *FatalError.
func Build(cfg Config) (*VM, error) {
	g, err := cfg.check()
	if err != nil {
		return nil, &FatalError{Err: err}
	}
	if cfg.Sandbox != nil {
		if err := sandbox.SetLimits(buildLimits(cfg, 0)); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	cfg.Timeline.Step("checking the configuration")
	vm := &VM{cfg: cfg, arch: g, warn: devices.NewRateLimited(os.Stderr, 10)}
	// A device model that panics is failed on its own (hv/bus): say so
	// among the VM's other warnings.
	vm.mmio.SetWarnings(vm.warn)
	vm.pio.SetWarnings(vm.warn)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"creating the VM", vm.newVM},
		{"adding guest memory", vm.addMemory},
		{"attaching devices", vm.attachDevices},
		{"connecting queue notifications", vm.connectNotifications},
		{"passing host devices through", vm.passThrough},
		{"loading the kernel", func() error { return vm.arch.loadKernel(vm) }},
		{"creating vCPUs", vm.createVCPUs},
		{"finishing the VM", func() error { return vm.arch.finishVM(vm) }},
		{"connecting interrupts", vm.connectInterrupts},
	}
	if cfg.Display != nil {
		steps = append(steps, struct {
			name string
			fn   func() error
		}{"serving the display", vm.serveDisplay})
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			vm.Close()
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		cfg.Timeline.Step(s.name)
	}
	return vm, nil
}

// openKVM opens /dev/kvm and checks what every guest needs of it. What
// fails here is the host's: no KVM, no permission, too old a KVM.
func openKVM() (*kvm.System, error) {
	if err := hostKVM(); err != nil {
		return nil, &FatalError{Err: err}
	}
	sys, err := kvm.Open()
	if err != nil {
		if errors.Is(err, kvm.ErrNoKVM) || errors.Is(err, kvm.ErrPermission) || errors.Is(err, kvm.ErrAPIVersion) {
			err = &FatalError{Err: err}
		}
		return nil, err
	}
	if err := sys.Require("running guests", kvm.CapUserMemory, kvm.CapIRQChip, kvm.CapIRQFD); err != nil {
		sys.Close()
		var missing *kvm.MissingCapError
		if errors.As(err, &missing) {
			err = &FatalError{Err: err}
		}
		return nil, err
	}
	return sys, nil
}

func (vm *VM) newVM() error {
	sys, err := openKVM()
	if err != nil {
		return err
	}
	vm.sys = sys
	v, err := sys.CreateVM(0)
	if err != nil {
		return err
	}
	vm.kvm = v
	return vm.arch.setupVM(vm)
}

func (vm *VM) addMemory() error {
	m, err := mem.New(vm.arch.memoryRanges(vm.cfg.Memory), mem.Options{Lock: vm.cfg.Lock, HugePages: vm.cfg.HugePages})
	if err != nil {
		return err
	}
	vm.mem = m
	for _, r := range m.Regions() {
		if err := vm.kvm.SetUserMemoryRegion(vm.nextSlot(), r.GPA, r.Host, false); err != nil {
			return err
		}
	}
	return nil
}

// nextSlot takes the next free KVM memory slot.
func (vm *VM) nextSlot() uint32 {
	vm.slots++
	return vm.slots - 1
}

// newInterrupt returns an edge-triggered line to gsi backed by an irqfd.
// The irqfd is registered later, by connectInterrupts.
func (vm *VM) newInterrupt(gsi uint32) (devices.Interrupt, error) {
	f, err := kvm.NewEventFD()
	if err != nil {
		return nil, err
	}
	vm.irqs = append(vm.irqs, f)
	vm.gsis = append(vm.gsis, gsi)
	return eventInterrupt{f}, nil
}

// connectInterrupts registers the irqfds of every line. KVM takes irqfds
// only once the interrupt controller is initialised (on arm64 that is
// the vGIC's CTRL_INIT, after all vCPUs exist: KVM_IRQFD fails with
// EAGAIN before). An event written before then is not lost: KVM delivers
// it when the irqfd is registered.
func (vm *VM) connectInterrupts() error {
	for i, f := range vm.irqs {
		if err := vm.kvm.IRQFD(int(f.Fd()), vm.gsis[i]); err != nil {
			return err
		}
	}
	return nil
}

// eventInterrupt raises its GSI by writing the eventfd KVM watches.
type eventInterrupt struct{ f *os.File }

var one = []byte{1, 0, 0, 0, 0, 0, 0, 0}

func (e eventInterrupt) Trigger() error {
	_, err := unix.Write(int(e.f.Fd()), one)
	if errors.Is(err, unix.EAGAIN) {
		return nil // the counter is saturated: the interrupt is pending anyway
	}
	return err
}

func (vm *VM) attachDevices() error {
	if err := vm.arch.addPlatformDevices(vm); err != nil {
		return err
	}
	var devs []virtio.Device
	for i, d := range vm.cfg.Disks {
		b, err := virtio.NewBlock(d.Path, d.ReadOnly)
		if err != nil {
			return fmt.Errorf("disk %d: %w", i, err)
		}
		devs = append(devs, b)
	}
	for i, n := range vm.cfg.Nets {
		mac := n.MAC
		if mac == nil {
			mac = derivedMAC(vm.cfg.Name, i)
		}
		d, err := virtio.NewNet(n.TAP, mac)
		if err != nil {
			return fmt.Errorf("net %d: %w", i, err)
		}
		devs = append(devs, d)
	}
	devs = append(devs, virtio.NewConsole(nil, vm.cfg.Console.Out), virtio.NewRNG())
	if v := vm.cfg.Vsock; v != nil {
		vm.vsock = virtio.NewVsock(uint64(v.CID), v.Host)
		devs = append(devs, vm.vsock)
	}
	// The display's devices come last, so that adding a display moves
	// no other device to another slot.
	if d := vm.cfg.Display; d != nil {
		dd, err := newDisplayDevices(d)
		if err != nil {
			return fmt.Errorf("display: %w", err)
		}
		vm.display = dd
		devs = append(devs, dd.GPU, dd.Keyboard, dd.Touch)
	}
	for i, d := range devs {
		p, err := vm.arch.virtioSlot(i)
		if err != nil {
			return err
		}
		irq, err := vm.newInterrupt(p.IRQ)
		if err != nil {
			return err
		}
		t := virtio.NewMMIO(d, vm.mem, irq)
		t.SetPlacement(p)
		if err := vm.mmio.Insert(t, p.Base, p.Size); err != nil {
			return fmt.Errorf("%s at %#x: %w", t.Name(), p.Base, err)
		}
		vm.virtio = append(vm.virtio, t)
		vm.placed = append(vm.placed, p)
		vm.closers = append(vm.closers, t)
	}
	return nil
}

func (vm *VM) createVCPUs() error {
	vm.tids = make([]atomic.Int32, vm.cfg.CPUs)
	vm.dumpTo = make([]atomic.Pointer[io.Writer], vm.cfg.CPUs)
	for i := 0; i < vm.cfg.CPUs; i++ {
		c, err := vm.kvm.CreateVCPU(i)
		if err != nil {
			return err
		}
		vm.vcpus = append(vm.vcpus, c)
		if err := vm.arch.setupVCPU(vm, c); err != nil {
			return fmt.Errorf("vCPU %d: %w", i, err)
		}
	}
	return nil
}

// Memory returns the guest's RAM (for tests and benchmarks).
func (vm *VM) Memory() *mem.Memory { return vm.mem }

// Stop ends the guest from outside, with the given outcome.
func (vm *VM) Stop(e Exit, reason string) { vm.stop(e, reason) }

func (vm *VM) stop(e Exit, reason string) {
	vm.stopOnce.Do(func() {
		vm.outcome.Store(int32(e))
		vm.reason.Store(reason)
		vm.stopping.Store(true)
		vm.kickAll()
	})
}

// kickAll makes every vCPU leave KVM_RUN: immediate_exit covers a vCPU
// about to enter, the signal one already inside (KVM_RUN returns EINTR).
// SIGURG is Go's own preemption signal, so the runtime shrugs it off.
func (vm *VM) kickAll() {
	pid := unix.Getpid()
	for i, c := range vm.vcpus {
		c.SetImmediateExit(true)
		if tid := vm.tids[i].Load(); tid != 0 {
			unix.Tgkill(pid, int(tid), unix.SIGURG)
		}
	}
}

// Run runs the guest until it powers off, resets, crashes, fails, or ctx
// is done. A power-off returns nil; every other end returns an *ExitErr
// (or another error when the VMM itself failed).
func (vm *VM) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(vm.vcpus))
	placed := make(chan struct{}, len(vm.vcpus))
	gate := make(chan struct{})
	for i, c := range vm.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = vm.runVCPU(i, c, placed, gate)
		}()
	}
	// The sandbox goes up once every vCPU thread has its cores and its
	// priority (which it refuses to change later) and before any guest
	// code runs.
	for range vm.vcpus {
		<-placed
	}
	var sandboxErr error
	if vm.cfg.Sandbox != nil && !vm.stopping.Load() {
		if sandboxErr = vm.applySandbox(); sandboxErr != nil {
			vm.stop(ExitError, sandboxErr.Error())
		}
	}
	close(gate)
	settled := time.AfterFunc(setUpSettle, releaseSetUpPages)
	defer settled.Stop()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			vm.stop(ExitStopped, context.Cause(ctx).Error())
		case <-done:
		}
	}()
	wg.Wait()
	close(done)
	if sandboxErr != nil {
		return sandboxErr
	}
	if err := errors.Join(errs...); err != nil {
		if vm.cfg.Sandbox != nil {
			err = sandbox.Explain(err)
		}
		return err
	}
	e := Exit(vm.outcome.Load())
	if e == ExitPowerOff {
		return nil
	}
	r, _ := vm.reason.Load().(string)
	return &ExitErr{Exit: e, Reason: r}
}

// runVCPU is one vCPU's thread: enter the guest, dispatch the exit, repeat.
// It says on placed when its thread has its cores and priority, and waits
// for gate before it enters the guest.
func (vm *VM) runVCPU(i int, c *kvm.VCPU, placed chan<- struct{}, gate <-chan struct{}) error {
	// KVM ties a vCPU to the thread that runs it; moving threads costs a
	// reload each time, and signals must reach the right thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer reserveProc()()
	vm.tids[i].Store(int32(unix.Gettid()))
	// Named for ps, top and tandem threads (before the sandbox, which
	// allows no prctl).
	if name, err := unix.BytePtrFromString(fmt.Sprintf("vcpu%d", i)); err == nil {
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
	}
	err := placeThread(vm.cfg.VCPUAffinity, vm.cfg.RTPriority)
	if err != nil {
		vm.stop(ExitError, err.Error())
	}
	placed <- struct{}{}
	<-gate
	if err != nil {
		return fmt.Errorf("vCPU %d: %w", i, err)
	}
	var exits uint64 // KVM_RUN returns, for DumpState
	vm.cfg.Timeline.guestEntered()
	for !vm.stopping.Load() {
		reason, err := c.Run()
		exits++
		vm.dumpIfAsked(i, c, exits)
		if err != nil {
			if out, guest := runFailure(err); guest {
				vm.stop(out.exit, fmt.Sprintf("vCPU %d: %s", i, out.reason))
				return nil
			}
			vm.stop(ExitError, err.Error())
			return fmt.Errorf("vCPU %d: %w", i, err)
		}
		out, err := dispatch(reason, c, &vm.pio, &vm.mmio, vm.warn)
		if err != nil {
			vm.stop(ExitError, err.Error())
			return fmt.Errorf("vCPU %d: %w", i, err)
		}
		if out.stop {
			if reason == kvm.ExitShutdown {
				out.reason += shutdownState(c)
			}
			vm.stop(out.exit, fmt.Sprintf("vCPU %d: %s", i, out.reason))
		}
	}
	return nil
}

// shutdownState is where an x86 vCPU was when it triple-faulted, for the
// guest's end reason, with the IDT and the GS base (per-CPU data in a
// Linux kernel) besides what DumpState gives. "" when KVM will not say.
func shutdownState(c *kvm.VCPU) string {
	sr, err := c.GetSregs()
	if err != nil {
		return ""
	}
	r, err := c.GetRegs()
	if err != nil {
		return ""
	}
	// On AMD (SVM) KVM answers a shutdown intercept by resetting the
	// vCPU, as some boards do, before it exits: its registers are then
	// the reset vector's, which say nothing of where it faulted.
	if r.RIP == 0xfff0 && sr.CS.Base == 0xffff0000 && sr.CR0&1 == 0 {
		return " (its registers are lost: KVM reset the vCPU at the shutdown, as it does on AMD)"
	}
	return fmt.Sprintf(" at %s idt=%#x/%#x gs=%#x", formatX86(r, sr), sr.IDT.Base, sr.IDT.Limit, sr.GS.Base)
}

// Close releases everything the VM holds. It is safe after a failed Build.
func (vm *VM) Close() error {
	vm.closeNotifications()
	for _, c := range vm.closers {
		c.Close()
	}
	for _, c := range vm.vcpus {
		c.Close()
	}
	for _, f := range vm.irqs {
		f.Close()
	}
	if vm.kvm != nil {
		vm.kvm.Close()
	}
	vm.closePassthrough()
	if vm.mem != nil {
		vm.mem.Close()
	}
	if vm.sys != nil {
		vm.sys.Close()
	}
	return nil
}

// derivedMAC makes a stable, locally administered MAC for a guest's NIC.
func derivedMAC(name string, i int) []byte {
	h := uint32(2166136261) // FNV-1a
	for _, b := range []byte(name) {
		h = (h ^ uint32(b)) * 16777619
	}
	return []byte{0x52, 0x54, byte(h >> 24), byte(h >> 16), byte(h >> 8), byte(i)}
}
