package strictyaml

import (
	"slices"
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

func TestLine(t *testing.T) {
	doc := []byte("kernel: k\npassthrough:\n  - node: /a\n  - node: /b\n    interrupts: nope\n")
	tests := []struct {
		field string
		want  int
	}{
		{"kernel", 1},
		{"passthrough", 2},
		{"passthrough[0]", 3},
		{"passthrough[1].node", 4},
		{"passthrough[1].interrupts", 5},
		{"passthrough[2]", 0},
		{"passthrough[0].interrupts", 0},
		{"cpus", 0},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			if got := Line(doc, tt.field); got != tt.want {
				t.Errorf("Line(%q) = %d, want %d", tt.field, got, tt.want)
			}
		})
	}
}

func TestNotes(t *testing.T) {
	doc := []byte(`# A file. TODO: not at the start of a line: no note.
name: x
# TODO: reset: how the board resets,
# on two lines.
#
# Not part of the note.
reset: ""
denylist: [] # TODO: review the denylist.
image:
  table: mbr
  # Why the blobs are what they are.
  # TODO: blobs: list them.
  blobs: []
memory:
  # TODO: the first bank.
  - {base: 0x0, size: 0x1}
  - {base: 0x2, size: 0x1} # TODO: the second.
`)
	want := []Note{
		{"reset", 7, "reset: how the board resets, on two lines."},
		{"denylist", 8, "review the denylist."},
		{"image.blobs", 13, "blobs: list them."},
		{"memory[0]", 16, "the first bank."},
		{"memory[1]", 17, "the second."},
	}
	got := Notes(doc, "TODO:")
	if !slices.Equal(got, want) {
		t.Errorf("Notes() =\n%+v\nwant\n%+v", got, want)
	}
	for _, n := range got {
		if l := Line(doc, n.Field); l != n.Line {
			t.Errorf("Line(%q) = %d, Note says %d", n.Field, l, n.Line)
		}
	}
	if got := Notes([]byte("a: [\n"), "TODO:"); got != nil {
		t.Errorf("Notes(broken) = %+v, want none", got)
	}
}

func TestNearest(t *testing.T) {
	doc := []byte("kernel: k\npassthrough:\n  - node: /a\n  - node: /b\n")
	line := func(f string) int { return Line(doc, f) }
	tests := []struct {
		field string
		want  int
	}{
		{"kernel", 1},
		{"passthrough[1].interrupts", 4},
		{"passthrough[5].node", 2},
		{"gic.hyp", 0},
	}
	for _, tt := range tests {
		if got := Nearest(tt.field, line); got != tt.want {
			t.Errorf("Nearest(%q) = %d, want %d", tt.field, got, tt.want)
		}
	}
}
