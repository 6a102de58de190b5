package fakekernel

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tandem-hv/tandem/arch/arm32"
	"github.com/tandem-hv/tandem/arch/arm64"
	"github.com/tandem-hv/tandem/arch/x86"
)

// TestLoadersAccept checks each stand-in against its architecture's
// header check, whatever the host.
func TestLoadersAccept(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name  string
		data  []byte
		check func(string) error
	}{
		{"bzImage", BzImage(), x86.CheckKernel},
		{"Image", Image(), arm64.CheckKernel},
		{"zImage", ZImage(), arm32.CheckKernel},
	} {
		p := filepath.Join(dir, tt.name)
		if err := os.WriteFile(p, tt.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := tt.check(p); err != nil {
			t.Errorf("%s: CheckKernel() = %v, want nil", tt.name, err)
		}
	}
}
