package virtio

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// buggyRNG is an entropy device with a bug: once armed, its next
// notification panics.
type buggyRNG struct {
	*RNG
	armed atomic.Bool
}

func (b *buggyRNG) Notify(q int) {
	if b.armed.Load() {
		var table []int
		_ = table[q+5] // index out of range, under the device's own lock
	}
	b.RNG.Notify(q)
}

// TestDevicePanicNeedsReset: a device model that panics on a vCPU thread
// is failed: DEVICE_NEEDS_RESET, one configuration-change interrupt, one
// warning naming the device and where it panicked; it is never called
// again, a reset does not revive it (FEATURES_OK is refused), and a
// second virtio device on the same bus goes on working.
func TestDevicePanicNeedsReset(t *testing.T) {
	dev := &buggyRNG{RNG: NewRNG()}
	d := newDriver(t, dev)
	var warn bytes.Buffer
	d.mmio.SetWarnings(&warn)
	d.start(allRingFeatures, 1, 8)
	other := newDriver(t, NewRNG())
	other.start(allRingFeatures, 1, 8)

	dev.armed.Store(true)
	q := d.q[0]
	d.add(q, buf{d.allocate(16), 16, true})
	d.kick(q)
	if s := d.status(); s&StatusDeviceNeedsReset == 0 {
		t.Errorf("Status = %#x after the panic, want DEVICE_NEEDS_RESET", s)
	}
	if got := d.r32(regInterruptStatus); got&InterruptConfigChange == 0 {
		t.Errorf("InterruptStatus = %#x, want the config-change bit", got)
	}
	if n := d.irq.n.Load(); n != 1 {
		t.Errorf("interrupts = %d, want 1", n)
	}
	if !d.mmio.Failed() {
		t.Errorf("Failed() = false after a panic")
	}
	d.kick(q) // ignored: the device is not called again
	if s := warn.String(); strings.Count(s, "device model failed") != 1 || !strings.Contains(s, "buggyRNG).Notify (contain_test.go:") {
		t.Errorf("warnings = %q, want one naming buggyRNG.Notify", s)
	}
	if d.negotiate(allRingFeatures, false) {
		t.Errorf("FEATURES_OK kept after the driver reset a failed device")
	}
	if s := d.status(); s&StatusDeviceNeedsReset != 0 {
		t.Errorf("Status after reset = %#x: NEEDS_RESET should clear so that the driver sees FEATURES_OK refused", s)
	}
	if v := d.r32(regMagicValue); v != MagicValue {
		t.Errorf("MagicValue of a failed device = %#x: the transport should still answer", v)
	}

	oq := other.q[0]
	other.add(oq, buf{other.allocate(16), 16, true})
	other.kick(oq)
	if used := other.takeUsed(oq); len(used) != 1 {
		t.Errorf("the other device: used = %v, want one element", used)
	}
}

// panicReader is console input whose Read panics: the console's input
// goroutine runs it, off every vCPU.
type panicReader struct{ go_ chan struct{} }

func (p panicReader) Read([]byte) (int, error) {
	<-p.go_
	panic("input backend bug")
}

// TestWorkerPanicNeedsReset: a panic on a device's own goroutine (here
// the console's input goroutine) does not end the process: the device is
// failed with DEVICE_NEEDS_RESET and a configuration-change interrupt.
func TestWorkerPanicNeedsReset(t *testing.T) {
	in := panicReader{make(chan struct{})}
	c := NewConsole(in, &bytes.Buffer{})
	d := newDriver(t, c)
	d.start(allRingFeatures, 2, 8)
	close(in.go_)
	deadline := time.Now().Add(5 * time.Second)
	for !d.mmio.Failed() {
		if time.Now().After(deadline) {
			t.Fatal("device not failed 5 s after its input goroutine panicked")
		}
		time.Sleep(time.Millisecond)
	}
	if s := d.status(); s&StatusDeviceNeedsReset == 0 {
		t.Errorf("Status = %#x, want DEVICE_NEEDS_RESET", s)
	}
	if got := d.r32(regInterruptStatus); got&InterruptConfigChange == 0 {
		t.Errorf("InterruptStatus = %#x, want the config-change bit", got)
	}
	// Its queues give out no more chains.
	q := d.q[consoleTxQueue]
	d.add(q, buf{d.allocate(4), 4, false})
	d.kick(q)
	if used := d.takeUsed(q); len(used) != 0 {
		t.Errorf("a failed console still transmitted: used = %v", used)
	}
}

// TestNotifyQueuePanicContained: a device model that panics while serving
// a notification that came through NotifyQueue (an ioeventfd, on a
// goroutine of the VMM's, with no vCPU below it) is failed as on a vCPU
// thread, and the panic goes no further.
func TestNotifyQueuePanicContained(t *testing.T) {
	dev := &buggyRNG{RNG: NewRNG()}
	d := newDriver(t, dev)
	var warn bytes.Buffer
	d.mmio.SetWarnings(&warn)
	d.start(allRingFeatures, 1, 8)
	dev.armed.Store(true)
	d.add(d.q[0], buf{d.allocate(16), 16, true})
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.mmio.NotifyQueue(0)
	}()
	<-done
	if !d.mmio.Failed() {
		t.Errorf("Failed() = false after a panic in NotifyQueue")
	}
	if s := d.status(); s&StatusDeviceNeedsReset == 0 {
		t.Errorf("Status = %#x after the panic, want DEVICE_NEEDS_RESET", s)
	}
	if s := warn.String(); !strings.Contains(s, "buggyRNG).Notify (contain_test.go:") {
		t.Errorf("warnings = %q, want one naming buggyRNG.Notify", s)
	}
}
