package emulate

import (
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// The JUnit XML CI systems read (GitHub's test reporters, GitLab, Jenkins):
// testsuites, one testsuite per run, one testcase per expectation or
// step. The schema it follows is testdata/junit.xsd: the attributes
// Jenkins' and Ant's JUnit reports share.

// junitSuites mirrors <testsuites>.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

// junitSuite mirrors <testsuite>.
type junitSuite struct {
	Name      string          `xml:"name,attr"`
	Tests     int             `xml:"tests,attr"`
	Failures  int             `xml:"failures,attr"`
	Errors    int             `xml:"errors,attr"`
	Skipped   int             `xml:"skipped,attr"`
	Time      string          `xml:"time,attr"`
	Timestamp string          `xml:"timestamp,attr"`
	Props     []junitProperty `xml:"properties>property"`
	Cases     []junitCase     `xml:"testcase"`
	SystemOut string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// junitCase mirrors <testcase>.
type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure"`
	Skipped   *junitMessage `xml:"skipped"`
	SystemOut string        `xml:"system-out,omitempty"`
}

// junitMessage mirrors <failure> and <skipped>: a message attribute and,
// for a failure, the console excerpt as text.
type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",cdata"`
}

// JUnitRun names a run in its report.
type JUnitRun struct {
	Image, Board string
	Started      time.Time
}

// WriteJUnit writes res as JUnit XML.
func WriteJUnit(w io.Writer, run JUnitRun, res *Result) error {
	suite := junitSuite{
		Name: "tandem emulate " + run.Board, Tests: len(res.Cases), Time: seconds(res.Duration),
		Timestamp: run.Started.UTC().Format("2006-01-02T15:04:05"),
		Props:     []junitProperty{{"image", run.Image}, {"board", run.Board}, {"end", string(res.End)}},
	}
	for _, c := range res.Cases {
		jc := junitCase{Name: c.Name, Classname: "emulate." + classConsole(c.Console), Time: seconds(c.Time)}
		switch {
		case c.Skipped:
			suite.Skipped++
			jc.Skipped = &junitMessage{Message: c.Failure}
		case !c.Passed:
			suite.Failures++
			text := c.Failure + "\n"
			if len(c.Excerpt) > 0 {
				text += fmt.Sprintf("\n%s's last %d lines:\n%s\n", consoleName(c.Console), len(c.Excerpt), strings.Join(c.Excerpt, "\n"))
			}
			jc.Failure = &junitMessage{Message: c.Failure, Type: "expectation", Text: xmlChars(text)}
		default:
			jc.SystemOut = c.Line
		}
		suite.Cases = append(suite.Cases, jc)
	}
	doc := junitSuites{Name: "tandem emulate", Tests: suite.Tests, Failures: suite.Failures, Skipped: suite.Skipped,
		Time: suite.Time, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// WriteJUnitFile writes res as JUnit XML into file.
func WriteJUnitFile(file string, run JUnitRun, res *Result) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	if err := WriteJUnit(f, run, res); err != nil {
		f.Close()
		return fmt.Errorf("--junit %s: %w", file, err)
	}
	return f.Close()
}

// xmlChars replaces what XML 1.0 may not hold (section 2.2, Char) with
// U+FFFD: a console's escape sequences and stray control bytes. The
// encoder does so for attributes and text, but not inside CDATA.
func xmlChars(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r',
			r >= 0x20 && r <= 0xd7ff,
			r >= 0xe000 && r <= 0xfffd,
			r >= 0x10000 && r <= 0x10ffff:
			return r
		}
		return '\ufffd'
	}, s)
}

func classConsole(c string) string {
	if c == "" {
		return "any"
	}
	return c
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
