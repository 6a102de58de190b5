package initramfs

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A slice of the cloud-amd64 kernel's modules.dep.
const sampleDep = `kernel/arch/x86/kvm/kvm.ko: kernel/virt/lib/irqbypass.ko
kernel/arch/x86/kvm/kvm-amd.ko: kernel/arch/x86/kvm/kvm.ko kernel/virt/lib/irqbypass.ko
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko
kernel/virt/lib/irqbypass.ko:
kernel/a.ko: kernel/b.ko
kernel/b.ko: kernel/a.ko
kernel/orphan.ko: kernel/gone.ko
`

func TestLoadOrder(t *testing.T) {
	dep, err := ParseModulesDep(strings.NewReader(sampleDep))
	if err != nil {
		t.Fatalf("ParseModulesDep() = %v", err)
	}
	tests := []struct {
		name     string
		modules  []string
		optional bool
		want     []string
		wantErr  string
	}{
		{"kvm-amd", []string{"kvm_amd"}, false, []string{"kernel/virt/lib/irqbypass.ko", "kernel/arch/x86/kvm/kvm.ko", "kernel/arch/x86/kvm/kvm-amd.ko"}, ""},
		{"shared deps once", []string{"virtio_mmio", "virtio_blk", "virtio-rng"}, false, []string{
			"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_mmio.ko",
			"kernel/drivers/block/virtio_blk.ko.xz", "kernel/drivers/char/hw_random/virtio-rng.ko"}, ""},
		{"optional missing", []string{"virtio_net", "virtio"}, true, []string{"kernel/drivers/virtio/virtio.ko"}, ""},
		{"required missing", []string{"virtio_net"}, false, nil, "no module virtio_net"},
		{"cycle", []string{"a"}, false, nil, "cycle"},
		{"dangling dependency", []string{"orphan"}, false, nil, "kernel/gone.ko is needed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dep.LoadOrder(tt.modules, tt.optional)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("LoadOrder(%q) = %v, want an error containing %q", tt.modules, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("LoadOrder(%q) = %q, %v, want %q", tt.modules, got, err, tt.want)
			}
		})
	}
}

func TestParseModulesDepErrors(t *testing.T) {
	for _, in := range []string{"no colon here\n", ": kernel/a.ko\n"} {
		if _, err := ParseModulesDep(strings.NewReader(in)); err == nil {
			t.Errorf("ParseModulesDep(%q) = nil error, want one", in)
		}
	}
}

func TestModules(t *testing.T) {
	root := filepath.Join(t.TempDir(), "6.1.0-test")
	files := map[string]string{
		"modules.dep": "kernel/x.ko: kernel/y.ko\nkernel/y.ko:\nkernel/z.ko:\n",
		"kernel/x.ko": "x",
		"kernel/y.ko": "y",
		"kernel/z.ko": "z",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ents, order, err := Modules(root, []string{"x", "absent"}, true)
	if err != nil {
		t.Fatalf("Modules() = %v", err)
	}
	if want := []string{"kernel/y.ko", "kernel/x.ko"}; !reflect.DeepEqual(order, want) {
		t.Errorf("Modules() order = %q, want %q", order, want)
	}
	var paths []string
	var dep string
	for _, e := range ents {
		paths = append(paths, e.Path)
		if strings.HasSuffix(e.Path, "modules.dep") {
			dep = string(e.Data)
		}
	}
	wantPaths := []string{"/lib/modules/6.1.0-test/kernel/y.ko", "/lib/modules/6.1.0-test/kernel/x.ko", "/lib/modules/6.1.0-test/modules.dep"}
	if !reflect.DeepEqual(paths, wantPaths) {
		t.Errorf("Modules() paths = %q, want %q", paths, wantPaths)
	}
	if want := "kernel/y.ko:\nkernel/x.ko: kernel/y.ko\n"; dep != want {
		t.Errorf("modules.dep = %q, want %q", dep, want)
	}
	if _, _, err := Modules(t.TempDir(), []string{"x"}, true); err == nil || !strings.Contains(err.Error(), "testdata.sh") {
		t.Errorf("Modules(empty dir) = %v, want an error naming scripts/testdata.sh", err)
	}
}
