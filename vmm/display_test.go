package vmm

import (
	"testing"

	"github.com/tandem-hv/tandem/hv/devices/virtio"
	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/internal/kvmtest"
)

// TestDisplayDevices: a display adds a virtio-gpu of its size, a keyboard
// and a touch screen of the same size, after every other device, so that
// no other device changes slot; without one there are none.
func TestDisplayDevices(t *testing.T) {
	if !kvmtest.Here(t) {
		return
	}
	k, err := fakekernel.Write(t.TempDir(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		display *Display
		w, h    int
	}{
		{"no display", nil, 0, 0},
		{"default size", &Display{}, DefaultDisplayWidth, DefaultDisplayHeight},
		{"given size", &Display{Width: 800, Height: 600}, 800, 600},
	}
	var without []string // the devices of the guest without a display
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vm, err := Build(Config{Kernel: k, CPUs: 1, Memory: 64 << 20, Display: tt.display})
			if err != nil {
				t.Fatalf("Build() = %v", err)
			}
			defer vm.Close()
			var ids []string
			for _, v := range vm.virtio {
				ids = append(ids, v.Name())
			}
			d := vm.Display()
			if tt.display == nil {
				without = ids
				if d != nil {
					t.Errorf("Display() = %+v, want nil", d)
				}
				return
			}
			if d == nil {
				t.Fatal("Display() = nil")
			}
			want := append(append([]string(nil), without...), "virtio-gpu", "virtio-input", "virtio-input")
			if len(ids) != len(want) {
				t.Fatalf("devices %v, want %v", ids, want)
			}
			for i := range want {
				if ids[i] != want[i] {
					t.Errorf("device %d = %s, want %s (devices %v)", i, ids[i], want[i], ids)
				}
			}
			n := len(vm.virtio)
			if vm.virtio[n-3].Device() != virtio.Device(d.GPU) || vm.virtio[n-2].Device() != virtio.Device(d.Keyboard) || vm.virtio[n-1].Device() != virtio.Device(d.Touch) {
				t.Errorf("the last three devices are not Display()'s GPU, keyboard and touch screen")
			}
			if w, h := d.GPU.Size(); w != tt.w || h != tt.h {
				t.Errorf("GPU size = %dx%d, want %dx%d", w, h, tt.w, tt.h)
			}
			if err := d.Touch.Touch(tt.w-1, tt.h-1, false); err != virtio.ErrInputNoDriver {
				t.Errorf("Touch at the far corner = %v, want %v (in range, no driver yet)", err, virtio.ErrInputNoDriver)
			}
		})
	}
}
