package initramfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ModulesDep is a parsed modules.dep (depmod(8)): each module's path,
// relative to /lib/modules/RELEASE, to the paths of the modules it needs.
type ModulesDep map[string][]string

// ParseModulesDep reads modules.dep: lines of "path: dep dep ...".
func ParseModulesDep(r io.Reader) (ModulesDep, error) {
	deps := ModulesDep{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok || mod == "" {
			return nil, fmt.Errorf("modules.dep line %d: want \"module.ko: deps...\", got %q", n, line)
		}
		deps[mod] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading modules.dep: %w", err)
	}
	return deps, nil
}

// ModuleName is the name a module path is known by: its base name without
// the .ko suffix and compression extension, dashes as underscores (the
// kernel treats them alike).
func ModuleName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

// Find returns the path of the module called name, or "".
func (d ModulesDep) Find(name string) string {
	want := ModuleName(name)
	for p := range d {
		if ModuleName(p) == want {
			return p
		}
	}
	return ""
}

// LoadOrder returns the module paths to load, dependencies first, for the
// named modules. Names missing from modules.dep are skipped when optional,
// an error otherwise; a module is listed once even when several need it.
func (d ModulesDep) LoadOrder(names []string, optional bool) ([]string, error) {
	var order []string
	done := map[string]bool{}
	active := map[string]bool{}
	var visit func(p string) error
	visit = func(p string) error {
		if done[p] {
			return nil
		}
		if active[p] {
			return fmt.Errorf("modules.dep has a dependency cycle through %s", p)
		}
		deps, ok := d[p]
		if !ok {
			return fmt.Errorf("module %s is needed but not in modules.dep", p)
		}
		active[p] = true
		for _, dep := range deps {
			if err := visit(dep); err != nil {
				return err
			}
		}
		active[p] = false
		done[p] = true
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		p := d.Find(n)
		if p == "" {
			if optional {
				continue
			}
			return nil, fmt.Errorf("no module %s in modules.dep", n)
		}
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// Modules returns entries that install the named modules and everything
// they depend on from the host tree modRoot (a /lib/modules/RELEASE
// directory) at /lib/modules/RELEASE, with a modules.dep that lists just
// those, and the load order. Names modRoot lacks are skipped when optional.
func Modules(modRoot string, names []string, optional bool) ([]Entry, []string, error) {
	f, err := os.Open(filepath.Join(modRoot, "modules.dep"))
	if err != nil {
		return nil, nil, fmt.Errorf("reading module dependencies (run scripts/testdata.sh): %w", err)
	}
	defer f.Close()
	dep, err := ParseModulesDep(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	order, err := dep.LoadOrder(names, optional)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	dst := "/lib/modules/" + filepath.Base(modRoot)
	var b strings.Builder
	var ents []Entry
	for _, p := range order {
		ents = append(ents, File(path.Join(dst, p), filepath.Join(modRoot, p), 0o644))
		// The lines keep depmod's own order of dependencies, so a
		// reader that loads them from last to first, as modprobe
		// does, still works.
		fmt.Fprintf(&b, "%s:", p)
		for _, q := range dep[p] {
			fmt.Fprintf(&b, " %s", q)
		}
		b.WriteString("\n")
	}
	ents = append(ents, Bytes(path.Join(dst, "modules.dep"), []byte(b.String()), 0o644))
	return ents, order, nil
}
