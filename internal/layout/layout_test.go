package layout

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tandem-hv/tandem"

// TestLayout checks every package of the module against the table in
// docs/architecture.md: each import of one of Tandem's own packages must
// be one its row allows (go list, test files left out: tests may import
// anything).
func TestLayout(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rules, err := ParseTable(f)
	if err != nil {
		t.Fatalf("docs/architecture.md: %v", err)
	}
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		p := strings.TrimPrefix(f[0], module+"/")
		imports[p] = nil
		for _, imp := range f[1:] {
			if rel, ok := strings.CutPrefix(imp, module+"/"); ok {
				imports[p] = append(imports[p], rel)
			}
		}
	}
	if len(imports) < 20 {
		t.Fatalf("go list found %d packages, want the whole module", len(imports))
	}
	for _, b := range Check(rules, imports) {
		t.Error(b)
	}
}

// TestCheck shows what Check reports, on a small table and graph: an
// import the table allows, one it does not (the building blocks importing
// the VM above them), and a package with no row.
func TestCheck(t *testing.T) {
	rules := []Rule{
		{Packages: []string{"hv/mem"}},
		{Packages: []string{"hv/devices/..."}, May: []string{"hv/mem", "hv/devices"}},
		{Packages: []string{"vmm"}, May: []string{"hv/..."}},
	}
	tests := []struct {
		name    string
		imports map[string][]string
		want    []string
	}{
		{"allowed", map[string][]string{"vmm": {"hv/mem", "hv/devices/virtio"}, "hv/devices/virtio": {"hv/mem", "hv/devices"}, "hv/mem": nil}, nil},
		{"a building block imports the VM", map[string][]string{"hv/mem": {"vmm"}, "vmm": {"hv/mem"}},
			[]string{"hv/mem imports vmm, which its row (hv/mem) does not allow"}},
		{"a device imports a sibling the row does not name", map[string][]string{"hv/devices/serial": {"hv/devices/virtio"}},
			[]string{"hv/devices/serial imports hv/devices/virtio, which its row (hv/devices/...) does not allow"}},
		{"a package with no row", map[string][]string{"tools/x": nil}, []string{"tools/x: no row of the table covers it; add one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Check(rules, tt.imports); !slices.Equal(got, tt.want) {
				t.Errorf("Check() = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestParseTable reads a table's rows and refuses a row whose cells are
// not in backticks.
func TestParseTable(t *testing.T) {
	doc := "# x\n\n| package | may import | why |\n|---|---|---|\n| `dtb` | — | trees |\n| `arch/arm64`, `arch/arm32` | `dtb`, `hv/...` | guests |\n\nafter\n"
	rules, err := ParseTable(strings.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || len(rules[0].May) != 0 || !slices.Equal(rules[1].Packages, []string{"arch/arm64", "arch/arm32"}) || !slices.Equal(rules[1].May, []string{"dtb", "hv/..."}) {
		t.Errorf("ParseTable() = %+v", rules)
	}
	if _, err := ParseTable(strings.NewReader("| package | may import |\n|---|---|\n| dtb | nothing |\n")); err == nil {
		t.Errorf("ParseTable(row without backticks) = nil error")
	}
}
