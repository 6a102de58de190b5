package emulate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms/all"
)

func TestCardSize(t *testing.T) {
	for _, tt := range []struct{ in, want int64 }{
		{0, 1}, {1, 1}, {2, 2}, {3, 4}, {64 << 20, 64 << 20}, {64<<20 + 1, 128 << 20}, {140509184, 256 << 20},
	} {
		if got := CardSize(tt.in); got != tt.want {
			t.Errorf("CardSize(%d) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestZynqMPWithoutPMU adapts Debian's ZCU102 device tree for QEMU: the
// console UART and the SD controller take a fixed clock and lose their
// power domains and pins; the board's identity, GIC, timer and every
// other node stay as they were.
func TestZynqMPWithoutPMU(t *testing.T) {
	zcu, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join("..", "build", "cache", "boards", "arm64", zcu.DTB)
	testenv.RequireFile(t, file, "run `make testdata`")
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := dtb.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	orig := tr.Clone()
	notes, err := ZynqMPWithoutPMU(tr)
	if err != nil {
		t.Fatalf("ZynqMPWithoutPMU() = %v", err)
	}
	if len(notes) != 2 {
		t.Errorf("notes = %q, want one for the UART and one for the SD controller", notes)
	}
	clk, err := tr.Lookup("/qemu-fixed-clock")
	if err != nil {
		t.Fatal(err)
	}
	ph := clk.PhandleOf()
	for _, path := range []string{"/axi/serial@ff000000", "/axi/mmc@ff170000"} {
		n, err := tr.Lookup(path)
		if err != nil {
			t.Fatal(err)
		}
		clocks, _ := n.U32s("clocks")
		if !slices.Equal(clocks, []uint32{ph, ph}) {
			t.Errorf("%s clocks = %v, want the fixed clock (%d) twice", path, clocks, ph)
		}
		for _, p := range []string{"power-domains", "pinctrl-0", "pinctrl-names"} {
			if n.Has(p) {
				t.Errorf("%s still has %s", path, p)
			}
		}
	}
	// Every other node is as it was: the second UART, the first SD
	// controller, the GIC, the root.
	for _, path := range []string{"/axi/serial@ff010000", "/axi/mmc@ff160000", "/axi/interrupt-controller@f9010000", "/timer", "/cpus"} {
		a, _ := orig.Lookup(path)
		b, _ := tr.Lookup(path)
		if a == nil || b == nil || !sameProps(a, b) {
			t.Errorf("%s changed", path)
		}
	}
	if got, _ := tr.Root.Strings("compatible"); got[0] != zcu.Compatible[0] {
		t.Errorf("root compatible = %q, want the board's", got)
	}
	if _, err := tr.Bytes(); err != nil {
		t.Errorf("Bytes() = %v", err)
	}
}

func sameProps(a, b *dtb.Node) bool {
	pa, pb := a.Properties(), b.Properties()
	if len(pa) != len(pb) {
		return false
	}
	for i := range pa {
		if pa[i].Name != pb[i].Name || !bytes.Equal(pa[i].Value, pb[i].Value) {
			return false
		}
	}
	return true
}

// TestScriptBootargs reads the command line out of boot scripts, and
// refuses those that set none the way images.BootScript writes it.
func TestScriptBootargs(t *testing.T) {
	for _, tt := range []struct {
		script, want string
		err          error
	}{
		{"# x\nsetenv bootargs \"console=ttyPS0,115200 quiet\"\nboot\n", "console=ttyPS0,115200 quiet", nil},
		{"  setenv bootargs \"\"\n", "", nil},
		{"setenv bootargs console=ttyS0\n", "", ErrNoBootargs},
		{"setenv bootargs \"unterminated\n", "", ErrNoBootargs},
		{"", "", ErrNoBootargs},
	} {
		got, err := ScriptBootargs(tt.script)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("ScriptBootargs(%q) = %q, %v; want %q, %v", tt.script, got, err, tt.want, tt.err)
		}
	}
}

// TestBoards walks tandem emulate's boards: each is one of Tandem's
// boards, unique, booted either by its firmware or by QEMU loading the
// image's files (never both), and powers off with a line to wait for.
func TestBoards(t *testing.T) {
	seen := map[string]bool{}
	for _, b := range Boards {
		t.Run(b.Name, func(t *testing.T) {
			if seen[b.Name] {
				t.Errorf("board %s listed twice", b.Name)
			}
			seen[b.Name] = true
			if _, err := all.Lookup(b.Name); err != nil {
				t.Errorf("all.Lookup(%s) = %v; want one of Tandem's boards", b.Name, err)
			}
			if (b.Firmware == "") == (b.Direct == nil) {
				t.Errorf("firmware %q, direct %v; want exactly one", b.Firmware, b.Direct)
			}
			if b.QEMU == "" || b.QEMUPackage == "" || b.PowerOff == "" || len(b.Machine) == 0 {
				t.Errorf("board = %+v; want QEMU, its package, the machine and the power-off line", b)
			}
		})
	}
}

// TestLoadArgs prepares the ZCU102's direct boot from Debian's arm64
// kernel and the board's device tree: QEMU loads the kernel, the device
// tree adapted for QEMU (ZynqMPWithoutPMU) and the initramfs, the image is
// copied onto a power-of-two card on the SD slot, the boot script's
// command line goes to the kernel with the board's additions, and the
// image itself is left as it was. A TPM is refused: QEMU's model has none.
func TestLoadArgs(t *testing.T) {
	zcu, err := all.Lookup("zcu102")
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join("..", "build", "cache")
	dtbFile := filepath.Join(cache, "boards", "arm64", zcu.DTB)
	kernel := filepath.Join(cache, "arm64", "vmlinuz")
	testenv.RequireFile(t, dtbFile, "run `make testdata`")
	testenv.RequireFile(t, kernel, "run `make testdata`")
	work := t.TempDir()
	image := filepath.Join(work, "x.img")
	data := bytes.Repeat([]byte("image "), 1<<20/6+100) // just over 1 MiB
	initrd := filepath.Join(work, "initrd.img")
	for f, b := range map[string][]byte{image: data, initrd: []byte("070701")} {
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := &BootFiles{Kernel: kernel, DTB: dtbFile, Initrd: initrd, Cmdline: "console=ttyPS0,115200  tandem.runfor=150s"}
	args, fixes, err := ZCU102.LoadArgs(f, image, work)
	if err != nil {
		t.Fatalf("LoadArgs() = %v", err)
	}
	if len(fixes) != 2 {
		t.Errorf("fixes = %q; want the UART's and the SD controller's", fixes)
	}
	arg := func(name string) string {
		i := slices.Index(args, name)
		if i < 0 || i+1 >= len(args) {
			t.Fatalf("args %q lack %s", args, name)
		}
		return args[i+1]
	}
	card := filepath.Join(work, "card.img")
	for _, tt := range []struct{ name, want string }{
		{"-M", "xlnx-zcu102,virtualization=on"},
		{"-kernel", kernel},
		{"-initrd", initrd},
		{"-dtb", filepath.Join(work, filepath.Base(dtbFile))},
		{"-drive", "if=sd,index=1,format=raw,file=" + card},
		{"-append", "console=ttyPS0,115200 tandem.runfor=150s earlycon"},
		{"-serial", "mon:stdio"},
	} {
		if got := arg(tt.name); got != tt.want {
			t.Errorf("%s %q; want %q", tt.name, got, tt.want)
		}
	}
	raw, err := os.ReadFile(arg("-dtb"))
	if err != nil {
		t.Fatal(err)
	}
	if tr, err := dtb.Parse(raw); err != nil {
		t.Errorf("the adapted device tree: %v", err)
	} else if _, err := tr.Lookup("/qemu-fixed-clock"); err != nil {
		t.Errorf("the adapted device tree lacks the fixed clock: %v", err)
	}
	got, err := os.ReadFile(card)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2<<20 || !bytes.Equal(got[:len(data)], data) || bytes.ContainsFunc(got[len(data):], func(r rune) bool { return r != 0 }) {
		t.Errorf("card: %d bytes; want the image's %d then zeros to 2 MiB", len(got), len(data))
	}
	if st, _ := os.Stat(image); st.Size() != int64(len(data)) {
		t.Errorf("image grew to %d bytes; want it left as built", st.Size())
	}
	if _, _, err := ZCU102.command(image, work, filepath.Join(work, "ctrl.sock")); err == nil || !strings.Contains(err.Error(), "board zcu102 has no TPM") {
		t.Errorf("command() with a TPM = %v; want it refused", err)
	}
	if _, _, err := QEMUVirtARM64.LoadArgs(f, image, work); err == nil {
		t.Errorf("LoadArgs() on the virt board = nil; want it refused: its firmware boots the image")
	}
}
