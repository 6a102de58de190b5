package vmm

import (
	"image"
	"image/color"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/devices/virtio"
	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/internal/kvmtest"
	"github.com/tandem-hv/tandem/internal/rfbclient"
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

// TestDisplayVNC: a VM whose display names a VNC socket serves its
// screen there from Build on, of the display's size (black before the
// guest draws), and stops with Close.
func TestDisplayVNC(t *testing.T) {
	if !kvmtest.Here(t) {
		return
	}
	k, err := fakekernel.Write(t.TempDir(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "g.vnc")
	vm, err := Build(Config{Kernel: k, CPUs: 1, Memory: 64 << 20, Name: "g", Display: &Display{Width: 800, Height: 600, VNC: "unix:" + sock}})
	if err != nil {
		t.Fatalf("Build() = %v", err)
	}
	defer vm.Close()
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("VNC socket: %v, %v; want mode 0600", st, err)
	}
	c, err := rfbclient.Dial("unix", sock)
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer c.Close()
	if c.W != 800 || c.H != 600 || c.Name != "g" {
		t.Errorf("ServerInit = %dx%d %q, want 800x600 \"g\"", c.W, c.H, c.Name)
	}
	c.Request(false, image.Rect(0, 0, 800, 600))
	if _, err := c.ReadUpdate(5 * time.Second); err != nil {
		t.Fatalf("ReadUpdate() = %v", err)
	}
	if p := c.Frame.RGBAAt(400, 300); p != (color.RGBA{0, 0, 0, 0xff}) {
		t.Errorf("pixel before the guest draws = %v, want black", p)
	}
	vm.Close()
	if c, err := rfbclient.Dial("unix", sock); err == nil {
		c.Close()
		t.Errorf("Dial() after Close succeeded, want the server gone")
	}
}
