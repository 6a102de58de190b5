package kvm_test

import (
	"errors"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/kvmtest"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/internal/tinyguest"
)

// newTinyGuest returns a tiny real-mode guest running code. A test
// calls kvmtest.Here first; a benchmark skips (saying why, or fails in
// CI) where /dev/kvm is absent: `make bench` runs it where there is one.
func newTinyGuest(tb testing.TB, code []byte) *tinyguest.Guest {
	tb.Helper()
	testenv.RequireKVM(tb)
	g, err := tinyguest.New(code)
	if err != nil {
		tb.Fatalf("tinyguest.New() = %v", err)
	}
	tb.Cleanup(g.Close)
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
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	g := newTinyGuest(t, tinyCode)
	want := []tinyExit{
		{kvm.ExitIO, 0x3f8, true, 'A'},
		{kvm.ExitMMIO, 0x20010, true, 0x42},
		{kvm.ExitMMIO, 0x20020, false, 0x99},
		{kvm.ExitIO, 0x3f8, true, 0x99},
		{kvm.ExitIO, 0x3f8, false, 0x5a},
		{kvm.ExitIO, 0x3f8, true, 0x5a},
		{kvm.ExitHLT, 0, false, 0},
	}
	var got []tinyExit
	for len(got) < len(want)+1 {
		reason, err := g.CPU.Run()
		if err != nil {
			t.Fatal(err)
		}
		if reason == kvm.ExitIntr {
			continue // a signal (Go's preemption) interrupted KVM_RUN
		}
		e := tinyExit{reason: reason}
		switch reason {
		case kvm.ExitIO:
			io, err := g.CPU.IO()
			if err != nil {
				t.Fatal(err)
			}
			e.addr, e.write = uint64(io.Port), io.Out
			if !io.Out {
				io.Data[0] = 0x5a // the device's answer
			}
			e.data = io.Data[0]
		case kvm.ExitMMIO:
			m := g.CPU.MMIO()
			e.addr, e.write = m.Addr, m.IsWrite
			if !m.IsWrite {
				m.Data[0] = 0x99
			}
			e.data = m.Data[0]
		}
		got = append(got, e)
		if reason == kvm.ExitHLT {
			break
		}
		if reason != kvm.ExitIO && reason != kvm.ExitMMIO {
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
		{"missing device", "/nonexistent/kvm", kvm.ErrNoKVM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kvm.OpenPath(tt.path)
			if !errors.Is(err, tt.want) {
				t.Errorf("kvm.OpenPath(%q) = %v, want %v", tt.path, err, tt.want)
			}
		})
	}
}

func TestRequireCapabilities(t *testing.T) {
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	g := newTinyGuest(t, tinyguest.Loop)
	s := g.Sys
	if err := s.Require("a test", kvm.CapUserMemory); err != nil {
		t.Errorf("Require(KVM_CAP_USER_MEMORY) = %v, want nil", err)
	}
	err := s.Require("a test", kvm.Cap(1<<20))
	var mc *kvm.MissingCapError
	if !errors.As(err, &mc) {
		t.Fatalf("Require(unknown cap) = %v, want *kvm.MissingCapError", err)
	}
	if mc.Cap != kvm.Cap(1<<20) {
		t.Errorf("MissingCapError.Cap = %v, want %v", mc.Cap, kvm.Cap(1<<20))
	}
}

// BenchmarkPIOExit measures one guest PIO exit and re-entry through hv/kvm.
func BenchmarkPIOExit(b *testing.B) {
	g := newTinyGuest(b, tinyguest.Loop)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reason, err := g.CPU.Run()
		for err == nil && reason == kvm.ExitIntr {
			reason, err = g.CPU.Run()
		}
		if err != nil || reason != kvm.ExitIO {
			b.Fatalf("Run() = %d, %v, want KVM_EXIT_IO", reason, err)
		}
	}
}
