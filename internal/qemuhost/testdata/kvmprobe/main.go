// Command kvmprobe runs inside an emulated host: it opens /dev/kvm, makes
// a VM with 64 KiB of RAM, runs a few bytes of real-mode code to an OUT
// and a HLT, and prints what KVM reported. It proves that nested KVM works
// in the harness before anything as large as a Linux guest is tried.
package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/kvm"
)

const (
	ramSize  = 0x10000
	codeAddr = 0x1000
	port     = 0x3f8
	value    = 'K'
)

// code (real mode, 16-bit):
//
//	1000: ba f8 03   mov dx, 0x3f8
//	1003: b0 4b      mov al, 'K'
//	1005: ee         out dx, al
//	1006: f4         hlt
var code = []byte{0xba, 0xf8, 0x03, 0xb0, value, 0xee, 0xf4}

func main() {
	if err := run(); err != nil {
		fmt.Printf("KVMPROBE fail %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	start := time.Now()
	sys, err := kvm.Open()
	if err != nil {
		return err
	}
	vm, err := sys.CreateVM(0)
	if err != nil {
		return err
	}
	ram, err := unix.Mmap(-1, 0, ramSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("mapping guest RAM: %w", err)
	}
	copy(ram[codeAddr:], code)
	if err := vm.SetUserMemoryRegion(0, 0, ram, false); err != nil {
		return err
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		return err
	}
	sr, err := cpu.GetSregs()
	if err != nil {
		return err
	}
	// Flat real mode: CS base 0, so RIP is the physical address.
	sr.CS.Base, sr.CS.Selector = 0, 0
	if err := cpu.SetSregs(sr); err != nil {
		return err
	}
	if err := cpu.SetRegs(kvm.Regs{RIP: codeAddr, RFLAGS: 2}); err != nil {
		return err
	}
	var got []string
	for i := 0; i < 10; i++ {
		reason, err := cpu.Run()
		// A signal (Go's preemption) ended KVM_RUN before the guest
		// exited: enter again.
		for err == nil && reason == kvm.ExitIntr {
			reason, err = cpu.Run()
		}
		if err != nil {
			return err
		}
		switch reason {
		case kvm.ExitIO:
			io, err := cpu.IO()
			if err != nil {
				return err
			}
			if !io.Out || io.Port != port || len(io.Data) != 1 || io.Data[0] != value {
				return fmt.Errorf("exit %d: I/O out=%v port %#x data %q, want an OUT of %q to %#x", i, io.Out, io.Port, io.Data, value, port)
			}
			got = append(got, fmt.Sprintf("out=%#x:%q", io.Port, io.Data))
		case kvm.ExitHLT:
			fmt.Printf("KVMPROBE ok exits=%v hlt after=%v\n", got, time.Since(start))
			return nil
		default:
			return fmt.Errorf("exit %d: reason %d, want IO then HLT", i, reason)
		}
	}
	return fmt.Errorf("no HLT after 10 exits")
}
