package vmm

import (
	"fmt"
	"os"

	"github.com/tandem-hv/tandem/hv/devices/virtio"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// connectNotifications has KVM signal an eventfd for every write of a
// queue's index to a virtio device's QueueNotify register
// (KVM_IOEVENTFD, with the index as datamatch), and serves each eventfd
// on a goroutine of its own: a driver's notification then costs the guest
// no exit to the VMM, only KVM's own handling of the write, and the
// device's work is done beside the guest instead of on the vCPU that
// asked for it, as a C VMM's I/O threads do. A write KVM does not match
// (another value, another width) still exits and reaches the transport.
//
// Pinned guests (Config.VCPUAffinity, the control guest on dedicated
// cores) keep notifications on their vCPU threads: there the device work
// runs on the guest's own core at its own priority, where a goroutine
// would run on the housekeeping cores beside the other guests' load and
// its interrupt would come from another core (measured: the control
// guest missed its deadlines more often with eventfds, see
// docs/bench-notes.md). Without KVM_CAP_IOEVENTFD, notifications exit as
// before.
func (vm *VM) connectNotifications() error {
	if len(vm.cfg.VCPUAffinity) > 0 || vm.sys.CheckExtension(kvm.CapIOEventFD) <= 0 {
		return nil
	}
	for i, t := range vm.virtio {
		addr := vm.placed[i].Base + virtio.QueueNotifyOffset
		for q := 0; q < t.Queues(); q++ {
			if err := vm.notifyOn(t, addr, uint32(q)); err != nil {
				return fmt.Errorf("%s at %#x, queue %d: %w", t.Name(), vm.placed[i].Base, q, err)
			}
		}
	}
	return nil
}

// notifyOn registers one queue's eventfd and starts its goroutine.
func (vm *VM) notifyOn(t *virtio.MMIO, addr uint64, q uint32) error {
	f, err := kvm.NewEventFD()
	if err != nil {
		return err
	}
	fd, err := rawFD(f)
	if err != nil {
		f.Close()
		return err
	}
	match := uint64(q)
	if err := vm.kvm.IOEventFD(fd, addr, 4, false, &match); err != nil {
		f.Close()
		return err
	}
	vm.notifyFiles = append(vm.notifyFiles, f)
	vm.notifiers.Add(1)
	go func() {
		defer vm.notifiers.Done()
		serveNotifications(f, t, q)
	}()
	return nil
}

// serveNotifications passes each signal of f on to queue q of t until f
// is closed. The eventfd counts the writes since the last read; one
// notification serves them all, as the device takes every available
// buffer each time it is notified.
func serveNotifications(f *os.File, t *virtio.MMIO, q uint32) {
	var count [8]byte
	for {
		if _, err := f.Read(count[:]); err != nil {
			return // closed: the VM is being closed
		}
		t.NotifyQueue(q)
	}
}

// closeNotifications closes the eventfds, which ends their goroutines,
// and waits for them, so that no notification reaches a device after it.
func (vm *VM) closeNotifications() {
	for _, f := range vm.notifyFiles {
		f.Close()
	}
	vm.notifiers.Wait()
}

// rawFD returns f's descriptor without what os.File.Fd does besides:
// put the file into blocking mode, which would take it off the runtime's
// poller and tie up a thread in each read.
func rawFD(f *os.File) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	fd := -1
	if err := sc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}
