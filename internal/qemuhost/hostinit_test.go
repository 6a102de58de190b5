package qemuhost

import (
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestBuildInitramfsModules builds the arm64 host's initramfs from
// Debian's arm64 kernel and checks that Options.Modules are carried in
// with what they depend on and loaded in dependency order by /init, and
// that the arm64 host (KVM built in) still finds /dev/kvm without a
// vendor module.
func TestBuildInitramfsModules(t *testing.T) {
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	testenv.RequireFile(t, filepath.Join(cache, "arm64", "release"), "scripts/testdata.sh arm64")
	a, err := lookupArch("arm64")
	if err != nil {
		t.Fatal(err)
	}
	art, err := a.artifacts(cache)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		modules []string
		// want is the modules /init loads, in order.
		want    []string
		wantErr bool
	}{
		{"none", nil, nil, false},
		{"vhost_vsock and its dependencies", []string{"vhost_vsock"},
			[]string{"vsock", "vmw_vsock_virtio_transport_common", "vhost_iotlb", "vhost", "vhost_vsock"}, false},
		{"unknown module", []string{"no_such_module"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "initrd")
			err := buildInitramfs(out, a, art, Options{Script: "true", Modules: tt.modules})
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
			if !regexp.MustCompile(`(?m)^\[ -c /dev/kvm \] && kvm=builtin$`).MatchString(init) {
				t.Error("/init no longer takes the built-in KVM")
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
