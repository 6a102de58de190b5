package bsp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeKVM answers a host check's KVM probe with these capabilities.
type fakeKVM map[string]int

func (f fakeKVM) probe(names []string) KVMProbe {
	p := KVMProbe{Caps: map[string]int{}}
	for _, n := range names {
		p.Caps[n] = f[n]
	}
	return p
}

// failedKVM is a probe of a /dev/kvm that did not open.
func failedKVM(err error, absent bool) func([]string) KVMProbe {
	return func([]string) KVMProbe { return KVMProbe{Err: err, Absent: absent} }
}

// TestCheckHost runs the live check against fake hosts.
func TestCheckHost(t *testing.T) {
	all := fakeKVM{"KVM_CAP_USER_MEMORY": 1, "KVM_CAP_IRQFD": 1, "KVM_CAP_IOEVENTFD": 1, "KVM_CAP_IMMEDIATE_EXIT": 1, "KVM_CAP_ARM_PSCI_0_2": 1, "KVM_CAP_ARM_EL1_32BIT": 1}
	inv := func() (Inventory, error) { return Inventory{Cores: 4, MemoryBytes: 2 << 30}, nil }
	tests := []struct {
		name    string
		kvm     func([]string) KVMProbe
		inv     func() (Inventory, error)
		tpm     bool
		vfio    bool
		failing string // the item that must fail, "" for none
	}{
		{"ready", all.probe, inv, true, true, ""},
		{"no kvm", failedKVM(errors.New("no /dev/kvm"), true), inv, true, true, "/dev/kvm"},
		{"no permission", failedKVM(errors.New("permission denied on /dev/kvm"), false), inv, true, true, "/dev/kvm"},
		{"no irqfd", fakeKVM{"KVM_CAP_USER_MEMORY": 1, "KVM_CAP_IOEVENTFD": 1, "KVM_CAP_IMMEDIATE_EXIT": 1, "KVM_CAP_ARM_PSCI_0_2": 1}.probe, inv, true, true, "KVM_CAP_IRQFD"},
		{"small memory", all.probe, func() (Inventory, error) { return Inventory{Cores: 4, MemoryBytes: 256 << 20}, nil }, true, true, "memory"},
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
			s := Host{Root: root, Arch: "x86_64", KVM: tt.kvm, Inventory: tt.inv}.CheckHost(nil)
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
