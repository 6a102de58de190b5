package mem

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMapPhys maps a file standing in for /dev/mem: the mapping shows the
// file's bytes at the offset asked for, and misaligned ranges are refused.
func TestMapPhys(t *testing.T) {
	page := uint64(unix.Getpagesize())
	f := filepath.Join(t.TempDir(), "mem")
	data := make([]byte, 2*page)
	copy(data[page:], "registers")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := MapPhys(f, page, page)
	if err != nil {
		t.Fatalf("MapPhys() = %v", err)
	}
	if !bytes.HasPrefix(p.Host, []byte("registers")) || uint64(len(p.Host)) != page || p.Base != page {
		t.Errorf("MapPhys() mapped %q... (%d bytes at %#x), want the file's second page", p.Host[:9], len(p.Host), p.Base)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	bad := []struct {
		name       string
		base, size uint64
		want       string
	}{
		{"empty", 0, 0, "non-empty"},
		{"base not aligned", 1, page, "aligned"},
		{"size not aligned", 0, 1, "aligned"},
		{"wraps", ^uint64(0) &^ (page - 1), 2 * page, "aligned"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := MapPhys(f, tt.base, tt.size); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("MapPhys(%#x, %#x) = %v, want an error containing %q", tt.base, tt.size, err, tt.want)
			}
		})
	}
	if _, err := MapPhys(filepath.Join(t.TempDir(), "none"), 0, page); err == nil || !strings.Contains(err.Error(), "run as root") {
		t.Errorf("MapPhys(missing file) = %v, want an error saying to run as root", err)
	}
}
