package emulate

import (
	"fmt"
	"os"
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
//
// A wait counts only lines that came after the step before it ended.
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
	Name   string  `yaml:"name"`
	Wait   string  `yaml:"wait"`
	Within string  `yaml:"within"`
	Send   *string `yaml:"send"`
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
		switch {
		case sy.Wait != "" && sy.Send != nil:
			return nil, at(field, "has both wait and send: one step does one of them; split it in two")
		case sy.Wait != "":
			c, err := ParseExpect("wait", sy.Wait)
			if err != nil {
				return nil, at(field+".wait", "%v", err)
			}
			s.Wait = c
			if sy.Within != "" {
				d, err := time.ParseDuration(sy.Within)
				if err != nil || d <= 0 {
					return nil, at(field+".within", "%q is not a duration: write one such as 90s", sy.Within)
				}
				s.Within = d
			}
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
		default:
			return nil, at(field, "neither wait nor send: give wait: \"CONSOLE: REGEX\" (with within:) or send: \"TEXT\"")
		}
		tf.Steps = append(tf.Steps, s)
	}
	return tf, nil
}
