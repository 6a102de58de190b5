package vmm

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
)

// DumpState has every vCPU say where it is, one line each on w (the VM's
// standard error when nil): its multiprocessing state, how many times it
// has left the guest, and its instruction pointer and mode. A guest that
// hangs then shows whether its CPUs spin (the pc stays, the exits do
// not grow), wait for an interrupt (halted) or were never started
// (stopped). Each vCPU is kicked out of KVM_RUN to read its own
// registers, which only its thread may, and goes on at once.
func (vm *VM) DumpState(w io.Writer) {
	if w == nil {
		w = os.Stderr
	}
	pid := unix.Getpid()
	for i, c := range vm.vcpus {
		// immediate_exit before the request: a vCPU that sees the
		// request clears immediate_exit for good (see dumpIfAsked).
		c.SetImmediateExit(true)
		vm.dumpTo[i].Store(&w)
		if tid := vm.tids[i].Load(); tid != 0 {
			unix.Tgkill(pid, int(tid), unix.SIGURG)
		}
	}
}

// dumpIfAsked prints vCPU i's state, with the exits it has made, if
// DumpState asked for it. It runs on the vCPU's thread after every
// KVM_RUN: a plain load when nothing was asked.
func (vm *VM) dumpIfAsked(i int, c *kvm.VCPU, exits uint64) {
	if vm.dumpTo[i].Load() == nil {
		return
	}
	w := vm.dumpTo[i].Swap(nil)
	if w == nil {
		return
	}
	if !vm.stopping.Load() {
		c.SetImmediateExit(false)
	}
	fmt.Fprintf(*w, "tandem: %s: vCPU %d: %s exits=%d %s\n", vm.name(), i, mpState(c), exits, vcpuRegisters(vm, c))
}

// mpStates names KVM's multiprocessing states (KVM_MP_STATE_*).
var mpStates = map[kvm.MPState]string{
	0: "runnable", 1: "uninitialized", 2: "init-received", 3: "halted",
	4: "sipi-received", 5: "stopped", 10: "suspended",
}

func mpState(c *kvm.VCPU) string {
	s, err := c.GetMPState()
	if err != nil {
		return "state=unknown"
	}
	if name, ok := mpStates[s]; ok {
		return "state=" + name
	}
	return fmt.Sprintf("state=%d", s)
}

// vcpuRegisters is where a vCPU is, in its architecture's terms.
func vcpuRegisters(vm *VM, c *kvm.VCPU) string {
	switch g := vm.arch.(type) {
	case *x86Guest:
		return x86Registers(c, vm.mem)
	case *arm64Guest:
		return armRegisters(c, kvm.RegARM64PC, kvm.RegARM64PState, "pstate")
	case *arm32Guest:
		return armRegisters(c, g.abi.PC, g.abi.CPSR, "cpsr")
	}
	return ""
}

// x86Registers: the instruction and stack, the flags, the page tables,
// the privilege level and the last page-fault address, then the words on
// top of the stack as guest RAM holds them (see x86Stack).
func x86Registers(c *kvm.VCPU, m *mem.Memory) string {
	r, err := c.GetRegs()
	if err != nil {
		return "registers unreadable: " + err.Error()
	}
	sr, err := c.GetSregs()
	if err != nil {
		return "registers unreadable: " + err.Error()
	}
	return formatX86(r, sr) + " " + x86Stack(c, m, sr.SS.Base+r.RSP)
}

// stackWords is how many words of a vCPU's stack a dump prints.
const stackWords = 8

// x86Stack reads up to stackWords words from the top of the stack (sp is
// its linear address), as far as the page it is in goes, through the guest's own page tables. They are
// the return addresses a hung guest's call chain left, so a guest halted
// in a kernel's error loop says which caller it came from. Read through
// the VMM's mapping of guest RAM, they also show whether what the guest
// wrote reached the memory the VMM gave it: a stack of zeros under a
// vCPU that has been calling functions would not.
func x86Stack(c *kvm.VCPU, m *mem.Memory, sp uint64) string {
	if m == nil {
		return "stack=?"
	}
	gpa, mapped, err := c.Translate(sp)
	if err != nil || !mapped {
		return "stack=unmapped"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "stack@%#x=[", gpa)
	for i := uint64(0); i < stackWords; i++ {
		a := gpa + 8*i
		if i > 0 && a%4096 == 0 {
			break
		}
		w, err := m.Uint64(a)
		if err != nil {
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%#x", w)
	}
	b.WriteByte(']')
	return b.String()
}

// formatX86 is x86Registers' text for registers already read.
func formatX86(r kvm.Regs, sr kvm.Sregs) string {
	return fmt.Sprintf("rip=%#x rsp=%#x rflags=%#x cpl=%d cr0=%#x cr2=%#x cr3=%#x",
		r.RIP, r.RSP, r.RFLAGS, sr.CS.Selector&3, sr.CR0, sr.CR2, sr.CR3)
}

// armRegisters: the pc and the processor state (exception level or mode).
func armRegisters(c *kvm.VCPU, pcID, stateID uint64, stateName string) string {
	pc, err := c.GetOneReg(pcID)
	if err != nil {
		return "registers unreadable: " + err.Error()
	}
	st, err := c.GetOneReg(stateID)
	if err != nil {
		return "registers unreadable: " + err.Error()
	}
	return fmt.Sprintf("pc=%#x %s=%#x", pc, stateName, st)
}

// DumpOnSignal has vm print its vCPUs' state (DumpState, on standard
// error) each time the process gets sig, until stop is called. Commands
// that run a guest use it with SIGUSR1.
func DumpOnSignal(vm *VM, sig os.Signal) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sig)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				vm.DumpState(nil)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
