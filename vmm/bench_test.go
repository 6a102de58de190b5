package vmm

import (
	"runtime"
	"testing"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/internal/tinyguest"
)

// sink is a device that keeps the last byte written, as a UART would.
type sink struct{ last byte }

func (s *sink) Read(off uint64, data []byte)  { clear(data) }
func (s *sink) Write(off uint64, data []byte) { s.last = data[0] }

// exitWarmUp is how many exits BenchmarkExitRoundTrip runs before its
// timer starts, the same as internal/bench/c/kvmloop.c.
const exitWarmUp = 1000

// exitLoop is one of the tiny guests that exit on every iteration.
type exitLoop struct {
	name   string
	code   []byte
	reason uint32
}

// exitLoops are the exit loops this host's architecture runs: port and
// MMIO writes on x86, MMIO writes on arm64 (which has no port I/O).
func exitLoops() []exitLoop {
	if runtime.GOARCH == "arm64" {
		return []exitLoop{{"mmio", tinyguest.ARM64MMIOLoop, kvm.ExitMMIO}}
	}
	return []exitLoop{
		{"pio", tinyguest.Loop, kvm.ExitIO},
		{"mmio", tinyguest.MMIOLoop, kvm.ExitMMIO},
	}
}

// BenchmarkExitRoundTrip measures one guest exit through Tandem's vCPU
// path: KVM_RUN, dispatch, the bus, a device, and back into the guest, on
// a thread set up as runVCPU sets up a vCPU's (locked, with a scheduler P
// of its own). `make bench` runs it beside internal/bench/c/kvmloop.c, a
// minimal C loop doing the same.
func BenchmarkExitRoundTrip(b *testing.B) {
	for _, bc := range exitLoops() {
		b.Run(bc.name, func(b *testing.B) {
			testenv.RequireKVM(b)
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			defer reserveProc()()
			g, err := tinyguest.New(bc.code)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			var pio, mmio bus.Bus
			dev := &sink{}
			if err := pio.Insert(dev, 0, 1); err != nil {
				b.Fatal(err)
			}
			if err := mmio.Insert(dev, tinyguest.MMIOAddr, 0x1000); err != nil {
				b.Fatal(err)
			}
			warn := devices.NewRateLimited(nil, 0)
			exit := func() {
				reason, err := g.CPU.Run()
				for err == nil && reason == kvm.ExitIntr {
					// The runtime's preemption signal interrupted
					// KVM_RUN: enter again, as runVCPU does.
					reason, err = g.CPU.Run()
				}
				if err != nil || reason != bc.reason {
					b.Fatalf("Run() = %d, %v, want exit %d", reason, err, bc.reason)
				}
				if out, err := dispatch(reason, g.CPU, &pio, &mmio, warn); err != nil || out.stop {
					b.Fatalf("dispatch() = %+v, %v", out, err)
				}
			}
			// Warm up outside the timed loop, as kvmloop.c does: the
			// first entries into a new VM are a cost of the VM, not of
			// the exit path. Each b.N run makes a new guest, so the
			// framework's first run does not warm this one.
			for range exitWarmUp {
				exit()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				exit()
			}
			// Nor is the deferred teardown (closing the VM, which KVM
			// frees then, and giving back the P): kvmloop.c reads its
			// clock right after its loop. In the emulated x86 host it
			// was about 27 ms, a third of a 20 000-exit round.
			b.StopTimer()
		})
	}
}
