package emulate

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
)

// node is an XML element, read generically.
type node struct {
	name  string
	attrs map[string]string
	kids  []*node
}

func parseXML(data []byte) (*node, error) {
	d := xml.NewDecoder(bytes.NewReader(data))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			n := &node{name: t.Name.Local, attrs: map[string]string{}}
			for _, a := range t.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			} else if root == nil {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root == nil {
		return nil, fmt.Errorf("no root element")
	}
	return root, nil
}

// validateJUnit checks, without xmllint, what testdata/junit.xsd
// requires: testsuites > testsuite > testcase, each with its required
// attributes, times non-negative decimals, counts that are numbers, and
// failure, error and skipped only inside a testcase, at most one of them.
func validateJUnit(data []byte) error {
	root, err := parseXML(data)
	if err != nil {
		return err
	}
	if root.name != "testsuites" {
		return fmt.Errorf("root element <%s>, want <testsuites>", root.name)
	}
	need := func(n *node, attrs ...string) error {
		for _, a := range attrs {
			if _, ok := n.attrs[a]; !ok {
				return fmt.Errorf("<%s> lacks the attribute %s", n.name, a)
			}
		}
		return nil
	}
	count := func(n *node, attrs ...string) error {
		for _, a := range attrs {
			if v, ok := n.attrs[a]; ok {
				if i, err := strconv.Atoi(v); err != nil || i < 0 {
					return fmt.Errorf("<%s %s=%q>: not a count", n.name, a, v)
				}
			}
		}
		return nil
	}
	time := func(n *node) error {
		if v, ok := n.attrs["time"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err != nil || f < 0 {
				return fmt.Errorf("<%s time=%q>: not a non-negative number of seconds", n.name, v)
			}
		}
		return nil
	}
	for _, s := range root.kids {
		if s.name != "testsuite" {
			return fmt.Errorf("<%s> in <testsuites>, want <testsuite>", s.name)
		}
		for _, err := range []error{need(s, "name", "tests", "failures", "errors", "time"), count(s, "tests", "failures", "errors", "skipped"), time(s)} {
			if err != nil {
				return err
			}
		}
		for _, c := range s.kids {
			switch c.name {
			case "properties", "system-out", "system-err":
				continue
			case "testcase":
			default:
				return fmt.Errorf("<%s> in <testsuite>", c.name)
			}
			if err := need(c, "name", "classname", "time"); err != nil {
				return err
			}
			if err := time(c); err != nil {
				return err
			}
			outcomes := 0
			for _, k := range c.kids {
				switch k.name {
				case "failure", "error", "skipped":
					outcomes++
				case "system-out", "system-err":
				default:
					return fmt.Errorf("<%s> in <testcase>", k.name)
				}
			}
			if outcomes > 1 {
				return fmt.Errorf("testcase %q has %d outcomes, want at most one", c.attrs["name"], outcomes)
			}
		}
	}
	return nil
}
