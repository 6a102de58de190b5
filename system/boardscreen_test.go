package system

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestUnbindFramebufferConsoles: of the kernel's console drivers (as
// /sys/class/vtconsole lists them, names as Linux 6.1 prints them), only
// a bound framebuffer console is unbound; a machine without virtual
// terminals has nothing to release.
func TestUnbindFramebufferConsoles(t *testing.T) {
	for _, tt := range []struct {
		name  string
		cons  map[string][2]string // directory: name, bind
		want  []string
		bound map[string]string // directory: bind afterwards
	}{
		{"fbcon bound", map[string][2]string{
			"vtcon0": {"(S) dummy device\n", "0\n"},
			"vtcon1": {"(M) frame buffer device\n", "1\n"},
		}, []string{"vtcon1"}, map[string]string{"vtcon0": "0", "vtcon1": "0"}},
		{"fbcon already unbound", map[string][2]string{
			"vtcon0": {"(S) dummy device\n", "1\n"},
			"vtcon1": {"(M) frame buffer device\n", "0\n"},
		}, nil, map[string]string{"vtcon0": "1", "vtcon1": "0"}},
		{"no fbcon", map[string][2]string{"vtcon0": {"(S) dummy device\n", "1\n"}}, nil, map[string]string{"vtcon0": "1"}},
		{"no virtual terminals", nil, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vtconsole")
			for d, c := range tt.cons {
				os.MkdirAll(filepath.Join(dir, d), 0o755)
				os.WriteFile(filepath.Join(dir, d, "name"), []byte(c[0]), 0o644)
				os.WriteFile(filepath.Join(dir, d, "bind"), []byte(c[1]), 0o644)
			}
			got, err := unbindFramebufferConsoles(dir)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("unbindFramebufferConsoles() = %v, %v; want %v", got, err, tt.want)
			}
			for d, want := range tt.bound {
				b, _ := os.ReadFile(filepath.Join(dir, d, "bind"))
				if strings.TrimSpace(string(b)) != want {
					t.Errorf("%s/bind = %q, want %s", d, b, want)
				}
			}
		})
	}
}
