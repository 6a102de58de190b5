package bsp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// Generated is a new board package written from a vendor DTB.
type Generated struct {
	// Package is the Go package name (the board name without dashes).
	Package string
	// Files maps file names relative to the package directory to content:
	// the profile, its test, and the DTB under testdata/.
	Files map[string][]byte
	// Missing lists each fact the DTB could not give (a "// TODO:" in the
	// profile).
	Missing []string
}

// ErrBadName: the board name cannot become a Go package.
var ErrBadName = errors.New("bad board name")

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Import reads a vendor DTB (data, named file in messages) and writes a
// board package for it: every fact the DTB gives, a TODO for each it does
// not, and a test that checks the profile against the DTB.
func Import(data []byte, file, name string) (*Generated, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w %q: use lower-case letters, digits and dashes, starting with a letter", ErrBadName, name)
	}
	t, err := dtb.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", file, err)
	}
	f, err := hostdt.Read(t)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", file, err)
	}
	g := &Generated{Package: strings.ReplaceAll(name, "-", ""), Files: map[string][]byte{}}
	dtbName := filepath.Base(file)
	src, missing := profileSource(g.Package, name, dtbName, t, f)
	g.Missing = missing
	code, err := format.Source(src)
	if err != nil {
		return nil, fmt.Errorf("formatting the generated profile (a bug): %w\n%s", err, src)
	}
	g.Files[g.Package+".go"] = code
	test, err := format.Source(testSource(g.Package, dtbName))
	if err != nil {
		return nil, fmt.Errorf("formatting the generated test (a bug): %w", err)
	}
	g.Files[g.Package+"_test.go"] = test
	g.Files[filepath.Join("testdata", dtbName)] = data
	return g, nil
}

// Write puts the package's files under dir, which must hold none of them
// already. They are written into a temporary directory beside dir and
// moved into place only when all are complete, and only while ctx is
// live: on an error or a cancel, dir is left as it was (and not created).
func (g *Generated) Write(ctx context.Context, dir string) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("writing board package %s: %w", dir, err)
		}
	}()
	names := make([]string, 0, len(g.Files))
	for name := range g.Files {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%s already exists: remove it, or pass another -o", filepath.Join(dir, name))
		}
		names = append(names, name)
	}
	slices.Sort(names)
	dir = filepath.Clean(dir)
	made, err := mkdirs(filepath.Dir(dir))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeDirs(made)
		}
	}()
	stage, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(stage, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, g.Files[name], 0o644); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); os.IsNotExist(err) {
		// A new directory: one rename puts the whole package in place.
		if err := os.Chmod(stage, 0o755); err != nil {
			return err
		}
		return os.Rename(stage, dir)
	}
	// An existing directory: each file is renamed in; a failure takes
	// back those already moved.
	var moved []string
	defer func() {
		if err != nil {
			for _, p := range moved {
				os.Remove(p)
			}
		}
	}()
	for _, name := range names {
		p := filepath.Join(dir, name)
		sub, err := mkdirs(filepath.Dir(p))
		made = append(made, sub...)
		if err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(stage, name), p); err != nil {
			return err
		}
		moved = append(moved, p)
	}
	return nil
}

// mkdirs is os.MkdirAll that returns the directories it created,
// outermost first.
func mkdirs(dir string) ([]string, error) {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	slices.Reverse(missing)
	for i, d := range missing {
		if err := os.Mkdir(d, 0o755); err != nil && !os.IsExist(err) {
			return missing[:i], err
		}
	}
	return missing, nil
}

// removeDirs removes the directories mkdirs created, innermost first,
// each only if it is empty.
func removeDirs(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

// gen accumulates the profile's source and its TODOs.
type gen struct {
	b       bytes.Buffer
	missing []string
}

func (g *gen) p(format string, args ...any) { fmt.Fprintf(&g.b, format, args...) }

func (g *gen) todo(what string) {
	g.missing = append(g.missing, what)
	g.p("\t// TODO: %s\n", what)
}

func hex(v uint64) string { return fmt.Sprintf("%#x", v) }

func region(r platforms.Region) string {
	return fmt.Sprintf("platforms.Region{Base: %s, Size: %s}", hex(r.Base), hex(r.Size))
}

func profileSource(pkg, name, dtbName string, t *dtb.Tree, f *hostdt.Facts) ([]byte, []string) {
	g := &gen{}
	desc := f.Model
	if desc == "" {
		desc = name
	}
	g.p("// Package %s holds the %s board profile, imported from %s by\n// `tandem bsp import`. Review every TODO, then add Board to platforms/all.\n", pkg, desc, dtbName)
	g.p("package %s\n\nimport \"github.com/tandem-hv/tandem/platforms\"\n\n", pkg)
	g.p("// Board is the %s.\nvar Board = &platforms.Board{\n", desc)
	g.p("\tName: %q,\n\tDescription: %q,\n", name, desc)
	g.p("\tCompatible: %#v,\n", f.Compatible)

	cpu := ""
	if len(f.CPUs) > 0 {
		cpu = f.CPUs[0].Compatible
	}
	arch, archKnown := archOf(cpu)
	if !archKnown {
		g.todo(fmt.Sprintf("architecture: CPU %q is not one Tandem knows; arm assumed", cpu))
	}
	g.p("\tArch: platforms.%s,\n", map[platforms.Arch]string{platforms.ARM: "ARM", platforms.ARM64: "ARM64"}[arch])
	// The board is virtualization-capable only if every core is.
	virt := true
	clusters := f.Clusters()
	for _, c := range clusters {
		if v, known := cpuVirt(c.Compatible); known && !v {
			virt = false
			g.p("\t// %s has no virtualization extensions: guest-only.\n", c.Compatible)
		}
	}
	if len(f.CPUs) == 0 {
		g.todo("CPUs: the DTB has no /cpus/cpu nodes")
	}
	g.p("\tCPU: platforms.CPU{Compatible: %q, Count: %d, Virtualization: %v", cpu, len(f.CPUs), virt)
	if len(clusters) > 1 {
		g.p(", Clusters: []platforms.Cluster{")
		for _, c := range clusters {
			g.p("{Compatible: %q, Count: %d},", c.Compatible, c.Count)
		}
		g.p("}")
	}
	g.p("},\n")
	if !virt {
		g.p("\tGuestOnly: true,\n\tHostKernel: platforms.HostKernel{Note: %q},\n", cpu+" has no virtualization extensions: no kernel can host KVM here")
	} else if arch == platforms.ARM {
		g.p("\tHostKernel: platforms.ARMv7HostKernel,\n")
	}

	if len(f.Memory) == 0 {
		g.todo("memory: the DTB has no memory node (the bootloader adds it); fill in the board's DRAM banks")
		g.p("\tMemory: []platforms.Region{},\n\tMemoryFromBootloader: true,\n")
	} else {
		g.p("\tMemory: []platforms.Region{\n")
		for _, m := range f.Memory {
			g.p("\t\t%s,\n", region(m))
		}
		g.p("\t},\n")
	}

	genGIC(g, f)
	genTimer(g, f)
	genConsole(g, t, f)
	genSMP(g, f)
	g.todo("reset: how the host resets the board (PSCI SYSTEM_RESET, watchdog, PMU)")
	g.p("\tReset: \"\",\n")
	genDenylist(g, t, f)
	g.p("\tDTB: %q,\n", dtbName)
	g.todo("image: partition table, bootloader blobs with their media offsets and maximum lengths (cite the source), load addresses")
	g.p("\tImage: platforms.Image{\n\t\tTable: platforms.MBR,\n\t\tFirstPartition: 1 << 20,\n\t\tBootFS: \"vfat\",\n\t\tBootScript: \"boot.scr\",\n\t\tDTB: %q,\n\t},\n", dtbName)
	g.p("}\n")
	return g.b.Bytes(), g.missing
}

func archOf(cpu string) (platforms.Arch, bool) {
	switch {
	case strings.HasPrefix(cpu, "arm,cortex-a5") && len(cpu) > len("arm,cortex-a5"), // a53, a55, a57
		strings.HasPrefix(cpu, "arm,cortex-a7") && len(cpu) > len("arm,cortex-a7"), // a72, a73, a76
		cpu == "arm,armv8", strings.HasPrefix(cpu, "arm,neoverse"), cpu == "apm,potenza":
		return platforms.ARM64, true
	case cpu == "arm,cortex-a7", cpu == "arm,cortex-a15", cpu == "arm,cortex-a17", cpu == "arm,cortex-a12",
		cpu == "arm,cortex-a9", cpu == "arm,cortex-a5", cpu == "arm,cortex-a8":
		return platforms.ARM, true
	}
	return platforms.ARM, false
}

func genGIC(g *gen, f *hostdt.Facts) {
	gic := f.GIC
	if gic == nil {
		g.todo("GIC: the DTB has no Arm GIC node")
		return
	}
	g.p("\tGIC: platforms.GIC{\n\t\tVersion: %d,\n\t\tCompatible: %q,\n", gic.Version, first(gic.Compatible))
	names := []string{"Dist", "CPU", "Hyp", "VCPU"}
	if gic.Version == 3 {
		names = []string{"Dist", "Redist"}
	}
	for i, r := range gic.Regions {
		if i < len(names) {
			g.p("\t\t%s: %s,\n", names[i], region(r))
		}
	}
	if gic.HasMaintenance {
		g.p("\t\tMaintenancePPI: %d,\n", gic.MaintenancePPI)
	} else if len(gic.Regions) >= 4 {
		g.p("\t\t// TODO: the DTB gives no maintenance interrupt; 9 is the GIC's usual PPI: confirm it.\n")
		g.missing = append(g.missing, "GIC maintenance interrupt absent from the DTB")
		g.p("\t\tMaintenancePPI: 9,\n\t\tMaintenanceNotInDTB: true,\n")
	}
	g.p("\t},\n")
}

func genTimer(g *gen, f *hostdt.Facts) {
	if f.Timer == nil {
		g.p("\t// No architected timer in the DTB.\n")
		return
	}
	p := append(append([]uint32(nil), f.Timer.PPIs...), 0, 0, 0, 0)
	g.p("\tTimer: platforms.Timer{Compatible: %q, SecurePPI: %d, PhysPPI: %d, VirtPPI: %d, HypPPI: %d},\n",
		first(f.Timer.Compatible), p[0], p[1], p[2], p[3])
	if len(f.Timer.PPIs) < 4 {
		g.todo("timer: the DTB lists no hypervisor timer PPI")
	}
}

// linuxConsoles names a UART's Linux device by driver.
var linuxConsoles = map[string]string{
	"arm,pl011":               "ttyAMA",
	"samsung,exynos4210-uart": "ttySAC",
}

func genConsole(g *gen, t *dtb.Tree, f *hostdt.Facts) {
	c := f.Console
	if c == nil {
		g.todo("console: the DTB names none (no /chosen/stdout-path); give the UART's compatible, address and Linux name")
		g.p("\tConsole: platforms.Console{NotInDTB: true},\n")
		return
	}
	baud := 115200
	if n, err := strconv.Atoi(strings.TrimRightFunc(c.Options, func(r rune) bool { return r < '0' || r > '9' })); err == nil && n > 0 {
		baud = n
	}
	prefix, idx := "ttyS", aliasIndex(t, c.Path)
	for _, cc := range c.Compatible {
		if p, ok := linuxConsoles[cc]; ok {
			prefix = p
		}
	}
	linux := fmt.Sprintf("%s%d", prefix, idx)
	if idx < 0 {
		g.todo("console: no serialN alias names the console; check its Linux name")
		linux = prefix + "0"
	}
	g.p("\tConsole: platforms.Console{Compatible: %q, Base: %s, Baud: %d, Linux: %q},\n", first(c.Compatible), hex(c.Base), baud, linux)
}

// aliasIndex returns N of the serialN alias naming path, or -1.
func aliasIndex(t *dtb.Tree, path string) int {
	aliases := t.Root.Child("aliases")
	if aliases == nil {
		return -1
	}
	for _, p := range aliases.Properties() {
		n, ok := strings.CutPrefix(p.Name, "serial")
		if !ok {
			continue
		}
		if v, err := p.String(); err == nil && v == path {
			if i, err := strconv.Atoi(n); err == nil {
				return i
			}
		}
	}
	return -1
}

func genSMP(g *gen, f *hostdt.Facts) {
	method := ""
	if len(f.CPUs) > 0 {
		method = f.CPUs[0].EnableMethod
	}
	switch {
	case method == "psci" || (method == "" && f.PSCI != nil):
		g.p("\tSMP: platforms.SMPPSCI,\n")
	case method == "spin-table":
		g.p("\tSMP: platforms.SMPSpinTable,\n")
	case method != "":
		g.p("\t// enable-method %q: SoC code in the host kernel.\n\tSMP: platforms.SMPPlatform,\n", method)
	default:
		g.todo("SMP: no enable-method and no /psci node; if U-Boot adds PSCI at boot keep SMPPSCI and PSCIFromBootloader, else use SMPPlatform")
		g.p("\tSMP: platforms.SMPPSCI,\n\tPSCIFromBootloader: true,\n")
	}
}

// genDenylist derives what it can: UARTs that share the console's 4 KiB
// page could only be passed through by handing over the host console too.
func genDenylist(g *gen, t *dtb.Tree, f *hostdt.Facts) {
	var deny []string
	if c := f.Console; c != nil && len(c.Compatible) > 0 {
		page := c.Base &^ 0xfff
		_ = t.Root.Walk(func(n *dtb.Node) error {
			if n.Path() == c.Path || !n.IsCompatible(c.Compatible[0]) || !n.Has("reg") {
				return nil
			}
			if regs, err := n.Reg(); err == nil && len(regs) > 0 {
				if a, err := hostdt.Translate(n, regs[0].Address); err == nil && a&^0xfff == page {
					deny = []string{c.Compatible[0]}
				}
			}
			return nil
		})
	}
	if len(deny) > 0 {
		g.p("\t// The %s UARTs share the host console's 4 KiB page.\n", deny[0])
	}
	g.todo("denylist: devices never to hand to a guest (timers that misbehave under virtualization, secure firmware, power and reset controllers)")
	g.p("\tDenylist: %#v,\n", deny)
}

func testSource(pkg, dtbName string) []byte {
	return []byte(fmt.Sprintf(`package %[1]s

import (
	"testing"

	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// TestBoard checks the profile's invariants and that it agrees with the
// DTB it was imported from.
func TestBoard(t *testing.T) {
	if err := Board.Validate(); err != nil {
		t.Fatalf("Validate() = %%v, want nil", err)
	}
	f, _, err := hostdt.ReadFile("testdata/%[2]s")
	if err != nil {
		t.Fatalf("ReadFile() = %%v", err)
	}
	for _, fd := range hostdt.Check(Board, f) {
		if !fd.OK {
			t.Errorf("Check: %%v", fd)
		}
	}
}
`, pkg, dtbName))
}
