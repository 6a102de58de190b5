package emulate

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/strictyaml"
)

// A TestFile is a test file (--test FILE.yaml):
//
//	timeout: 6m                 # the whole run (optional)
//	expect-not:                 # as --expect-not
//	  - "Kernel panic"
//	steps:                      # in order
//	  - wait: "control: TANDEM-CONTROL.*sent=[1-9]"
//	    within: 3m              # from the end of the step before
//	  - send: "\n"              # typed on the board's console
//	    name: a newline         # the JUnit test case (optional)
//	  - run: tandem kill infotainment   # a console command (below)
//	  - input: "ls\n"           # typed on a guest's console
//	    console: control
//	  - screenshot: infotainment        # saved with the artifacts
//
// A wait counts only lines that came after the step before it ended.
//
// run, input and screenshot are console commands: the board's tandem
// init runs them when the image's host command line has
// tandem.commands=1 (tandem image build --cmdline tandem.commands=1).
// run takes tandem ps and tandem stop|start|restart|kill|threads|logs
// NAME; input is tandem input NAME TEXT, screenshot tandem screenshot
// NAME. Such a step holds once the board ran the command without an
// error, within its within: (1m if none).
type TestFile struct {
	Timeout   time.Duration
	ExpectNot []*Check
	Steps     []*Step
}

// testYAML is the file's form, decoded strictly (strictyaml).
type testYAML struct {
	Timeout   string     `yaml:"timeout"`
	ExpectNot []string   `yaml:"expect-not"`
	Steps     []stepYAML `yaml:"steps"`
}

type stepYAML struct {
	Name       string  `yaml:"name"`
	Wait       string  `yaml:"wait"`
	Within     string  `yaml:"within"`
	Send       *string `yaml:"send"`
	Run        string  `yaml:"run"`
	Input      *string `yaml:"input"`
	Console    string  `yaml:"console"`
	Screenshot string  `yaml:"screenshot"`
}

// stepKinds are what a step can do, one each.
const stepKinds = "wait, send, run, input or screenshot"

// RunCommands are the console commands tandem init runs as they are
// typed (cmd/tandem/consolecmd.go) and a run step takes: the word after
// tandem, and whether a guest's name follows it.
var RunCommands = map[string]bool{"ps": false, "stop": true, "start": true, "restart": true, "kill": true, "threads": true, "logs": true}

// EscapeInput writes text for a console command line: Go's escapes for
// what is not printable (\n for Enter), which tandem init reads back.
func EscapeInput(text string) string {
	q := strconv.Quote(text)
	return q[1 : len(q)-1]
}

// ReadTestFile reads and checks a test file.
func ReadTestFile(path string) (*TestFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTestFile(path, data)
}

// ParseTestFile decodes a test file's data (named path in errors); every
// error names the file and line.
func ParseTestFile(path string, data []byte) (*TestFile, error) {
	var y testYAML
	if err := strictyaml.Decode(path, data, &y); err != nil {
		return nil, err
	}
	at := func(field, format string, args ...any) error {
		line := strictyaml.Nearest(field, func(f string) int { return strictyaml.Line(data, f) })
		return fmt.Errorf("%s:%d: %s: %s", path, line, field, fmt.Sprintf(format, args...))
	}
	tf := &TestFile{}
	if y.Timeout != "" {
		d, err := time.ParseDuration(y.Timeout)
		if err != nil || d <= 0 {
			return nil, at("timeout", "%q is not a duration: write one such as 6m", y.Timeout)
		}
		tf.Timeout = d
	}
	for i, s := range y.ExpectNot {
		c, err := ParseExpectNot("expect-not", s)
		if err != nil {
			return nil, at(fmt.Sprintf("expect-not[%d]", i), "%v", err)
		}
		tf.ExpectNot = append(tf.ExpectNot, c)
	}
	if len(y.Steps) == 0 {
		return nil, at("steps", "no steps: give at least one, e.g. steps: [{wait: \"control: TANDEM-CONTROL\", within: 3m}]")
	}
	for i, sy := range y.Steps {
		field := fmt.Sprintf("steps[%d]", i)
		s := &Step{Name: sy.Name}
		var kinds []string
		for _, k := range []struct {
			name string
			set  bool
		}{{"wait", sy.Wait != ""}, {"send", sy.Send != nil}, {"run", sy.Run != ""}, {"input", sy.Input != nil}, {"screenshot", sy.Screenshot != ""}} {
			if k.set {
				kinds = append(kinds, k.name)
			}
		}
		if len(kinds) > 1 {
			return nil, at(field, "has %s: one step does one of %s; split it", strings.Join(kinds, " and "), stepKinds)
		}
		if sy.Console != "" && sy.Input == nil {
			return nil, at(field+".console", "console: goes with input: (a wait names its console in its line: \"NAME: REGEX\")")
		}
		var within time.Duration
		if sy.Within != "" {
			d, err := time.ParseDuration(sy.Within)
			if err != nil || d <= 0 {
				return nil, at(field+".within", "%q is not a duration: write one such as 90s", sy.Within)
			}
			within = d
		}
		switch {
		case sy.Wait != "":
			c, err := ParseExpect("wait", sy.Wait)
			if err != nil {
				return nil, at(field+".wait", "%v", err)
			}
			s.Wait, s.Within = c, within
			if s.Name == "" {
				s.Name = "wait " + sy.Wait
			}
		case sy.Send != nil:
			if sy.Within != "" {
				return nil, at(field+".within", "a send step has no within: it is done once typed")
			}
			if *sy.Send == "" {
				return nil, at(field+".send", "nothing to send: give the text, with \\n for Enter")
			}
			s.Send = *sy.Send
			if s.Name == "" {
				s.Name = fmt.Sprintf("send %q", s.Send)
			}
		case sy.Run != "":
			f := strings.Fields(sy.Run)
			named, known := false, false
			if len(f) >= 2 && f[0] == "tandem" {
				named, known = RunCommands[f[1]]
			}
			switch {
			case !known:
				return nil, at(field+".run", "%q: a run step takes tandem ps or tandem stop|start|restart|kill|threads|logs NAME", sy.Run)
			case named && len(f) != 3, !named && len(f) != 2:
				return nil, at(field+".run", "%q: tandem %s takes %s", sy.Run, f[1], map[bool]string{true: "one guest's name", false: "no argument"}[named])
			}
			s.Command, s.Within = strings.Join(f, " "), within
			if named {
				s.Guest = f[2]
			}
			if s.Name == "" {
				s.Name = "run " + s.Command
			}
		case sy.Input != nil:
			if sy.Console == "" {
				return nil, at(field+".console", "input: needs console: NAME, the guest whose console it is typed on")
			}
			if *sy.Input == "" {
				return nil, at(field+".input", "nothing to type: give the text, with \\n for Enter")
			}
			s.Command, s.Within, s.Guest = "tandem input "+sy.Console+" "+EscapeInput(*sy.Input), within, sy.Console
			if s.Name == "" {
				s.Name = fmt.Sprintf("input %q on %s", *sy.Input, sy.Console)
			}
		case sy.Screenshot != "":
			if strings.ContainsAny(sy.Screenshot, " \t") {
				return nil, at(field+".screenshot", "%q: give one guest's name", sy.Screenshot)
			}
			s.Command, s.Within, s.Guest = "tandem screenshot "+sy.Screenshot, within, sy.Screenshot
			if s.Name == "" {
				s.Name = "screenshot " + sy.Screenshot
			}
		default:
			return nil, at(field, "does nothing: give one of %s (e.g. wait: \"CONSOLE: REGEX\" with within:)", stepKinds)
		}
		tf.Steps = append(tf.Steps, s)
	}
	return tf, nil
}
