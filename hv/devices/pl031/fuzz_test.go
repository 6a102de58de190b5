package pl031

import (
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/devfuzz"
)

// Events of FuzzPL031.
const (
	evTick  = 0 // the host's clock moves Value seconds (up to 2^32)
	evMatch = 1 // the match timer fires
)

// FuzzPL031 drives the RTC's window with any sequence of reads, writes,
// clock steps and timer firings. It must not panic; RTCMIS must read as
// RTCRIS & RTCIMSC; RTCDR must read the host's seconds plus what RTCLR
// loaded, modulo 2^32; and the match timer must be armed at most once.
func FuzzPL031(f *testing.F) {
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "set-alarm", Ops: []devfuzz.Op{
			devfuzz.R(0xfe0, 4), devfuzz.R(regDR, 4), devfuzz.W(regLR, 4, 1000), devfuzz.W(regMR, 4, 1005), devfuzz.W(regIMSC, 4, 1),
			devfuzz.E64(evTick, 5), devfuzz.E(evMatch, nil), devfuzz.R(regMIS, 4), devfuzz.W(regICR, 4, 1), devfuzz.R(regRIS, 4),
		}},
		devfuzz.Seed{Name: "wrap", Ops: []devfuzz.Op{
			devfuzz.W(regLR, 4, 0xfffffffe), devfuzz.W(regMR, 4, 1), devfuzz.E64(evTick, 3), devfuzz.E(evMatch, nil), devfuzz.R(regDR, 4),
		}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		now := time.Unix(1_700_000_000, 0)
		irq := &countIRQ{}
		r := New(irq, func() time.Time { return now })
		defer r.Close()
		devfuzz.Apply(r, devfuzz.Decode(data, Size), func(op devfuzz.Op) {
			switch op.Event {
			case evTick:
				now = now.Add(time.Duration(op.Value%(1<<32)) * time.Second)
			case evMatch:
				r.match()
			}
		}, func(i int, op devfuzz.Op, got uint64) {
			if op.Kind != devfuzz.Read || op.Size < 4 {
				return
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			switch op.Off {
			case regMIS:
				if uint32(got) != r.ris&r.imsc {
					t.Fatalf("after %v: MIS = %#x, want RIS %#x & IMSC %#x", op, got, r.ris, r.imsc)
				}
			case regDR:
				if want := uint32(now.Unix() + r.offset); uint32(got) != want {
					t.Fatalf("after %v: DR = %d, want %d", op, got, want)
				}
			}
		})
		if r.Failed() {
			t.Fatal("the RTC failed")
		}
	})
}
