package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-hv/tandem/emulate"
	"github.com/tandem-hv/tandem/internal/e2e"
	"github.com/tandem-hv/tandem/internal/testenv"
)

var (
	demoImageOnce sync.Once
	demoImageFile string
	demoImageErr  error
)

// demoImage builds the demo's image (internal/e2e: the control and
// infotainment guests, tandem.until on their markers) once per test run,
// into a directory removed when the tests end (TestMain), and skips
// unless this machine can boot it.
func demoImage(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: builds the demo image and boots it under software emulation, a minute or more")
	}
	testenv.RequireCommand(t, emulate.QEMUVirtARM64.QEMU, emulate.QEMUVirtARM64.QEMUPackage)
	testenv.RequireFile(t, emulate.QEMUVirtARM64.Firmware, "install Debian's "+emulate.QEMUVirtARM64.FirmwarePackage+": make deps")
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	cache := testCache(t)
	tandem := buildTandem(t)
	demoImageOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			demoImageErr = err
			return
		}
		k, err := e2e.Arm64Kernel(cache)
		if err != nil {
			demoImageErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tandem-demo-image")
		if err != nil {
			demoImageErr = err
			return
		}
		var out bytes.Buffer
		demoImageFile, demoImageErr = e2e.BuildDemoImage(e2e.DemoImage{Dir: dir, Tandem: tandem, Kernel: k, InitPkg: e2e.DemoGuestPkg,
			Cmdline: "tandem.runfor=300s " + e2e.UntilParam(e2e.DemoMarkers), GoDir: root, Out: &out})
		if demoImageErr != nil {
			demoImageErr = fmt.Errorf("%w\n%s", demoImageErr, out.Bytes())
		}
	})
	if demoImageErr != nil {
		t.Fatal(demoImageErr)
	}
	return demoImageFile
}

// removeDemoImage removes the demo image tests built (TestMain).
func removeDemoImage() {
	if demoImageFile != "" {
		os.RemoveAll(filepath.Dir(demoImageFile))
	}
}

// demoExpects are the demo's markers as --expect flags.
func demoExpects() []string {
	var args []string
	for _, m := range e2e.DemoMarkers {
		args = append(args, "--expect", m.Guest+": "+m.Expr)
	}
	return args
}

// junitCases checks the report against the JUnit schema with xmllint
// and returns its test cases: name to failure message ("" when passed).
func junitCases(t *testing.T, file string) map[string]string {
	t.Helper()
	xmllint := testenv.RequireCommand(t, "xmllint", "libxml2-utils")
	if out, err := exec.Command(xmllint, "--noout", "--schema", "../../emulate/testdata/junit.xsd", file).CombinedOutput(); err != nil {
		b, _ := os.ReadFile(file)
		t.Fatalf("xmllint --schema junit.xsd %s: %v: %s\n%s", file, err, out, b)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Suites []struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{}
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			cases[c.Name] = ""
			if c.Failure != nil {
				cases[c.Name] = c.Failure.Message + "\n" + c.Failure.Text
			}
		}
	}
	return cases
}

// TestEmulateDemo runs `tandem emulate` on the demo image with the demo's
// expectations and a test file (emulate/testdata/demo.yaml: the boot's
// stages in order, a line typed on the board's console, the control
// guest's report): both guests' markers come on their consoles, it exits
// 0, its JUnit XML is valid and passes every case, and the artefacts
// directory holds the board's, each guest's and the whole console's log
// and the timeline.
func TestEmulateDemo(t *testing.T) {
	img := demoImage(t)
	dir := t.TempDir()
	junit, arts := filepath.Join(dir, "out.xml"), filepath.Join(dir, "artifacts")
	args := append([]string{"emulate", img, "--test", "../../emulate/testdata/demo.yaml",
		"--junit", junit, "--artifacts", arts}, demoExpects()...)
	var stdout, stderr bytes.Buffer
	err := run(args, &stdout, &stderr)
	t.Logf("tandem emulate: %v\n%s", err, stderr.String())
	if err != nil {
		t.Fatalf("tandem emulate = %v; console's end:\n%s", err, tail(stdout.String(), 40))
	}
	if !regexp.MustCompile(`(?m)^control \| TANDEM-CONTROL .*sent=[1-9]`).MatchString(stdout.String()) {
		t.Errorf("the streamed console lacks control's prefixed report:\n%s", tail(stdout.String(), 40))
	}
	cases := junitCases(t, junit)
	want := []string{"expect-not Kernel panic", "step 1: wait board: Found U-Boot script", "step 2: the system starts",
		`step 3: send "\n"`, "step 4: wait control: TANDEM-CONTROL.*sent=[1-9]"}
	for _, m := range e2e.DemoMarkers {
		want = append(want, "expect "+m.Guest+": "+m.Expr)
	}
	if len(cases) != len(want) {
		t.Errorf("JUnit cases = %v; want %v", cases, want)
	}
	for _, n := range want {
		if f, ok := cases[n]; !ok || f != "" {
			t.Errorf("JUnit case %q: present %v, failure %q; want it passed", n, ok, f)
		}
	}
	for _, f := range []string{"console.log", "board.log", "guests/control.log", "guests/infotainment.log", "timeline.txt"} {
		b, err := os.ReadFile(filepath.Join(arts, f))
		if err != nil || len(b) == 0 {
			t.Errorf("artifact %s: %d bytes, %v; want it kept", f, len(b), err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(arts, "guests/control.log")); !regexp.MustCompile(`(?m)^TANDEM-CONTROL `).Match(b) {
		t.Errorf("guests/control.log lacks the guest's own lines, without the prefix:\n%s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(arts, "timeline.txt")); !regexp.MustCompile(`(?m)^ +\d+\.\ds  U-Boot found the boot script\n(.*\n)* +\d+\.\ds  expect control: .* held: control \| `).Match(b) {
		t.Errorf("timeline.txt lacks the boot stages and the expectations:\n%s", b)
	}
}

// TestEmulateMissingLine runs `tandem emulate` on the demo image with an
// expectation no guest ever prints: it exits 1 (once the board powered
// off, tandem.until having stopped the system), naming the expectation
// with the guilty guest's console tail, and its JUnit XML has that case
// failed, with the excerpt, and the others passed.
func TestEmulateMissingLine(t *testing.T) {
	img := demoImage(t)
	junit := filepath.Join(t.TempDir(), "out.xml")
	never := "infotainment: TANDEM-NEVER-PRINTED"
	args := []string{"emulate", img, "--expect", "control: " + e2e.DemoMarkers[0].Expr, "--expect", never, "--junit", junit}
	var stdout, stderr bytes.Buffer
	err := run(args, &stdout, &stderr)
	text := stderr.String()
	t.Logf("tandem emulate: %v\n%s", err, text)
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("tandem emulate = %v (exit %d); want exit 1", err, exitCode(err))
	}
	if !strings.Contains(err.Error(), "1 of 2 checks failed: expect "+never) {
		t.Errorf("error = %q; want the failed expectation named", err)
	}
	for _, re := range []string{
		`(?m)^  FAIL  expect infotainment: TANDEM-NEVER-PRINTED: no line of infotainment matched TANDEM-NEVER-PRINTED within \d+\.\ds \(the run ended: the board powered off\)$`,
		`(?m)^  ok    expect control: `,
		`(?m)^expect infotainment: TANDEM-NEVER-PRINTED: infotainment's last \d+ lines:\n(  infotainment \| .*\n)+`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("stderr lacks %s", re)
		}
	}
	cases := junitCases(t, junit)
	if f := cases["expect "+never]; !strings.Contains(f, "no line of infotainment matched TANDEM-NEVER-PRINTED") || !regexp.MustCompile(`infotainment's last \d+ lines:\ninfotainment \| `).MatchString(f) {
		t.Errorf("JUnit case %q failure = %q; want the reason and infotainment's console tail", "expect "+never, f)
	}
	if f, ok := cases["expect control: "+e2e.DemoMarkers[0].Expr]; !ok || f != "" {
		t.Errorf("JUnit control case: present %v, failure %q; want it passed", ok, f)
	}
}

// TestEmulateRefuses checks what tandem emulate refuses before it boots
// anything, each with what would fix it: a board other than the image's,
// a console the image's manifest lacks, a bad regexp, a broken test file,
// a file that is no image. The image is a real one of the QEMU virt
// board, with Debian's kernel and stand-in initramfs and guest files.
func TestEmulateRefuses(t *testing.T) {
	testenv.RequireCommand(t, "mke2fs", "e2fsprogs")
	testenv.RequireCommand(t, "debugfs", "e2fsprogs")
	kernel := filepath.Join(testCache(t), "arm64", "vmlinuz")
	dir := t.TempDir()
	write := func(name, text string) string {
		return writeFile(t, filepath.Join(dir, name), []byte(text))
	}
	initrd := write("in/initrd", strings.Repeat("i", 4096))
	write("in/sys/vmlinuz", strings.Repeat("g", 4096))
	manifest := write("in/sys/system.yaml", "guests:\n  - name: control\n    kernel: vmlinuz\n  - name: infotainment\n    kernel: vmlinuz\n")
	img := filepath.Join(dir, "x.img")
	var out bytes.Buffer
	if err := run([]string{"image", "build", "--board", "qemu-virt-arm64", "--manifest", manifest, "--host-kernel", kernel,
		"--host-initrd", initrd, "--fetch=false", "-o", img}, &out, &out); err != nil {
		t.Fatalf("image build: %v\n%s", err, out.String())
	}
	badTest := write("bad.yaml", "steps:\n  - wait: \"control: x\"\n    within: soon\n")
	notImage := write("zeros.img", strings.Repeat("\x00", 64<<10))
	tests := []struct {
		name string
		args []string
		err  string
	}{
		{"another board", []string{img, "--board", "xlnx-zcu102"}, "--board xlnx-zcu102, but " + img + " was built for qemu-virt-arm64: leave --board out"},
		{"a guest the manifest lacks", []string{img, "--expect", "contrl: x"}, `"contrl: x": the image's manifest has no guest contrl: name one of control, infotainment, or board`},
		{"a bad regexp", []string{img, "--expect", "control: ("}, `--expect "control: (": error parsing regexp`},
		{"expect without a console", []string{img, "--expect", "TANDEM"}, `--expect "TANDEM": want CONSOLE: REGEX`},
		{"a bad --until", []string{img, "--until", "soon"}, `--until "soon": want CONSOLE: REGEX`},
		{"a broken test file", []string{img, "--test", badTest}, badTest + `:3: steps[0].within: "soon" is not a duration`},
		{"a wait on a guest the manifest lacks", []string{img, "--test", write("guest.yaml", "steps:\n  - wait: \"nav: x\"\n")}, `the image's manifest has no guest nav`},
		{"no image", []string{notImage}, "zeros.img: no partition table"},
		{"a screendump without its file", []string{img, "--screendump", "board: x"}, `--screendump "board: x": want 'CONSOLE: REGEX=FILE'`},
		{"a screendump on a guest the manifest lacks", []string{img, "--screendump", "nav: x=shot.png"}, `the image's manifest has no guest nav`},
		{"missing firmware", []string{img, "--firmware", filepath.Join(dir, "no-u-boot.bin")}, "no-u-boot.bin: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(append([]string{"emulate"}, tt.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("tandem emulate %v = %v; want an error with %q", tt.args, err, tt.err)
			}
			if stdout.Len() > 0 {
				t.Errorf("tandem emulate %v streamed a console though it refused:\n%s", tt.args, stdout.String())
			}
		})
	}
}
