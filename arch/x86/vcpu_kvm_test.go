package x86

import (
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/kvmtest"
)

// testPort is the port the tiny guest writes to: the PC's POST-code port.
const testPort = 0x80

// entryCode is the tiny guest placed at the 64-bit entry point of a
// synthetic bzImage. The first OUT writes a value only a 64-bit MOV and
// SHR can produce (in 32-bit mode 0x48 decodes as DEC EAX and the rest
// falls apart); the second writes type_of_loader from the zero page
// through RSI.
//
//	0:  48 b8 88 77 66 55 44 33 22 11   movabs rax, 0x1122334455667788
//	a:  48 c1 e8 20                     shr    rax, 0x20
//	e:  66 ba 80 00                     mov    dx, 0x80
//	12: ef                              out    dx, eax
//	13: 8a 86 10 02 00 00               mov    al, BYTE PTR [rsi+0x210]
//	19: ee                              out    dx, al
//	1a: f4                              hlt
var entryCode = []byte{
	0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
	0x48, 0xc1, 0xe8, 0x20,
	0x66, 0xba, testPort, 0x00,
	0xef,
	0x8a, 0x86, 0x10, 0x02, 0x00, 0x00,
	0xee,
	0xf4,
}

// TestSetupVCPULongMode boots the synthetic bzImage's entry on a real
// vCPU: the exits prove the GDT, page tables, long-mode registers, RIP and
// RSI that SetupVCPU and Load set up.
func TestSetupVCPULongMode(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skipf("skipping: x86 vCPUs run on amd64 hosts, and this test binary is %s", runtime.GOARCH)
	}
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sys, err := kvm.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	vm, err := sys.CreateVM(0)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	if err := vm.SetTSSAddr(TSSAddr); err != nil {
		t.Fatal(err)
	}
	if err := vm.CreateIRQChip(); err != nil {
		t.Fatal(err)
	}
	m := newTestMemory(t, 64<<20)
	for i, r := range m.Regions() {
		if err := vm.SetUserMemoryRegion(uint32(i), r.GPA, r.Host, false); err != nil {
			t.Fatal(err)
		}
	}
	b, err := Load(m, Guest{Kernel: writeFile(t, "bzImage", fakeBzImage(entryCode)), Cmdline: "console=ttyS0", CPUs: 2, Serial: true})
	if err != nil {
		t.Fatalf("Load() = %v", err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	if err := b.SetupVCPU(sys, cpu); err != nil {
		t.Fatalf("SetupVCPU(BSP) = %v", err)
	}
	ap, err := vm.CreateVCPU(1)
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	if err := b.SetupVCPU(sys, ap); err != nil {
		t.Fatalf("SetupVCPU(AP) = %v", err)
	}

	want := []struct {
		size int
		val  uint32
	}{{4, 0x11223344}, {1, loaderUndefined}}
	for i, w := range want {
		reason, err := cpu.Run()
		for err == nil && reason == kvm.ExitIntr {
			reason, err = cpu.Run() // a signal (Go's preemption) interrupted KVM_RUN
		}
		if err != nil {
			t.Fatalf("Run() = %v", err)
		}
		if reason != kvm.ExitIO {
			regs, _ := cpu.GetRegs()
			t.Fatalf("exit %d: reason %d (RIP %#x), want KVM_EXIT_IO %d", i, reason, regs.RIP, kvm.ExitIO)
		}
		io, err := cpu.IO()
		if err != nil {
			t.Fatal(err)
		}
		var got uint32
		for j := len(io.Data) - 1; j >= 0; j-- {
			got = got<<8 | uint32(io.Data[j])
		}
		if !io.Out || io.Port != testPort || io.Size != w.size || got != w.val {
			t.Errorf("exit %d: out=%v port %#x size %d value %#x, want out to %#x size %d value %#x", i, io.Out, io.Port, io.Size, got, testPort, w.size, w.val)
		}
	}
	s, err := cpu.GetSregs()
	if err != nil {
		t.Fatal(err)
	}
	if s.EFER&eferLMA == 0 || s.CS.L != 1 || s.CR3 != PML4Addr {
		t.Errorf("sregs: EFER %#x, CS.L %d, CR3 %#x; want LMA, 64-bit CS, CR3 %#x", s.EFER, s.CS.L, s.CR3, PML4Addr)
	}
	l, err := cpu.GetLAPIC()
	if err != nil {
		t.Fatal(err)
	}
	if lint0 := binary.LittleEndian.Uint32(l.Regs[apicLVTLINT0:]) & apicDeliveryMask; lint0 != apicDeliveryExtIn {
		t.Errorf("LAPIC LVT LINT0 delivery = %#x, want ExtINT %#x", lint0, apicDeliveryExtIn)
	}
	if lint1 := binary.LittleEndian.Uint32(l.Regs[apicLVTLINT1:]) & apicDeliveryMask; lint1 != apicDeliveryNMI {
		t.Errorf("LAPIC LVT LINT1 delivery = %#x, want NMI %#x", lint1, apicDeliveryNMI)
	}
}
