package kvm

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// requireKVM skips the test, saying why, where /dev/kvm cannot be used.
func requireKVM(tb testing.TB) *System {
	tb.Helper()
	testenv.RequireKVM(tb)
	s, err := Open()
	if err != nil {
		tb.Fatalf("Open() = %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// tinyGuest is a real-mode VM with 64 KiB of RAM at 0 and code at 0x1000.
type tinyGuest struct {
	vm  *VM
	cpu *VCPU
	ram []byte
}

const (
	tinyRAMSize  = 0x10000
	tinyCodeAddr = 0x1000
)

func newTinyGuest(tb testing.TB, s *System, code []byte) *tinyGuest {
	tb.Helper()
	vm, err := s.CreateVM(0)
	if err != nil {
		tb.Fatal(err)
	}
	ram, err := unix.Mmap(-1, 0, tinyRAMSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		tb.Fatal(err)
	}
	copy(ram[tinyCodeAddr:], code)
	if err := vm.SetUserMemoryRegion(0, 0, ram, false); err != nil {
		tb.Fatal(err)
	}
	cpu, err := vm.CreateVCPU(0)
	if err != nil {
		tb.Fatal(err)
	}
	sr, err := cpu.GetSregs()
	if err != nil {
		tb.Fatal(err)
	}
	// Real mode, flat: CS base 0 so RIP is the physical address.
	sr.CS.Base, sr.CS.Selector = 0, 0
	if err := cpu.SetSregs(sr); err != nil {
		tb.Fatal(err)
	}
	if err := cpu.SetRegs(Regs{RIP: tinyCodeAddr, RFLAGS: 2}); err != nil {
		tb.Fatal(err)
	}
	g := &tinyGuest{vm: vm, cpu: cpu, ram: ram}
	tb.Cleanup(func() {
		cpu.Close()
		vm.Close()
		unix.Munmap(ram)
	})
	return g
}

// tinyCode exercises PIO, MMIO and HLT (real mode, 16-bit):
//
//	1000: ba f8 03        mov  dx, 0x3f8
//	1003: b0 41           mov  al, 'A'
//	1005: ee              out  dx, al          ; PIO write 'A' to 0x3f8
//	1006: b8 00 20        mov  ax, 0x2000
//	1009: 8e d8           mov  ds, ax          ; ds:0 = 0x20000, outside RAM
//	100b: c6 06 10 00 42  mov  byte [0x10], 0x42 ; MMIO write 0x42 to 0x20010
//	1010: a0 20 00        mov  al, [0x20]      ; MMIO read from 0x20020
//	1013: ee              out  dx, al          ; PIO write what was read
//	1014: ec              in   al, dx          ; PIO read from 0x3f8
//	1015: ee              out  dx, al          ; and write it back
//	1016: f4              hlt
var tinyCode = []byte{
	0xba, 0xf8, 0x03,
	0xb0, 0x41,
	0xee,
	0xb8, 0x00, 0x20,
	0x8e, 0xd8,
	0xc6, 0x06, 0x10, 0x00, 0x42,
	0xa0, 0x20, 0x00,
	0xee,
	0xec,
	0xee,
	0xf4,
}

type tinyExit struct {
	reason uint32
	addr   uint64 // port or MMIO address
	write  bool
	data   byte
}

func TestTinyGuestExits(t *testing.T) {
	s := requireKVM(t)
	g := newTinyGuest(t, s, tinyCode)
	want := []tinyExit{
		{ExitIO, 0x3f8, true, 'A'},
		{ExitMMIO, 0x20010, true, 0x42},
		{ExitMMIO, 0x20020, false, 0x99},
		{ExitIO, 0x3f8, true, 0x99},
		{ExitIO, 0x3f8, false, 0x5a},
		{ExitIO, 0x3f8, true, 0x5a},
		{ExitHLT, 0, false, 0},
	}
	var got []tinyExit
	for len(got) < len(want)+1 {
		reason, err := g.cpu.Run()
		if err != nil {
			t.Fatal(err)
		}
		e := tinyExit{reason: reason}
		switch reason {
		case ExitIO:
			io, err := g.cpu.IO()
			if err != nil {
				t.Fatal(err)
			}
			e.addr, e.write = uint64(io.Port), io.Out
			if !io.Out {
				io.Data[0] = 0x5a // the device's answer
			}
			e.data = io.Data[0]
		case ExitMMIO:
			m := g.cpu.MMIO()
			e.addr, e.write = m.Addr, m.IsWrite
			if !m.IsWrite {
				m.Data[0] = 0x99
			}
			e.data = m.Data[0]
		}
		got = append(got, e)
		if reason == ExitHLT {
			break
		}
		if reason != ExitIO && reason != ExitMMIO {
			t.Fatalf("unexpected exit %d after %v", reason, got)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("exits = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("exit %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		path string
		want error
	}{
		{"missing device", "/nonexistent/kvm", ErrNoKVM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenPath(tt.path)
			if !errors.Is(err, tt.want) {
				t.Errorf("OpenPath(%q) = %v, want %v", tt.path, err, tt.want)
			}
		})
	}
}

func TestRequireCapabilities(t *testing.T) {
	s := requireKVM(t)
	if err := s.Require("a test", CapUserMemory); err != nil {
		t.Errorf("Require(KVM_CAP_USER_MEMORY) = %v, want nil", err)
	}
	err := s.Require("a test", Cap(1<<20))
	var mc *MissingCapError
	if !errors.As(err, &mc) {
		t.Fatalf("Require(unknown cap) = %v, want *MissingCapError", err)
	}
	if mc.Cap != Cap(1<<20) {
		t.Errorf("MissingCapError.Cap = %v, want %v", mc.Cap, Cap(1<<20))
	}
}

// loopCode is the exit-latency guest: an endless PIO write.
//
//	1000: ee     out dx, al
//	1001: eb fd  jmp 0x1000
var loopCode = []byte{0xee, 0xeb, 0xfd}

// BenchmarkPIOExit measures one guest PIO exit and re-entry through hv/kvm.
func BenchmarkPIOExit(b *testing.B) {
	s := requireKVM(b)
	g := newTinyGuest(b, s, loopCode)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reason, err := g.cpu.Run()
		if err != nil || reason != ExitIO {
			b.Fatalf("Run() = %d, %v, want KVM_EXIT_IO", reason, err)
		}
	}
}
