// Package tinyguest runs guests of a few hand-assembled bytes on KVM: the
// smallest real workloads for testing and measuring the exit path.
package tinyguest

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// Guest is a VM with 64 KiB of RAM at 0 and one vCPU starting at
// CodeAddr: in real mode on an x86 host, at EL1 with the MMU off on an
// arm64 host.
type Guest struct {
	Sys *kvm.System
	VM  *kvm.VM
	CPU *kvm.VCPU
	RAM []byte
}

const (
	// RAMSize is the guest's memory, at guest-physical 0.
	RAMSize = 0x10000
	// CodeAddr is where the code is placed and where the vCPU starts.
	CodeAddr = 0x1000
	// MMIOAddr is where the MMIO loops write: outside RAM, so each write
	// exits to the VMM.
	MMIOAddr = 0x20000
)

// Loop is the exit-latency guest: an endless port write.
//
//	1000: ee     out dx, al
//	1001: eb fd  jmp 0x1000
var Loop = []byte{0xee, 0xeb, 0xfd}

// MMIOLoop is the same with an MMIO write outside RAM.
//
//	1000: b8 00 20        mov  ax, 0x2000
//	1003: 8e d8           mov  ds, ax          ; ds:0 = 0x20000
//	1005: a2 00 00        mov  [0x0], al       ; MMIO write
//	1008: eb fb           jmp  0x1005
var MMIOLoop = []byte{0xb8, 0x00, 0x20, 0x8e, 0xd8, 0xa2, 0x00, 0x00, 0xeb, 0xfb}

// ARM64MMIOLoop is MMIOLoop for an arm64 guest. x1 holds MMIOAddr (set
// by New); a single-register store has a valid syndrome, so KVM hands it
// to the VMM as an MMIO exit.
//
//	1000: b9000020  str  w0, [x1]
//	1004: 17ffffff  b    0x1000
var ARM64MMIOLoop = []byte{0x20, 0x00, 0x00, 0xb9, 0xff, 0xff, 0xff, 0x17}

// New creates the guest with code at CodeAddr. Close releases it.
func New(code []byte) (*Guest, error) {
	if len(code) > RAMSize-CodeAddr {
		return nil, fmt.Errorf("tiny guest: %d bytes of code do not fit", len(code))
	}
	sys, err := kvm.Open()
	if err != nil {
		return nil, err
	}
	g := &Guest{Sys: sys}
	if err := g.build(code); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

func (g *Guest) build(code []byte) error {
	var err error
	if g.VM, err = g.Sys.CreateVM(0); err != nil {
		return err
	}
	if g.RAM, err = unix.Mmap(-1, 0, RAMSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fmt.Errorf("tiny guest RAM: %w", err)
	}
	copy(g.RAM[CodeAddr:], code)
	if err := g.VM.SetUserMemoryRegion(0, 0, g.RAM, false); err != nil {
		return err
	}
	if g.CPU, err = g.VM.CreateVCPU(0); err != nil {
		return err
	}
	return g.reset()
}

// Close releases the vCPU, the VM and the RAM.
func (g *Guest) Close() {
	if g.CPU != nil {
		g.CPU.Close()
	}
	if g.VM != nil {
		g.VM.Close()
	}
	if g.RAM != nil {
		unix.Munmap(g.RAM)
	}
	g.Sys.Close()
}
