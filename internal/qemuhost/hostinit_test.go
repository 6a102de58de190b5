package qemuhost

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestBuildInitramfsModules builds each host's initramfs from Debian's
// kernels and checks that Options.Modules are carried in with what they
// depend on and loaded in dependency order by /init, after KVM's own
// modules, and that /init still finds KVM as before: built in on arm64,
// a vendor module on x86.
func TestBuildInitramfsModules(t *testing.T) {
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, arch string
		modules    []string
		// want is the modules /init loads before the KVM vendor's, in
		// order; kvm is how /init finds KVM.
		want    []string
		kvm     string
		wantErr bool
	}{
		{"arm64, none", "arm64", nil, nil, `[ -c /dev/kvm ] && kvm=builtin`, false},
		{"arm64, vhost_vsock and its dependencies", "arm64", []string{"vhost_vsock"},
			[]string{"vsock", "vmw_vsock_virtio_transport_common", "vhost_iotlb", "vhost", "vhost_vsock"}, `[ -c /dev/kvm ] && kvm=builtin`, false},
		{"arm64, unknown module", "arm64", []string{"no_such_module"}, nil, "", true},
		{"x86_64, none", "x86_64", nil, []string{"tun", "irqbypass", "kvm"}, "nested=1; then kvm=kvm_amd; fi", false},
		{"x86_64, vhost_vsock after KVM's", "x86_64", []string{"vhost_vsock"},
			[]string{"tun", "irqbypass", "kvm", "vsock", "vmw_vsock_virtio_transport_common", "vhost_iotlb", "vhost", "vhost_vsock"}, "nested=1; then kvm=kvm_amd; fi", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := lookupArch(tt.arch)
			if err != nil {
				t.Fatal(err)
			}
			testenv.RequireFile(t, filepath.Join(cache, a.cacheSub, "release"), "scripts/testdata.sh "+a.cacheSub)
			art, err := a.artifacts(cache)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "initrd")
			err = buildInitramfs(out, a, art, Options{Script: "true", Modules: tt.modules})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("buildInitramfs(Modules: %v) = nil, want an error", tt.modules)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildInitramfs() = %v", err)
			}
			files := readArchive(t, out)
			init, ok := files["init"]
			if !ok {
				t.Fatal("archive lacks /init")
			}
			var loaded []string
			for _, m := range regexp.MustCompile(`(?m)^insmod (\S+) `).FindAllStringSubmatch(init, -1) {
				if _, ok := files[m[1][1:]]; !ok {
					t.Errorf("/init loads %s, which the archive lacks", m[1])
				}
				name := filepath.Base(m[1])
				loaded = append(loaded, name[:len(name)-len(filepath.Ext(name))])
			}
			if !slices.Equal(loaded, tt.want) {
				t.Errorf("/init loads %v, want %v", loaded, tt.want)
			}
			if !strings.Contains(init, tt.kvm) {
				t.Errorf("/init lacks %q, how it finds KVM", tt.kvm)
			}
		})
	}
}

// readArchive returns the regular files of a newc archive by name.
func readArchive(t *testing.T, file string) map[string]string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	files := map[string]string{}
	for _, r := range recs {
		if r.Mode&cpio.S_IFMT != cpio.S_IFREG {
			continue
		}
		b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		if err != nil {
			t.Fatalf("reading %s from %s: %v", r.Name, file, err)
		}
		files[r.Name] = string(b)
	}
	return files
}
