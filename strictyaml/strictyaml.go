// Package strictyaml decodes configuration files strictly: an unknown
// field or a value of the wrong type is an error that names the file and
// line, on one line, so a typo in a board profile, a guest file or a
// system manifest is caught before anything starts. Line and Notes find
// the line of a field and the marked comments, for checks made after
// decoding.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ReadFile reads path and decodes it into v.
func ReadFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return Decode(path, data, v)
}

// Decode decodes data (named path in errors) into v. Unknown fields are
// errors; an empty document leaves v as it is.
func Decode(path string, data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			msgs = append(msgs, located(path, e))
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return errors.New(located(path, strings.TrimPrefix(err.Error(), "yaml: ")))
}

var (
	lineRe     = regexp.MustCompile(`^line (\d+): (.*)$`)
	notFoundRe = regexp.MustCompile(`^field (\S+) not found in type `)
)

// located rewrites "line N: msg" as "path:N: msg", and the decoder's Go
// type names as what a person wrote.
func located(path, msg string) string {
	m := lineRe.FindStringSubmatch(msg)
	if m == nil {
		return path + ": " + msg
	}
	text := m[2]
	if f := notFoundRe.FindStringSubmatch(text); f != nil {
		text = fmt.Sprintf("unknown field %q (check its spelling and indentation)", f[1])
	}
	text = strings.ReplaceAll(text, "cannot unmarshal ", "cannot use ")
	return fmt.Sprintf("%s:%s: %s", path, m[1], text)
}

// Line returns the line of a field of the document, named as a dotted
// path with sequence indexes ("passthrough[1].interrupts"), or 0 when
// the document has no such field. Checks made after decoding use it to
// locate their errors as Decode does.
func Line(data []byte, field string) int {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return 0
	}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(field, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			if n.Kind != yaml.MappingNode {
				return 0
			}
			var found *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line, found = n.Content[i].Line, n.Content[i+1]
					break
				}
			}
			if found == nil {
				return 0
			}
			n = found
		}
		for rest != "" {
			var idx int
			if _, err := fmt.Sscanf(rest, "%d]", &idx); err != nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
				return 0
			}
			n = n.Content[idx]
			line = n.Line
			_, rest, _ = strings.Cut(rest, "[")
		}
	}
	return line
}

// Nearest returns line(field) or, where that is 0 (the document leaves
// the field out), the line of the nearest field enclosing it:
// "gic.hyp", then "gic"; "passthrough[1].interrupts", then
// "passthrough[1]", then "passthrough". 0 when none is there.
func Nearest(field string, line func(field string) int) int {
	for f := field; f != ""; {
		if l := line(f); l > 0 {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

// A Note is a comment of a document that starts with a marker ("TODO:"),
// and the field it is about.
type Note struct {
	// Field is the field the comment stands above, or at the end of the
	// line of, named as Line takes it ("image.blobs", "memory[0]").
	Field string
	Line  int
	// Text is the comment from the marker's line on, without the marker,
	// its lines joined, up to a blank comment line.
	Text string
}

// Notes returns the comments of data whose line starts with marker, in
// the document's order: a porting kit marks what a generated file could
// not know, and finds what is still marked.
func Notes(data []byte, marker string) []Note {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil || len(root.Content) != 1 {
		return nil
	}
	var notes []Note
	var walk func(n *yaml.Node, field string)
	// note records the marked comments, about field at line, among those
	// yaml attached to one node.
	note := func(field string, line int, comments ...string) {
		for _, c := range comments {
			if text, ok := marked(c, marker); ok {
				notes = append(notes, Note{Field: field, Line: line, Text: text})
			}
		}
	}
	walk = func(n *yaml.Node, field string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				f := k.Value
				if field != "" {
					f = field + "." + k.Value
				}
				note(f, k.Line, k.HeadComment, k.LineComment, v.LineComment)
				walk(v, f)
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				f := fmt.Sprintf("%s[%d]", field, i)
				note(f, item.Line, item.HeadComment, item.LineComment)
				walk(item, f)
			}
		}
	}
	walk(root.Content[0], "")
	return notes
}

// marked returns the text of comment from its first line that starts
// with marker ("# TODO: ..."), continuation lines joined, up to a blank
// comment line.
func marked(comment, marker string) (string, bool) {
	var text []string
	in := false
	for _, l := range strings.Split(comment, "\n") {
		l = strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(l), "#"))
		if !in {
			rest, ok := strings.CutPrefix(l, marker)
			if !ok {
				continue
			}
			in, l = true, strings.TrimSpace(rest)
		} else if l == "" {
			break
		}
		text = append(text, l)
	}
	return strings.Join(text, " "), in
}
