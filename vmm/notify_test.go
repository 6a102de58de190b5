package vmm

import (
	"testing"

	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/internal/kvmtest"
)

// TestQueueNotifications: Build gives every queue of every virtio device
// an eventfd that KVM signals for QueueNotify writes, except in a guest
// pinned to dedicated cores, whose notifications stay on its vCPUs; Close
// ends the goroutines serving them.
func TestQueueNotifications(t *testing.T) {
	if !kvmtest.Here(t) {
		return
	}
	k, err := fakekernel.Write(t.TempDir(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		affinity []int
		wantAll  bool
	}{
		{"unpinned guest", nil, true},
		{"pinned guest", []int{0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Build(Config{Kernel: k, CPUs: 1, Memory: 64 << 20, VCPUAffinity: tt.affinity})
			if err != nil {
				t.Fatalf("Build() = %v", err)
			}
			queues := 0
			for _, v := range vm.virtio {
				queues += v.Queues()
			}
			want := 0
			if tt.wantAll {
				want = queues
			}
			if got := len(vm.notifyFiles); got != want || queues == 0 {
				t.Errorf("%d eventfds for %d queues, want %d", got, queues, want)
			}
			vm.Close() // waits for the goroutines: a leak would hang here
		})
	}
}
