package vmm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// exitSource is what dispatch reads an exit's details from: a *kvm.VCPU,
// or made-up exits in tests.
type exitSource interface {
	IO() (kvm.IOExit, error)
	MMIO() kvm.MMIOExit
	SystemEvent() (uint32, []uint64)
	InternalError() (uint32, []uint64)
	FailEntry() uint64
}

// outcome is what a vCPU loop does after an exit.
type outcome struct {
	stop   bool
	exit   Exit
	reason string
}

var keepGoing = outcome{}

// dispatch handles one exit. It is a plain function so that tests can feed
// it exits without KVM. Port reads that no device claims return all ones
// (an undriven ISA bus floats high, and probes such as the PCI
// configuration mechanism rely on it); MMIO reads of nothing return zeros.
func dispatch(reason uint32, src exitSource, pio, mmio *bus.Bus, warn *devices.RateLimited) (outcome, error) {
	switch reason {
	case kvm.ExitIO:
		e, err := src.IO()
		if err != nil {
			return keepGoing, err
		}
		for i := 0; i < e.Count; i++ {
			d := e.Data[i*e.Size : (i+1)*e.Size]
			// A PC guest probes ports for hardware that may be absent
			// (PCI configuration, more UARTs, CMOS): writes to nothing
			// are dropped without a word, as an ISA bus does.
			if e.Out {
				pio.Write(uint64(e.Port), d)
			} else if !pio.Read(uint64(e.Port), d) {
				for j := range d {
					d[j] = 0xff
				}
			}
		}
		return keepGoing, nil
	case kvm.ExitMMIO:
		e := src.MMIO()
		if e.IsWrite {
			if !mmio.Write(e.Addr, e.Data) {
				warn.Printf("MMIO write %#x (%d bytes) to nothing", e.Addr, len(e.Data))
			}
		} else if !mmio.Read(e.Addr, e.Data) {
			warn.Printf("MMIO read %#x (%d bytes) from nothing", e.Addr, len(e.Data))
		}
		return keepGoing, nil
	case kvm.ExitIntr, kvm.ExitIRQWindowOpen:
		return keepGoing, nil
	case kvm.ExitHLT:
		// Only without an in-kernel irqchip does HLT reach us: the CPU
		// waits for an interrupt nobody will send.
		return outcome{true, ExitPowerOff, "halted"}, nil
	case kvm.ExitShutdown:
		// A triple fault. Linux's reboot=t resets this way on purpose;
		// anything else doing it has crashed. Either way the machine
		// resets, as real hardware does.
		return outcome{true, ExitReset, "triple fault (shutdown)"}, nil
	case kvm.ExitSystemEvent:
		typ, data := src.SystemEvent()
		switch typ {
		case kvm.SystemEventShutdown:
			return outcome{true, ExitPowerOff, "power-off"}, nil
		case kvm.SystemEventReset:
			// PSCI SYSTEM_RESET2 (PSCI 1.1) arrives as a reset too, with
			// a flag in data[0]; its reset type and cookie are in the
			// guest's x1 and x2. Both architectural and vendor resets
			// mean a reset of the whole guest here.
			if len(data) > 0 && data[0]&kvm.SystemEventResetFlagPSCIReset2 != 0 {
				return outcome{true, ExitReset, "reset (PSCI SYSTEM_RESET2)"}, nil
			}
			return outcome{true, ExitReset, "reset"}, nil
		case kvm.SystemEventCrash:
			return outcome{true, ExitCrash, fmt.Sprintf("crash event %#x", data)}, nil
		}
		return keepGoing, nil
	case kvm.ExitInternalError:
		sub, data := src.InternalError()
		return outcome{true, ExitCrash, fmt.Sprintf("KVM internal error %d %#x", sub, data)}, nil
	case kvm.ExitFailEntry:
		return outcome{true, ExitCrash, fmt.Sprintf("VM entry failed: hardware reason %#x", src.FailEntry())}, nil
	case kvm.ExitARMNISV:
		// What ENOSYS from KVM_RUN is (runFailure) when the VMM asks
		// for KVM_CAP_ARM_NISV_TO_USER: a guest MMIO access without a
		// valid syndrome.
		return outcome{true, ExitCrash, "MMIO access KVM cannot decode (KVM_EXIT_ARM_NISV)"}, nil
	}
	return outcome{true, ExitCrash, fmt.Sprintf("unhandled KVM exit %d", reason)}, nil
}

// runFailure says whether a failed KVM_RUN is the guest's doing, and if
// so how the guest ends: as a crash, which the supervisor restarts by
// policy, not as ExitError, "the VMM failed". It is a plain function, fed
// made-up errors in tests.
//
// ENOSYS: on arm64 and 32-bit ARM hosts KVM_RUN fails so for a data
// abort outside every memslot whose syndrome does not describe the access
// (ESR_ELx.ISV clear: a load or store pair, one with writeback, a
// cache maintenance by VA on device memory), which KVM cannot hand to
// user space as an MMIO exit (arch/arm64/kvm/mmio.c, io_mem_abort: "load/
// store instruction decoding not implemented") unless the VMM enables
// KVM_CAP_ARM_NISV_TO_USER, and then real hardware would not complete the
// access either. Only the guest's instructions bring it about.
func runFailure(err error) (outcome, bool) {
	if errors.Is(err, unix.ENOSYS) {
		return outcome{true, ExitCrash, fmt.Sprintf("%v: the guest accessed device memory with an instruction KVM cannot emulate (no valid syndrome; a load/store pair or writeback to MMIO)", err)}, true
	}
	return keepGoing, false
}
