package baremetal

import (
	"embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The arm64 program's source and linker script (testdata/arm64.S,
// testdata/arm64.ld). Unlike the x86_64 program it is assembled where it
// is used, by BuildArm64: it runs on a vCPU only inside an emulated
// arm64 host, and the machine that starts that host has the cross
// binutils.
//
//go:embed testdata/arm64.S testdata/arm64.ld
var arm64Source embed.FS

// Arm64Binutils is the Debian package with the cross binutils BuildArm64
// runs; Arm64Tool gives each program's name.
const Arm64Binutils = "binutils-aarch64-linux-gnu"

// Arm64Tool is the name of the cross binutils' program tool (as, ld,
// objcopy) on PATH.
func Arm64Tool(tool string) string { return "aarch64-linux-gnu-" + tool }

// Arm64Base is where the arm64 program is linked: where a raw image goes
// by default (arch/arm64: RAMBase + RawOffset), so the ELF executable
// and the raw image occupy the same memory.
const Arm64Base = 0x40080000

// Arm64Marker starts every line the arm64 program prints.
const Arm64Marker = "TANDEM-BM64 "

// Arm64Console is what the arm64 program prints, line by line, on a
// guest whose GIC is gic ("v3" or "v2"): the boot CPU at EL1 with the
// device tree in x0, the second CPU started by PSCI CPU_ON (its MPIDR as
// KVM sets it, the context id handed over), the GIC found, the virtual
// timer's PPI taken in the IRQ handler, and the PSCI SYSTEM_OFF it then
// asks for.
func Arm64Console(gic string) []string {
	return []string{
		Arm64Marker + "cpu0 el=1 dtb=ok",
		Arm64Marker + "cpu1 on mpidr=0x80000001 context=0x7a4d",
		Arm64Marker + "gic=" + gic,
		Arm64Marker + "irq intid=27",
		Arm64Marker + "system off",
	}
}

// Arm64Lines returns the arm64 program's lines in console output, in
// order: each from its marker to the end of its line, whatever came
// before the marker on that line (console output of another source).
func Arm64Lines(console string) []string {
	var lines []string
	for _, l := range strings.Split(console, "\n") {
		if i := strings.Index(l, Arm64Marker); i >= 0 {
			lines = append(lines, strings.TrimRight(l[i:], "\r "))
		}
	}
	return lines
}

// Arm64Images are the paths of the arm64 program as BuildArm64 writes
// it: an ELF executable and the raw image of its code.
type Arm64Images struct {
	ELF, Raw string
}

// BuildArm64 assembles and links the arm64 program in dir with Debian's
// cross binutils: dir/arm64.elf, entered at Arm64Base, and dir/arm64.bin,
// its code as a raw image to load at Arm64Base.
func BuildArm64(dir string) (Arm64Images, error) {
	var tools []string
	for _, tool := range []string{"as", "ld", "objcopy"} {
		p, err := exec.LookPath(Arm64Tool(tool))
		if err != nil {
			return Arm64Images{}, fmt.Errorf("building the arm64 bare-metal guest: %w (install Debian's %s, or run `make deps`)", err, Arm64Binutils)
		}
		tools = append(tools, p)
	}
	for _, name := range []string{"arm64.S", "arm64.ld"} {
		b, err := arm64Source.ReadFile("testdata/" + name)
		if err != nil {
			return Arm64Images{}, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return Arm64Images{}, fmt.Errorf("building the arm64 bare-metal guest: %w", err)
		}
	}
	obj := filepath.Join(dir, "arm64.o")
	img := Arm64Images{ELF: filepath.Join(dir, "arm64.elf"), Raw: filepath.Join(dir, "arm64.bin")}
	for _, cmd := range [][]string{
		{tools[0], "-o", obj, filepath.Join(dir, "arm64.S")},
		// 4 KiB pages: the default 64 KiB alignment would pad the file.
		{tools[1], "-z", "max-page-size=0x1000", "-T", filepath.Join(dir, "arm64.ld"), "-o", img.ELF, obj},
		{tools[2], "-O", "binary", "-j", ".text", img.ELF, img.Raw},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			return Arm64Images{}, fmt.Errorf("building the arm64 bare-metal guest: %s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	return img, nil
}
