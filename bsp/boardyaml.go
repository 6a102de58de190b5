package bsp

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// yamlWriter writes a commented board.yaml and collects its TODOs.
type yamlWriter struct {
	b       bytes.Buffer
	missing []string
}

// line writes one line at the given indentation (two spaces a level).
func (w *yamlWriter) line(indent int, format string, args ...any) {
	w.b.WriteString(strings.Repeat("  ", indent))
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

// comment writes text as "# " lines of at most about 78 columns.
func (w *yamlWriter) comment(indent int, text string) {
	width := 76 - 2*indent
	var l []string
	n := 0
	for _, word := range strings.Fields(text) {
		if n > 0 && n+1+len(word) > width {
			w.line(indent, "# %s", strings.Join(l, " "))
			l, n = nil, 0
		}
		if n > 0 {
			n++
		}
		l, n = append(l, word), n+len(word)
	}
	if len(l) > 0 {
		w.line(indent, "# %s", strings.Join(l, " "))
	}
}

// todo writes a TODO comment for the field below it (named field in
// Missing): CheckProfile finds it there until a porter deletes it.
func (w *yamlWriter) todo(indent int, field, text string) {
	w.missing = append(w.missing, field+": "+text)
	w.comment(indent, TodoMarker+" "+text)
}

// str is s as a YAML scalar: plain where YAML reads it back as the same
// string, quoted where it would not ("5.6", "", "a: b").
func str(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return strconv.Quote(s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

func hex(v uint64) string { return fmt.Sprintf("%#x", v) }

func region(r platforms.Region) string {
	return fmt.Sprintf("{base: %s, size: %s}", hex(r.Base), hex(r.Size))
}

// boardYAML writes the board.yaml of an imported board and returns it
// with its TODOs.
func boardYAML(name, dtbName string, t *dtb.Tree, f *hostdt.Facts, u *UBoot, files map[string][]byte) ([]byte, []string, error) {
	w := &yamlWriter{}
	desc := f.Model
	if desc == "" {
		desc = name
	}
	w.comment(0, fmt.Sprintf("%s: a board profile imported by `tandem bsp import` from %s, the copy beside this file.", desc, dtbName))
	w.line(0, "#")
	w.comment(0, "Each TODO comment marks what the DTB cannot tell: fill the value in, then delete the comment. `tandem bsp check` on this directory reports each one left, and counts those an image needs as blockers.")
	w.line(0, "")
	w.line(0, "name: %s", str(name))
	w.line(0, "description: %s", str(desc))
	w.line(0, "compatible:")
	for _, c := range f.Compatible {
		w.line(1, "- %s", str(c))
	}
	cpu := genCPU(w, f)
	genMemory(w, f)
	genGIC(w, f)
	genTimer(w, f)
	genConsole(w, t, f)
	genSMP(w, f)
	w.todo(0, "reset", "how the host resets the board, for people: PSCI SYSTEM_RESET, a watchdog, the PMU.")
	w.line(0, `reset: ""`)
	genDenylist(w, t, f)
	genHostKernel(w, cpu)
	w.line(0, "dtb: %s", str(dtbName))
	if err := genImage(w, u, files); err != nil {
		return nil, nil, err
	}
	return w.b.Bytes(), w.missing, nil
}

// cpuFacts is what the host-kernel part needs of genCPU's findings.
type cpuFacts struct {
	compatible string
	arch       platforms.Arch
	virt       bool
}

func genCPU(w *yamlWriter, f *hostdt.Facts) cpuFacts {
	c := cpuFacts{virt: true}
	if len(f.CPUs) > 0 {
		c.compatible = f.CPUs[0].Compatible
	}
	arch, known := archOf(c.compatible)
	c.arch = arch
	if !known {
		w.todo(0, "arch", fmt.Sprintf("CPU %q is not one Tandem knows: arm assumed; say arm (ARMv7) or arm64 (ARMv8).", c.compatible))
	}
	w.line(0, "arch: %s", arch)
	// The board is virtualization-capable only if every core is.
	cl := f.Clusters()
	var noVirt string
	for _, k := range cl {
		if v, known := cpuVirt(k.Compatible); known && !v {
			c.virt, noVirt = false, k.Compatible
		}
	}
	if len(f.CPUs) == 0 {
		w.todo(0, "cpu", "the DTB has no /cpus/cpu nodes: give the cores' compatible and count.")
	}
	w.line(0, "cpu:")
	w.line(1, "compatible: %s", str(c.compatible))
	w.line(1, "count: %d", len(f.CPUs))
	if !c.virt {
		w.comment(1, noVirt+" has no virtualization extensions: guest-only.")
	}
	w.line(1, "virtualization: %v", c.virt)
	if len(cl) > 1 {
		w.comment(1, "big.LITTLE: the core types in the cpu nodes' order.")
		w.line(1, "clusters:")
		for _, k := range cl {
			w.line(2, "- compatible: %s", str(k.Compatible))
			w.line(2, "  count: %d", k.Count)
		}
	}
	if !c.virt {
		w.line(0, "guest-only: true")
	}
	return c
}

func genMemory(w *yamlWriter, f *hostdt.Facts) {
	if len(f.Memory) == 0 {
		w.todo(0, "memory", "the DTB has no memory node (the bootloader adds it at boot): list the board's DRAM banks, as {base: 0x..., size: 0x...}.")
		w.line(0, "memory: []")
		w.line(0, "memory-from-bootloader: true")
		return
	}
	w.line(0, "memory:")
	for _, m := range f.Memory {
		w.line(1, "- %s", region(m))
	}
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

func genGIC(w *yamlWriter, f *hostdt.Facts) {
	gic := f.GIC
	if gic == nil {
		w.todo(0, "gic", "the DTB has no Arm GIC node: a KVM host needs one (GICv2 with GICH/GICV, or GICv3).")
		w.line(0, "gic: {}")
		return
	}
	w.line(0, "gic:")
	w.line(1, "version: %d", gic.Version)
	w.line(1, "compatible: %s", str(first(gic.Compatible)))
	names := []string{"dist", "cpu", "hyp", "vcpu"}
	if gic.Version == 3 {
		// GICv3's optional GICC/GICH/GICV follow the redistributors; a
		// KVM host uses none of them.
		names = []string{"dist", "redist"}
	}
	for i, r := range gic.Regions {
		if i < len(names) {
			w.line(1, "%s: %s", names[i], region(r))
		}
	}
	switch {
	case gic.HasMaintenance:
		w.line(1, "maintenance-ppi: %d", gic.MaintenancePPI)
	case len(gic.Regions) >= 4:
		w.todo(1, "gic.maintenance-ppi", "the DTB gives no maintenance interrupt, so the image builder adds it to the DTB; 9 is the GIC's usual PPI: confirm it.")
		w.line(1, "maintenance-ppi: 9")
		w.line(1, "maintenance-not-in-dtb: true")
	}
}

func genTimer(w *yamlWriter, f *hostdt.Facts) {
	if f.Timer == nil {
		w.comment(0, "No architected timer in the DTB.")
		w.line(0, "timer: {}")
		return
	}
	p := append(append([]uint32(nil), f.Timer.PPIs...), 0, 0, 0, 0)
	if len(f.Timer.PPIs) < 4 {
		w.todo(0, "timer", "the DTB lists no hypervisor timer PPI.")
	}
	w.line(0, "timer:")
	w.line(1, "compatible: %s", str(first(f.Timer.Compatible)))
	w.line(1, "secure-ppi: %d", p[0])
	w.line(1, "phys-ppi: %d", p[1])
	w.line(1, "virt-ppi: %d", p[2])
	w.line(1, "hyp-ppi: %d", p[3])
}

// linuxConsoles names a UART's Linux device by driver, where it is not
// 8250's ttyS (each driver's dev_name: amba-pl011.c, samsung_tty.c,
// imx.c, xilinx_uartps.c, sh-sci.c, meson_uart.c, msm_serial.c).
var linuxConsoles = map[string]string{
	"arm,pl011":               "ttyAMA",
	"samsung,exynos4210-uart": "ttySAC",
	"fsl,imx6q-uart":          "ttymxc",
	"fsl,imx21-uart":          "ttymxc",
	"cdns,uart-r1p8":          "ttyPS",
	"cdns,uart-r1p12":         "ttyPS",
	"xlnx,xuartps":            "ttyPS",
	"renesas,scif":            "ttySC",
	"amlogic,meson-ao-uart":   "ttyAML",
	"qcom,msm-uartdm":         "ttyMSM",
}

func genConsole(w *yamlWriter, t *dtb.Tree, f *hostdt.Facts) {
	c := f.Console
	if c == nil {
		w.todo(0, "console", "the DTB names none (no /chosen/stdout-path): give the UART's compatible, base address, baud and Linux name; not-in-dtb makes the boot script pass console=.")
		w.line(0, "console: {not-in-dtb: true}")
		return
	}
	// The options are "BAUD{parity}{bits}" (serial8250 console=
	// syntax, "1500000n8"): the baud is the leading digits.
	baud := 115200
	digits := c.Options
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	if n, err := strconv.Atoi(digits); err == nil && n > 0 {
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
		w.todo(0, "console", fmt.Sprintf("no serialN alias names the console: check its Linux name (%s0 assumed).", prefix))
		linux = prefix + "0"
	}
	w.line(0, "console:")
	w.line(1, "compatible: %s", str(first(c.Compatible)))
	w.line(1, "base: %s", hex(c.Base))
	w.line(1, "baud: %d", baud)
	w.line(1, "linux: %s", str(linux))
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

func genSMP(w *yamlWriter, f *hostdt.Facts) {
	method := ""
	if len(f.CPUs) > 0 {
		method = f.CPUs[0].EnableMethod
	}
	switch {
	case method == "psci" || (method == "" && f.PSCI != nil):
		w.line(0, "smp: psci")
	case method == "spin-table":
		w.line(0, "smp: spin-table")
	case method != "":
		w.comment(0, fmt.Sprintf("enable-method %q: SoC code in the host kernel.", method))
		w.line(0, "smp: platform")
	default:
		w.todo(0, "smp", "no enable-method and no /psci node: if U-Boot adds PSCI at boot keep psci and psci-from-bootloader, else say platform.")
		w.line(0, "smp: psci")
		w.line(0, "psci-from-bootloader: true")
	}
}

// genDenylist derives what it can: UARTs that share the console's 4 KiB
// page could only be passed through by handing over the host console too.
func genDenylist(w *yamlWriter, t *dtb.Tree, f *hostdt.Facts) {
	var deny string
	if c := f.Console; c != nil && len(c.Compatible) > 0 {
		page := c.Base &^ 0xfff
		_ = t.Root.Walk(func(n *dtb.Node) error {
			if n.Path() == c.Path || !n.IsCompatible(c.Compatible[0]) || !n.Has("reg") {
				return nil
			}
			if regs, err := n.Reg(); err == nil && len(regs) > 0 {
				if a, err := hostdt.Translate(n, regs[0].Address); err == nil && a&^0xfff == page {
					deny = c.Compatible[0]
				}
			}
			return nil
		})
	}
	w.todo(0, "denylist", "devices never to hand to a guest, each with its reason: timers that misbehave under virtualization, secure firmware, power, reset and clock controllers.")
	if deny == "" {
		w.line(0, "denylist: []")
		return
	}
	w.line(0, "denylist:")
	w.comment(1, "These UARTs share the host console's 4 KiB page.")
	w.line(1, "- %s", str(deny))
}

func genHostKernel(w *yamlWriter, c cpuFacts) {
	switch {
	case !c.virt:
		w.line(0, "host-kernel:")
		w.line(1, "note: %s", str(c.compatible+" has no virtualization extensions: no kernel can host KVM here"))
	case c.arch == platforms.ARM:
		w.comment(0, `Linux 5.7 removed KVM host support for 32-bit ARM ("KVM: arm: Remove 32bit KVM host support").`)
		w.line(0, "host-kernel:")
		w.line(1, "max-version: %s", str(platforms.ARMv7HostKernel.MaxVersion))
		w.line(1, "note: %s", str(platforms.ARMv7HostKernel.Note))
	}
}

// genImage writes what the DTB cannot tell about the boot media. With
// the board's U-Boot build (u), its default environment gives the load
// addresses and its SoC family the layout and blobs; what neither gives
// is a layout that builds (MBR, FAT boot partition at 1 MiB, boot.scr,
// no blobs) but is each marked TODO, and no load addresses, so that
// CheckProfile reports each as a blocker until the porter has set it.
func genImage(w *yamlWriter, u *UBoot, files map[string][]byte) error {
	w.line(0, "image:")
	w.comment(1, "U-Boot's distro boot runs boot.scr from the FAT boot partition.")
	w.line(1, "boot-fs: vfat")
	w.line(1, "boot-script: boot.scr")
	if u != nil && u.Family != nil {
		if err := genLayout(w, u, files); err != nil {
			return err
		}
	} else {
		w.todo(1, "image.table", "partition layout: the table (mbr or gpt) and where the first partition starts (first-partition, in bytes), after every blob below. MBR and 1 MiB suit many SD-card boards; take both from the SoC's boot documentation.")
		w.line(1, "table: mbr")
		w.line(1, "first-partition: 0x100000 # 1 MiB")
		w.todo(1, "image.blobs", "the bootloader blobs (SPL, U-Boot) the boot ROM reads from the media outside any partition, each with its name, file, offset and max-len in bytes (cite the SoC's boot documentation), and its Debian package (package: u-boot-foo:/usr/lib/u-boot/BOARD/FILE) or, for a file the user supplies, none: put it in this directory's blobs/ folder. Keep [] when U-Boot lives elsewhere (SPI flash, eMMC boot partition).")
		w.line(1, "blobs: []")
	}
	return genLoad(w, u)
}

// genLayout writes the partition layout, blobs and boot files of u's SoC
// family, naming Debian's package for a Debian build and copying the
// files of any other into files' blobs/.
func genLayout(w *yamlWriter, u *UBoot, files map[string][]byte) error {
	fam := u.Family
	dir := filepath.Dir(u.File)
	from := func(file string) (string, error) {
		if u.Debian {
			return fam.Package + ":/usr/lib/u-boot/" + u.Board + "/" + file, nil
		}
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return "", fmt.Errorf("U-Boot build %s: %w", dir, err)
		}
		files[path.Join(platforms.BlobsDir, file)] = data
		return "", nil
	}
	w.comment(1, fmt.Sprintf("From U-Boot's %s build for %s (%s): %s.", fam.Name, u.Board, u.File, fam.Source))
	if !u.Debian {
		w.comment(1, "The blobs of this U-Boot build are copied into blobs/.")
	}
	w.line(1, "table: %s", fam.Table)
	w.line(1, "first-partition: %s", hex(fam.FirstPartition))
	if len(fam.Blobs) == 0 {
		w.line(1, "blobs: []")
	}
	for i, bl := range fam.Blobs {
		if i == 0 {
			w.line(1, "blobs:")
		}
		pkg, err := from(bl.File)
		if err != nil {
			return err
		}
		w.line(2, "- name: %s", str(bl.Name))
		w.line(2, "  file: %s", str(bl.File))
		w.line(2, "  package: %s", str(pkg))
		w.line(2, "  offset: %s", hex(bl.Offset))
		w.line(2, "  max-len: %s", hex(bl.MaxLen))
	}
	for i, bf := range fam.BootFiles {
		if i == 0 {
			w.line(1, "boot-files:")
		}
		switch {
		case bf.Generated():
			w.line(2, "- name: %s", str(bf.Name))
			w.line(2, "  content: |")
			for _, l := range strings.Split(strings.TrimSuffix(bf.Content, "\n"), "\n") {
				w.line(4, "%s", l)
			}
		case bf.Package == ubootDir:
			pkg, err := from(bf.Name)
			if err != nil {
				return err
			}
			w.line(2, "- {name: %s, package: %s}", str(bf.Name), str(pkg))
		default:
			w.line(2, "- {name: %s, package: %s}", str(bf.Name), str(bf.Package))
		}
	}
	return nil
}

// genLoad writes the load addresses: those u's default environment
// gives, with a TODO for the rest; all unset without u.
func genLoad(w *yamlWriter, u *UBoot) error {
	if u == nil {
		w.todo(1, "image.load", "load addresses: "+platforms.LoadAddrsFix+".")
		w.line(1, "load: {kernel: 0x0, dtb: 0x0, initrd: 0x0, script: 0x0}")
		return nil
	}
	l, missing, err := u.LoadAddrs()
	if err != nil {
		return err
	}
	var got []string
	for _, v := range ubootLoadVars {
		if s, ok := u.Env[v.name]; ok {
			got = append(got, v.name+"="+s)
		}
	}
	w.comment(1, fmt.Sprintf("U-Boot %s's default environment: %s.", u.File, strings.Join(got, ", ")))
	if slices.Contains(missing, "script") {
		missing = slices.DeleteFunc(missing, func(f string) bool { return f == "script" })
		w.comment(1, "No scriptaddr: U-Boot's boot flow picks where boot.scr goes.")
	}
	if len(missing) > 0 {
		w.todo(1, "image.load", fmt.Sprintf("U-Boot's environment gives no %s load address: choose one in RAM clear of the others (the kernel's booti placement, the DTB and initramfs sizes).", strings.Join(missing, ", ")))
	}
	w.line(1, "load: {kernel: %s, dtb: %s, initrd: %s, script: %s}", hex(l.Kernel), hex(l.DTB), hex(l.Initrd), hex(l.Script))
	return nil
}
