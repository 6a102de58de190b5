package emulate

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// TestSplitLine checks whose console a serial line is: "NAME | TEXT" is
// a guest's when NAME could be one (and is one of the image's guests,
// when they are known), everything else the board's.
func TestSplitLine(t *testing.T) {
	demo := []string{"control", "infotainment"}
	tests := []struct {
		line          string
		guests        []string
		console, text string
	}{
		{"control | TANDEM-CONTROL sent=3", demo, "control", "TANDEM-CONTROL sent=3"},
		{"control | a | b", demo, "control", "a | b"},
		{"other | x", demo, BoardConsole, "other | x"},
		{"other | x", nil, "other", "x"},
		{"tandem init:   control | TANDEM-CONTROL", demo, BoardConsole, "tandem init:   control | TANDEM-CONTROL"},
		{"tandem init:   control | TANDEM-CONTROL", nil, BoardConsole, "tandem init:   control | TANDEM-CONTROL"},
		{"[    1.234] virtio_blk virtio0: [vda] 1 | 2", nil, BoardConsole, "[    1.234] virtio_blk virtio0: [vda] 1 | 2"},
		{"control| x", demo, BoardConsole, "control| x"},
		{"", demo, BoardConsole, ""},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if c, text := SplitLine(tt.line, tt.guests); c != tt.console || text != tt.text {
				t.Errorf("SplitLine(%q) = %q, %q; want %q, %q", tt.line, c, text, tt.console, tt.text)
			}
		})
	}
}

// TestParseExpect checks --expect's and --expect-not's forms and the
// errors for what they refuse.
func TestParseExpect(t *testing.T) {
	tests := []struct {
		name, s       string
		not           bool
		console, expr string
		err           string
	}{
		{"guest", "control: TANDEM-CONTROL.*sent=[1-9]", false, "control", "TANDEM-CONTROL.*sent=[1-9]", ""},
		{"board", "board: reboot: Power down", false, BoardConsole, "reboot: Power down", ""},
		{"any console", "*: Oops", false, "", "Oops", ""},
		{"no space after the colon", "control:x", false, "control", "x", ""},
		{"expect without a console", "TANDEM-CONTROL", false, "", "", `want CONSOLE: REGEX`},
		{"expect with an empty regexp", "control:  ", false, "", "", `want CONSOLE: REGEX`},
		{"bad regexp", "control: (", false, "", "", "missing closing ): `(`: fix the regexp"},
		{"expect-not without a console", "Kernel panic", true, "", "Kernel panic", ""},
		{"expect-not whose regexp holds a colon", "Kernel panic - not syncing: x", true, "", "Kernel panic - not syncing: x", ""},
		{"expect-not on a guest", "infotainment: faults=[1-9]", true, "infotainment", "faults=[1-9]", ""},
		{"expect-not bad regexp", "x[", true, "", "", "missing closing ]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parse := ParseExpect
			if tt.not {
				parse = ParseExpectNot
			}
			c, err := parse("--expect", tt.s)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parse(%q) = %v; want an error with %q", tt.s, err, tt.err)
				}
			case err != nil:
				t.Fatalf("parse(%q) = %v", tt.s, err)
			case c.Console != tt.console || c.Re.String() != tt.expr || c.Not != tt.not || c.Spec != tt.s:
				t.Errorf("parse(%q) = console %q regexp %q not %v spec %q; want %q %q %v", tt.s, c.Console, c.Re, c.Not, c.Spec, tt.console, tt.expr, tt.not)
			}
		})
	}
}

// TestCheckConsoles checks that a check naming a console the manifest
// lacks is refused with the names it has, and that any name goes when
// the manifest is unknown.
func TestCheckConsoles(t *testing.T) {
	c, _ := ParseExpect("--expect", "contrl: x")
	err := CheckConsoles("--expect", []*Check{c}, []string{"control", "infotainment"})
	if err == nil || !strings.Contains(err.Error(), "no guest contrl: name one of control, infotainment, or board") {
		t.Errorf("CheckConsoles(contrl) = %v; want the guests named", err)
	}
	if err := CheckConsoles("--expect", []*Check{c}, nil); err != nil {
		t.Errorf("CheckConsoles(contrl, unknown guests) = %v; want nil", err)
	}
}

// feed hands a session console lines, as QEMU's output would.
func feed(s *session, lines string) {
	for _, l := range strings.Split(strings.TrimSpace(lines), "\n") {
		s.line(strings.TrimSpace(l))
	}
}

func testSession(t *testing.T, opt Options) *session {
	t.Helper()
	opt.Board = QEMUVirtARM64
	if opt.Guests == nil {
		opt.Guests = []string{"control", "infotainment"}
	}
	return newSession(opt, nil)
}

func mustExpect(t *testing.T, specs ...string) []*Check {
	t.Helper()
	var l []*Check
	for _, s := range specs {
		parse := ParseExpect
		if n, ok := strings.CutPrefix(s, "!"); ok {
			s, parse = n, ParseExpectNot
		}
		c, err := parse("--expect", s)
		if err != nil {
			t.Fatal(err)
		}
		l = append(l, c)
	}
	return l
}

// TestSessionVMMLines checks that the VMM's own lines on a guest's
// console ("tandem: guest ended: …", which may quote the guest) never
// satisfy an expectation, that a line of another console or the board's
// report of a guest's lines does not either, and that expect-not sees
// the VMM's lines.
func TestSessionVMMLines(t *testing.T) {
	s := testSession(t, Options{Expect: mustExpect(t, "control: TANDEM-CONTROL.*sent=[1-9]", "!control: watchdog expired")})
	feed(s, `
		control | tandem: guest ended: TANDEM-CONTROL sent=5
		infotainment | TANDEM-CONTROL sent=5
		tandem init:   control | TANDEM-CONTROL sent=5
		control TANDEM-CONTROL sent=5`)
	if end, done := s.done(); done {
		t.Fatalf("done() = %q, true; want the run going on: no line of control's own matched", end)
	}
	feed(s, `control | TANDEM-CONTROL misses=0 sent=7`)
	if end, done := s.done(); !done || end != EndExpectations {
		t.Fatalf("done() = %q, %v; want %q", end, done, EndExpectations)
	}
	feed(s, `control | tandem: guest ended: watchdog expired`)
	if end, done := s.done(); !done || end != EndFailed {
		t.Fatalf("done() after the VMM's watchdog line = %q, %v; want %q", end, done, EndFailed)
	}
	res := s.result(EndFailed)
	if len(res.Cases) != 2 || !res.Cases[0].Passed || res.Cases[1].Passed {
		t.Fatalf("result() cases = %+v; want the expect passed and the expect-not failed", res.Cases)
	}
	if f := res.Cases[1]; f.Name != "expect-not control: watchdog expired" || !strings.Contains(f.Failure, "control printed a line matching watchdog expired") ||
		len(f.Excerpt) != 3 || f.Excerpt[2] != "control | tandem: guest ended: watchdog expired" {
		t.Errorf("the expect-not's case = %+v; want it named, the line quoted and control's 3 lines", f)
	}
}

// TestSessionResult checks a run that ends before an expectation held:
// the failure names the console, the regexp and the end, with that
// console's last lines (TailLines at most); an expect-not that never
// matched passes.
func TestSessionResult(t *testing.T) {
	s := testSession(t, Options{Expect: mustExpect(t, "infotainment: NEVER", "control: TANDEM-CONTROL", "!Kernel panic", "board: Found U-Boot script")})
	for i := 0; i < 30; i++ {
		s.line("infotainment | line " + strings.Repeat("x", i))
	}
	feed(s, `
		Found U-Boot script /boot.scr
		control | TANDEM-CONTROL sent=1
		reboot: Power down`)
	if end, done := s.done(); done {
		t.Fatalf("done() = %q, true; want the run going on until infotainment's line", end)
	}
	res := s.result(EndPowerOff)
	if !res.PoweredOff || res.Passed() {
		t.Fatalf("result() = powered off %v, passed %v; want true, false", res.PoweredOff, res.Passed())
	}
	want := []struct {
		name   string
		passed bool
	}{{"expect infotainment: NEVER", false}, {"expect control: TANDEM-CONTROL", true}, {"expect-not Kernel panic", true}, {"expect board: Found U-Boot script", true}}
	for i, w := range want {
		if c := res.Cases[i]; c.Name != w.name || c.Passed != w.passed {
			t.Errorf("case %d = %q passed %v; want %q passed %v", i, c.Name, c.Passed, w.name, w.passed)
		}
	}
	f := res.Cases[0]
	if !regexp.MustCompile(`^no line of infotainment matched NEVER within \d+\.\ds \(the run ended: the board powered off\)$`).MatchString(f.Failure) {
		t.Errorf("failure = %q", f.Failure)
	}
	if len(f.Excerpt) != TailLines || f.Excerpt[TailLines-1] != "infotainment | line "+strings.Repeat("x", 29) {
		t.Errorf("excerpt = %d lines ending %q; want infotainment's last %d", len(f.Excerpt), f.Excerpt[len(f.Excerpt)-1], TailLines)
	}
}

// TestSessionSteps checks a test file's steps: in order, a wait counts
// only lines after the step before, a send is handed out once, a wait
// past its within fails the run, and the steps after it are skipped.
func TestSessionSteps(t *testing.T) {
	tf, err := ParseTestFile("steps.yaml", []byte(`
steps:
  - wait: "control: ready"
  - send: "status\n"
  - wait: "board: status ok"
  - wait: "infotainment: go"
    within: 50ms
  - send: "after\n"
`))
	if err != nil {
		t.Fatal(err)
	}
	s := testSession(t, Options{Steps: tf.Steps})
	feed(s, `
		board: status ok
		control | ready`)
	if send, ok := s.pendingSend(); !ok || send != "status\n" {
		t.Fatalf("pendingSend() = %q, %v; want the second step's text", send, ok)
	}
	if _, ok := s.pendingSend(); ok {
		t.Fatalf("pendingSend() handed out a send twice, or one not yet due")
	}
	feed(s, `infotainment | go`) // before its step: does not count
	feed(s, `status ok`)
	if _, done := s.done(); done {
		t.Fatalf("done() = true with the fourth step waiting")
	}
	time.Sleep(80 * time.Millisecond)
	if end, done := s.done(); !done || end != EndFailed {
		t.Fatalf("done() = %q, %v past the fourth step's within; want %q", end, done, EndFailed)
	}
	res := s.result(EndFailed)
	for i, w := range []string{"ok", "ok", "ok", "FAIL", "SKIP"} {
		c := res.Cases[i]
		got := "ok"
		switch {
		case c.Skipped:
			got = "SKIP"
		case !c.Passed:
			got = "FAIL"
		}
		if got != w {
			t.Errorf("step %d (%s) = %s (%s); want %s", i+1, c.Name, got, c.Failure, w)
		}
	}
	if f := res.Cases[3].Failure; f != "no line of infotainment matched go within 50ms" {
		t.Errorf("step 4's failure = %q", f)
	}
}

// TestSessionUntil checks that --until ends the run at its line whether
// or not the expectations held, and that --until poweroff keeps it going
// after they did.
func TestSessionUntil(t *testing.T) {
	until := mustExpect(t, "board: tandem init: system ended")[0]
	s := testSession(t, Options{Expect: mustExpect(t, "control: x"), Until: until})
	feed(s, `control | x`)
	if _, done := s.done(); done {
		t.Errorf("done() = true before the --until line")
	}
	feed(s, `tandem init: system ended; powering off`)
	if end, done := s.done(); !done || end != EndUntil {
		t.Errorf("done() = %q, %v; want %q", end, done, EndUntil)
	}
	p := testSession(t, Options{Expect: mustExpect(t, "control: x"), UntilPowerOff: true})
	feed(p, `control | x`)
	if _, done := p.done(); done {
		t.Errorf("done() = true with --until poweroff before the power-off")
	}
	feed(p, `[   40.1] reboot: Power down`)
	if res := p.result(p.exitEnd()); !res.Passed() || res.End != EndPowerOff || res.Cases[1].Name != "until poweroff" {
		t.Errorf("result() = %+v; want passed, ended by the power-off", res)
	}
}

// TestParseTestFile checks a good test file and, one field at a time, a
// broken one: every error names the file and line.
func TestParseTestFile(t *testing.T) {
	good, err := os.ReadFile("testdata/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tf, err := ParseTestFile("demo.yaml", good)
	if err != nil {
		t.Fatalf("ParseTestFile(demo.yaml) = %v", err)
	}
	if tf.Timeout != 8*time.Minute || len(tf.ExpectNot) != 1 || len(tf.Steps) != 4 ||
		tf.Steps[0].Within != 2*time.Minute || tf.Steps[1].Name != "the system starts" || tf.Steps[2].Send != "\n" ||
		tf.Steps[3].Name != "wait control: TANDEM-CONTROL.*sent=[1-9]" || tf.Steps[3].Wait.Console != "control" {
		t.Errorf("ParseTestFile(demo.yaml) = %+v, steps %+v %+v %+v %+v", tf, tf.Steps[0], tf.Steps[1], tf.Steps[2], tf.Steps[3])
	}
	tests := []struct {
		name, old, new, err string
	}{
		{"unknown field", "    within: 60s", "    withn: 60s", `demo.yaml:11: unknown field "withn"`},
		{"bad timeout", "timeout: 8m", "timeout: soon", `demo.yaml:3: timeout: "soon" is not a duration`},
		{"bad within", "within: 2m", "within: -5m", `demo.yaml:8: steps[0].within: "-5m" is not a duration`},
		{"wait without a console", `wait: "control: TANDEM`, `wait: "TANDEM`, `demo.yaml:13: steps[3].wait: wait "TANDEM-CONTROL.*sent=[1-9]": want CONSOLE: REGEX`},
		{"bad regexp", `"Kernel panic"`, `"Kernel (panic"`, `demo.yaml:5: expect-not[0]: expect-not "Kernel (panic": error parsing regexp`},
		{"wait and send", `  - send: "\n"`, `  - send: "\n"` + "\n    wait: \"board: x\"", `demo.yaml:12: steps[2]: has wait and send: one step does one of`},
		{"neither", `  - send: "\n"`, `  - name: nothing`, `demo.yaml:12: steps[2]: does nothing: give one of wait, send, run, input or screenshot`},
		{"unknown command", `  - send: "\n"`, `  - run: tandem reboot`, `demo.yaml:12: steps[2].run: "tandem reboot": a run step takes tandem ps or tandem stop|start|restart|kill|threads|logs NAME`},
		{"command without its guest", `  - send: "\n"`, `  - run: tandem kill`, `demo.yaml:12: steps[2].run: "tandem kill": tandem kill takes one guest's name`},
		{"ps with a guest", `  - send: "\n"`, `  - run: tandem ps control`, `steps[2].run: "tandem ps control": tandem ps takes no argument`},
		{"input without its console", `  - send: "\n"`, `  - input: "ls\n"`, `demo.yaml:12: steps[2].console: input: needs console: NAME`},
		{"console without input", `  - send: "\n"`, `  - run: tandem ps` + "\n    console: control", `steps[2].console: console: goes with input:`},
		{"run and screenshot", `  - send: "\n"`, `  - run: tandem ps` + "\n    screenshot: infotainment", `steps[2]: has run and screenshot: one step does one of`},
		{"screenshot of two", `  - send: "\n"`, `  - screenshot: a b`, `steps[2].screenshot: "a b": give one guest's name`},
		{"empty send", `  - send: "\n"`, `  - send: ""`, `demo.yaml:12: steps[2].send: nothing to send`},
		{"send with within", `  - send: "\n"`, `  - send: "\n"` + "\n    within: 1s", `demo.yaml:13: steps[2].within: a send step has no within`},
		{"wrong type", "timeout: 8m", "timeout: [8m]", `demo.yaml:3: cannot use !!seq into string`},
		{"no steps", "steps:", "stepz:", `demo.yaml:6: unknown field "stepz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(good, []byte(tt.old)) {
				t.Fatalf("testdata/demo.yaml lacks %q", tt.old)
			}
			data := bytes.Replace(good, []byte(tt.old), []byte(tt.new), 1)
			_, err := ParseTestFile("demo.yaml", data)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseTestFile() = %v; want %q", err, tt.err)
			}
		})
	}
	if _, err := ParseTestFile("empty.yaml", []byte("timeout: 1m\n")); err == nil || !strings.Contains(err.Error(), "empty.yaml:0: steps: no steps") {
		t.Errorf("ParseTestFile(no steps) = %v; want it refused", err)
	}
}

// FuzzParseTestFile feeds the test-file parser broken files: it errs or
// returns steps that each wait or send, never both.
func FuzzParseTestFile(f *testing.F) {
	good, _ := os.ReadFile("testdata/demo.yaml")
	f.Add(good)
	f.Add([]byte("steps: [{wait: 'board: x', within: 1s}, {send: y}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := ParseTestFile("f.yaml", data)
		if err != nil {
			return
		}
		for i, s := range tf.Steps {
			if (s.Wait == nil) == (s.Send == "") {
				t.Fatalf("step %d = %+v: waits and sends, or neither", i, s)
			}
		}
	})
}

// sampleResult is a run with a passed, a failed and a skipped case.
func sampleResult() *Result {
	return &Result{End: EndPowerOff, Duration: 93 * time.Second, PoweredOff: true, Cases: []*Case{
		{Name: "expect control: TANDEM-CONTROL.*sent=[1-9]", Console: "control", Passed: true, Time: 61 * time.Second, Line: "control | TANDEM-CONTROL sent=3"},
		{Name: "expect infotainment: NEVER <&>", Console: "infotainment", Time: 93 * time.Second,
			Failure: "no line of infotainment matched NEVER <&>", Excerpt: []string{"infotainment | a]]>b", "infotainment | \x1b[0m c"}},
		{Name: "step 2: send \"x\"", Skipped: true, Failure: "not run"},
		{Name: "expect-not Kernel panic", Passed: true, Time: 93 * time.Second},
	}}
}

// TestJUnitSchema checks the JUnit XML against testdata/junit.xsd with
// xmllint, and reads it back: one testcase per case, the failure's
// message and console excerpt, the counts.
func TestJUnitSchema(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJUnit(&b, JUnitRun{Image: "x.img", Board: "qemu-virt-arm64", Started: time.Unix(1700000000, 0)}, sampleResult()); err != nil {
		t.Fatal(err)
	}
	if err := validateJUnit(b.Bytes()); err != nil {
		t.Fatalf("validateJUnit() = %v\n%s", err, b.String())
	}
	xmllint := testenv.RequireCommand(t, "xmllint", "libxml2-utils")
	file := filepath.Join(t.TempDir(), "out.xml")
	os.WriteFile(file, b.Bytes(), 0o644)
	if out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit.xsd", file).CombinedOutput(); err != nil {
		t.Fatalf("xmllint --schema testdata/junit.xsd = %v: %s\n%s", err, out, b.String())
	}
	// The schema itself refuses what CI readers refuse.
	for _, broken := range []struct{ name, old, new string }{
		{"a testcase without a name", `<testcase name="expect-not Kernel panic"`, `<testcase`},
		{"a negative time", `time="61.000"`, `time="-1"`},
		{"a failure outside a testcase", `<testsuite name=`, `<failure/><testsuite name=`},
	} {
		t.Run(broken.name, func(t *testing.T) {
			bad := strings.Replace(b.String(), broken.old, broken.new, 1)
			if bad == b.String() {
				t.Fatalf("the report lacks %q", broken.old)
			}
			os.WriteFile(file, []byte(bad), 0o644)
			if err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit.xsd", file).Run(); err == nil {
				t.Errorf("xmllint --schema accepted %s", broken.name)
			}
			if err := validateJUnit([]byte(bad)); err == nil {
				t.Errorf("validateJUnit() accepted %s", broken.name)
			}
		})
	}
	var doc junitSuites
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Suites[0]
	if s.Tests != 4 || s.Failures != 1 || s.Skipped != 1 || len(s.Cases) != 4 || s.Time != "93.000" {
		t.Errorf("testsuite = tests %d failures %d skipped %d cases %d time %s; want 4 1 1 4 93.000", s.Tests, s.Failures, s.Skipped, len(s.Cases), s.Time)
	}
	f := s.Cases[1]
	if f.Name != "expect infotainment: NEVER <&>" || f.Classname != "emulate.infotainment" || f.Failure == nil ||
		!strings.Contains(f.Failure.Text, "infotainment's last 2 lines:\ninfotainment | a]]>b\n") {
		t.Errorf("failed testcase = %+v; want its name, console and excerpt", f)
	}
}

// TestBoardCheck checks that a board whose emulator and firmware are
// missing is refused naming both Debian packages, and that the boards
// tandem emulate knows are found by name and others refused.
func TestBoardCheck(t *testing.T) {
	b := *QEMUVirtARM64
	b.QEMU, b.Firmware = "qemu-system-aarch64-not-installed", filepath.Join(t.TempDir(), "u-boot.bin")
	err := b.Check()
	if err == nil || !strings.HasSuffix(err.Error(), "install it with apt-get install qemu-system-arm u-boot-qemu") ||
		!strings.Contains(err.Error(), "qemu-system-aarch64-not-installed not found (Debian's qemu-system-arm)") {
		t.Errorf("Check() = %v; want both packages named", err)
	}
	if got, err := LookupBoard("qemu-virt-arm64"); err != nil || got != QEMUVirtARM64 {
		t.Errorf("LookupBoard(qemu-virt-arm64) = %v, %v", got, err)
	}
	if got, err := LookupBoard("zcu102"); err != nil || got != ZCU102 {
		t.Errorf("LookupBoard(zcu102) = %v, %v", got, err)
	}
	if _, err := LookupBoard("rpi4b"); err == nil || !strings.Contains(err.Error(), "board rpi4b: no emulated counterpart in tandem emulate") {
		t.Errorf("LookupBoard(rpi4b) = %v; want it refused", err)
	}
	// A board QEMU boots without firmware needs only the emulator.
	z := *ZCU102
	z.QEMU = "qemu-system-aarch64-not-installed"
	if err := z.Check(); err == nil || !strings.HasSuffix(err.Error(), "install it with apt-get install qemu-system-arm") {
		t.Errorf("Check() = %v; want only QEMU's package named", err)
	}
}

// TestCommandSteps: a test file's console commands are typed on the
// board's console one at a time, each once; a step holds when tandem
// init shows it ran the command with an answer that is no error, fails
// on an error answer, and fails naming tandem.commands=1 when the board
// never runs it.
func TestCommandSteps(t *testing.T) {
	parse := func(t *testing.T, yaml string) []*Step {
		t.Helper()
		tf, err := ParseTestFile("t.yaml", []byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		return tf.Steps
	}
	steps := parse(t, `steps:
  - run: tandem   kill infotainment
  - input: "ls -l\n"
    console: control
  - screenshot: infotainment
  - wait: "infotainment: back"
`)
	tests := []struct {
		name     string
		lines    string // fed after each send; "" feeds nothing
		wantSent []string
		passed   bool
		failure  string
	}{
		{"every command run", "", []string{"tandem kill infotainment\n", `tandem input control ls -l\n` + "\n", "tandem screenshot infotainment\n"}, true, ""},
		{"an error answer", "error", []string{"tandem kill infotainment\n"}, false, `the board ran "tandem kill infotainment" and answered: error: no guest "infotainment"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSession(t, Options{Steps: steps})
			var sent []string
			for i := 0; i < 5; i++ {
				text, ok := s.pendingSend()
				if !ok {
					break
				}
				if again, ok := s.pendingSend(); ok {
					t.Fatalf("pendingSend() typed %q twice (then %q)", text, again)
				}
				sent = append(sent, text)
				cmd := strings.TrimSuffix(text, "\n")
				feed(s, "control | a line before the board ran it\ntandem init: "+"$ "+cmd)
				if tt.lines == "error" {
					feed(s, `tandem init: > error: no guest "infotainment"`)
				} else {
					feed(s, "tandem init: > done")
				}
			}
			feed(s, "infotainment | back")
			if !slices.Equal(sent, tt.wantSent) {
				t.Errorf("typed %q, want %q", sent, tt.wantSent)
			}
			end, _ := s.done()
			res := s.result(end)
			if res.Passed() != tt.passed {
				t.Fatalf("result passed = %v, want %v: %+v", res.Passed(), tt.passed, res.Failed())
			}
			if tt.failure != "" && (len(res.Failed()) == 0 || res.Failed()[0].Failure != tt.failure) {
				t.Errorf("first failure = %+v, want %q", res.Failed()[0], tt.failure)
			}
			if tt.passed && res.Cases[0].Console != BoardConsole {
				t.Errorf("a command step's case watched %q, want the board's console", res.Cases[0].Console)
			}
		})
	}
	t.Run("never run", func(t *testing.T) {
		steps := parse(t, "steps:\n  - run: tandem ps\n    within: 1ms\n")
		s := testSession(t, Options{Steps: steps})
		s.pendingSend()
		time.Sleep(5 * time.Millisecond)
		end, done := s.done()
		res := s.result(end)
		if !done || end != EndFailed || !strings.Contains(res.Cases[0].Failure, "tandem image build --cmdline tandem.commands=1") {
			t.Errorf("done() = %q, %v; case %+v; want a failure naming tandem.commands=1", end, done, res.Cases[0])
		}
	})
}

// TestDocsTestFile: the test file docs/ci.md shows parses, every kind of
// step in it.
func TestDocsTestFile(t *testing.T) {
	doc, err := os.ReadFile("../docs/ci.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "## A test file")
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/ci.md has no yaml block under \"A test file\"")
	}
	tf, err := ParseTestFile("docs/ci.md", []byte(block))
	if err != nil {
		t.Fatalf("docs/ci.md's test file: %v", err)
	}
	kinds := map[string]bool{}
	for _, s := range tf.Steps {
		switch {
		case s.Wait != nil:
			kinds["wait"] = true
		case s.Send != "":
			kinds["send"] = true
		case strings.HasPrefix(s.Command, "tandem input "):
			kinds["input"] = true
		case strings.HasPrefix(s.Command, "tandem screenshot "):
			kinds["screenshot"] = true
		case s.Command != "":
			kinds["run"] = true
		}
	}
	if len(kinds) != 5 {
		t.Errorf("docs/ci.md's test file shows steps %v, want every kind (wait, send, run, input, screenshot)", kinds)
	}
}
