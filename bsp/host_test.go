package bsp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

type fakeKVM map[kvm.Cap]int

func (f fakeKVM) CheckExtension(c kvm.Cap) int { return f[c] }
func (f fakeKVM) Close() error                 { return nil }

// TestCheckHost runs the live check against fake hosts.
func TestCheckHost(t *testing.T) {
	all := fakeKVM{kvm.CapUserMemory: 1, kvm.CapIRQFD: 1, kvm.CapIOEventFD: 1, kvm.CapImmediateExit: 1, kvm.CapARMPSCI02: 1, kvm.CapARMEL132Bit: 1}
	inv := func() (Inventory, error) { return Inventory{Cores: 4, MemoryBytes: 2 << 30}, nil }
	tests := []struct {
		name    string
		kvm     func() (KVM, error)
		inv     func() (Inventory, error)
		tpm     bool
		vfio    bool
		failing string // the item that must fail, "" for none
	}{
		{"ready", func() (KVM, error) { return all, nil }, inv, true, true, ""},
		{"no kvm", func() (KVM, error) { return nil, kvm.ErrNoKVM }, inv, true, true, "/dev/kvm"},
		{"no permission", func() (KVM, error) { return nil, kvm.ErrPermission }, inv, true, true, "/dev/kvm"},
		{"no irqfd", func() (KVM, error) {
			return fakeKVM{kvm.CapUserMemory: 1, kvm.CapIOEventFD: 1, kvm.CapImmediateExit: 1, kvm.CapARMPSCI02: 1}, nil
		}, inv, true, true, "KVM_CAP_IRQFD"},
		{"small memory", func() (KVM, error) { return all, nil }, func() (Inventory, error) { return Inventory{Cores: 4, MemoryBytes: 256 << 20}, nil }, true, true, "memory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "dev"), 0o755)
			os.MkdirAll(filepath.Join(root, "proc"), 0o755)
			os.WriteFile(filepath.Join(root, "proc", "cpuinfo"), []byte("flags\t: fpu vmx sse\n"), 0o644)
			if tt.tpm {
				os.WriteFile(filepath.Join(root, "dev", "tpm0"), nil, 0o644)
			}
			if tt.vfio {
				os.MkdirAll(filepath.Join(root, vfioPlatformDriver), 0o755)
			}
			s := Host{Root: root, KVM: tt.kvm, Inventory: tt.inv}.CheckHost(nil)
			var failed []string
			for _, it := range s.Items {
				if !it.OK && !it.Advisory {
					failed = append(failed, it.Check)
				}
			}
			want := []string{}
			if tt.failing != "" {
				want = []string{tt.failing}
			}
			if strings.Join(failed, ",") != strings.Join(want, ",") {
				t.Errorf("CheckHost() failed items = %q, want %q", failed, want)
			}
		})
	}
}

func TestVFIOPlatformAvailable(t *testing.T) {
	root := t.TempDir()
	if err := VFIOPlatformAvailable(root); !errors.Is(err, ErrNoVFIOPlatform) || !strings.Contains(err.Error(), "vfio-platform") {
		t.Errorf("VFIOPlatformAvailable(empty) = %v, want ErrNoVFIOPlatform naming the driver", err)
	}
	os.MkdirAll(filepath.Join(root, vfioPlatformDriver), 0o755)
	if err := VFIOPlatformAvailable(root); err != nil {
		t.Errorf("VFIOPlatformAvailable(with driver) = %v, want nil", err)
	}
}
