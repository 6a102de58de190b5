package qemuhost

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestVCPUIndex(t *testing.T) {
	tests := []struct {
		comm string
		n    int
		ok   bool
	}{
		{"CPU 0/TCG", 0, true},
		{"CPU 3/KVM", 3, true},
		{"CPU 12/TCG", 12, true},
		{"qemu-system-x86", 0, false},
		{"call_rcu", 0, false},
		{"CPU x/TCG", 0, false},
		{"CPU 1", 0, false},
		{"CPU -1/TCG", 0, false},
	}
	for _, tt := range tests {
		n, ok := vcpuIndex(tt.comm)
		if ok != tt.ok || ok && n != tt.n {
			t.Errorf("vcpuIndex(%q) = %d, %v; want %d, %v", tt.comm, n, ok, tt.n, tt.ok)
		}
	}
}

// TestPinVCPUs pins a thread named as QEMU names its vCPU threads and
// checks its CPU and, where the emulated CPU is listed to yield, its
// SCHED_IDLE policy. The thread is one of the test's own, ended after.
func TestPinVCPUs(t *testing.T) {
	tests := []struct {
		name  string
		yield []int
	}{
		{"pinned, normal policy", nil},
		{"pinned, yielding to the main loop", []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			named, done := make(chan int), make(chan struct{})
			go func() {
				// Never unlocked: the thread ends with the goroutine.
				runtime.LockOSThread()
				tid := unix.Gettid()
				if err := setComm(tid, "CPU 0/TCG"); err != nil {
					t.Errorf("naming thread %d: %v", tid, err)
					tid = 0
				}
				named <- tid
				<-done
			}()
			tid := <-named
			if tid == 0 {
				return
			}
			// The next case must not find this thread as a vCPU, whether
			// or not it has ended by then.
			defer func() {
				setComm(tid, "pinned")
				close(done)
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if n, err := pinVCPUs(ctx, os.Getpid(), 1, tt.yield); n != 1 || err != nil {
				t.Fatalf("pinVCPUs() = %d, %v; want 1, nil", n, err)
			}
			var set unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &set); err != nil {
				t.Fatal(err)
			}
			if set.Count() != 1 || !set.IsSet(0) {
				t.Errorf("emulated CPU 0's thread may run on %d CPUs (CPU 0 among them: %v), want CPU 0 alone", set.Count(), set.IsSet(0))
			}
			attr, err := unix.SchedGetAttr(tid, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := uint32(unix.SCHED_NORMAL)
			if len(tt.yield) > 0 {
				want = unix.SCHED_IDLE
			}
			if attr.Policy != want {
				t.Errorf("emulated CPU 0's thread policy = %d, want %d", attr.Policy, want)
			}
		})
	}
}

// setComm names one of this process's threads as pthread_setname_np does.
func setComm(tid int, name string) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/task/%d/comm", tid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(name)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
