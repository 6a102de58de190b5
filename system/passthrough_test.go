package system

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/hv"
)

// TestManifestPassthrough reads a control guest's passthrough list, and
// breaks it one field at a time: each error names the line, the guest
// and the field.
func TestManifestPassthrough(t *testing.T) {
	good := string(goodManifest(t))
	const at = "    watchdog:\n"
	if !strings.Contains(good, at) {
		t.Fatalf("test bug: %q not in the good manifest", at)
	}
	with := func(list string) string { return strings.Replace(good, at, "    passthrough:\n"+list+at, 1) }
	line := strings.Count(good[:strings.Index(good, at)], "\n") + 1 // the passthrough: line
	tests := []struct {
		name string
		list string
		want string // "" for success
	}{
		{"good", "      - node: /pl031@9010000\n        interrupts: none\n      - node: /soc/can@1c2bc00\n", ""},
		{"bad interrupts", "      - node: /pl031@9010000\n        interrupts: polled\n",
			`system.yaml:` + strconv.Itoa(line+2) + `: guest "control": passthrough[0].interrupts: "polled": want none`},
		{"missing node", "      - interrupts: none\n", `system.yaml:` + strconv.Itoa(line+1) + `: guest "control": passthrough[0]: missing node`},
		{"relative node", "      - node: pl031@9010000\n", `guest "control": passthrough[0].node: "pl031@9010000": want the absolute path`},
		{"listed twice", "      - node: /pl031@9010000\n      - node: /pl031@9010000\n", `passthrough[1].node: /pl031@9010000 is listed twice`},
		{"unknown field", "      - path: /pl031@9010000\n", `system.yaml:` + strconv.Itoa(line+1) + `: unknown field "path"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeManifest(t, guestDir(t), []byte(with(tt.list)))
			m, err := LoadManifest(p)
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrManifest) {
					t.Fatalf("LoadManifest() = %v, want an ErrManifest containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadManifest() = %v", err)
			}
			cfg, err := m.Guest("control").Config()
			if err != nil {
				t.Fatalf("Config() = %v", err)
			}
			want := []hv.HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}, {Node: "/soc/can@1c2bc00"}}
			if len(cfg.Passthrough) != 2 || cfg.Passthrough[0] != want[0] || cfg.Passthrough[1] != want[1] {
				t.Errorf("Config().Passthrough = %+v, want %+v", cfg.Passthrough, want)
			}
		})
	}
}
