package vmm

import (
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

// BenchmarkExitRoundTrip measures one guest exit through Tandem's vCPU
// path: KVM_RUN, dispatch, the bus, a device, and back into the guest.
// `make bench` runs it beside internal/bench/c/kvmloop.c, a minimal C loop
// doing the same.
func BenchmarkExitRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name   string
		code   []byte
		reason uint32
	}{
		{"pio", tinyguest.Loop, kvm.ExitIO},
		{"mmio", tinyguest.MMIOLoop, kvm.ExitMMIO},
	} {
		b.Run(bc.name, func(b *testing.B) {
			testenv.RequireKVM(b)
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
			if err := mmio.Insert(dev, 0x20000, 0x1000); err != nil {
				b.Fatal(err)
			}
			warn := devices.NewRateLimited(nil, 0)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				reason, err := g.CPU.Run()
				for err == nil && reason == kvm.ExitIntr {
					// Go's preemption signal interrupted KVM_RUN: enter again.
					reason, err = g.CPU.Run()
				}
				if err != nil || reason != bc.reason {
					b.Fatalf("Run() = %d, %v, want exit %d", reason, err, bc.reason)
				}
				if out, err := dispatch(reason, g.CPU, &pio, &mmio, warn); err != nil || out.stop {
					b.Fatalf("dispatch() = %+v, %v", out, err)
				}
			}
		})
	}
}
