package strictyaml

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type guest struct {
		Kernel string `yaml:"kernel"`
		CPUs   int    `yaml:"cpus"`
		Disks  []struct {
			Path string `yaml:"path"`
		} `yaml:"disks"`
	}
	tests := []struct {
		name string
		doc  string
		want string // "" for success
	}{
		{"good", "kernel: k\ncpus: 2\ndisks:\n  - path: d\n", ""},
		{"empty document", "", ""},
		{"unknown top-level field", "kernel: k\nmemroy: 1\n", `g.yaml:2: unknown field "memroy"`},
		{"unknown nested field", "disks:\n  - path: d\n    ro: true\n", `g.yaml:3: unknown field "ro"`},
		{"type error", "cpus: two\n", "g.yaml:1: cannot use !!str `two` into int"},
		{"two errors on one line", "cpus: x\nfoo: 1\n", "g.yaml:1: cannot use !!str `x` into int; g.yaml:2: unknown field \"foo\""},
		{"syntax error", "kernel: [\n", "g.yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g guest
			err := Decode("g.yaml", []byte(tt.doc), &g)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Decode() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Decode() = %v, want it to contain %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("Decode() error spans lines: %q", err)
			}
		})
	}
}
