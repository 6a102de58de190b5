package virtio

import (
	"bytes"
	"testing"
)

func TestRNG(t *testing.T) {
	tests := []struct {
		name string
		bufs []uint32
		want uint32 // used length
	}{
		{"one buffer", []uint32{64}, 64},
		{"two buffers", []uint32{32, 48}, 80},
		{"larger than one chain's share", []uint32{rngMaxChain, 4096}, rngMaxChain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDriver(t, NewRNG())
			d.start(allRingFeatures, 1, 8)
			q := d.q[0]
			var bs []buf
			for _, n := range tt.bufs {
				bs = append(bs, buf{d.allocate(uint64(n)), n, true})
			}
			head := d.add(q, bs...)
			d.kick(q)
			if used := d.takeUsed(q); len(used) != 1 || used[0] != (usedElem{uint32(head), tt.want}) {
				t.Fatalf("used ring = %v, want [{%d %d}]", used, head, tt.want)
			}
			// 32 random bytes are all zero with probability 2^-256.
			if got := d.read(bs[0].gpa, 32); bytes.Equal(got, make([]byte, 32)) {
				t.Errorf("buffer still zero after the device filled it")
			}
			if got := d.irq.n.Load(); got != 1 {
				t.Errorf("interrupts = %d, want 1", got)
			}
		})
	}
}
