package xen

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The xl.cfg(5) syntax, as libxlu's lexer and grammar read it
// (tools/libs/util/libxlu_cfg_l.l, libxlu_cfg_y.y):
//
//	file       = { [ KEY ( "=" | "+=" ) value ] ( NEWLINE | ";" ) }
//	value      = atom | "[" { NEWLINE } [ value { NEWLINE } { "," { NEWLINE } value { NEWLINE } } [ "," { NEWLINE } ] ] "]"
//	atom       = STRING | NUMBER
//	KEY        = [a-z][._0-9a-z]*
//	NUMBER     = [0-9][0-9a-fx]*
//	STRING     = '...' or "..." on one line, with C escapes
//
// "#" starts a comment that runs to the end of the line. A key set twice
// takes its last value; "+=" appends to a list or a string.

// Value is one xl value: an atom (quoted string or bare number) or a list.
type Value struct {
	Atom   string
	Quoted bool // the atom was a quoted string
	List   []Value
	IsList bool
	Line   int
}

// String renders the value as xl.cfg would spell it, for messages.
func (v Value) String() string {
	if !v.IsList {
		if v.Quoted {
			return strconv.Quote(v.Atom)
		}
		return v.Atom
	}
	parts := make([]string, len(v.List))
	for i, e := range v.List {
		parts[i] = e.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// Setting is one key of an xl.cfg file with its final value.
type Setting struct {
	Key   string
	Value Value
	Line  int // of the key's last assignment
}

// XLConfig is a parsed xl.cfg file: its settings in the order their keys
// first appear, each with its final value.
type XLConfig struct {
	File     string
	Settings []*Setting
	// Repeated lists keys assigned more than once with "=": xl keeps the
	// last value, which is easy to miss.
	Repeated []*Setting
}

// Get returns the setting for key, or nil.
func (c *XLConfig) Get(key string) *Setting {
	for _, s := range c.Settings {
		if s.Key == key {
			return s
		}
	}
	return nil
}

// maxXLSize bounds an xl.cfg file: real ones are a few KiB.
const maxXLSize = 1 << 20

// maxXLDepth bounds list nesting (xl uses at most two levels, vnuma).
const maxXLDepth = 8

type tokKind int

const (
	tokEOF tokKind = iota
	tokNewline
	tokIdent
	tokNumber
	tokString
	tokAssign // =
	tokAppend // +=
	tokSemi
	tokComma
	tokOpen
	tokClose
)

type token struct {
	kind tokKind
	text string // identifier, number or dequoted string
	line int
}

type xlParser struct {
	file string
	src  string
	pos  int
	line int
	tok  token
}

// ParseXL parses an xl.cfg file. file names it in errors.
func ParseXL(file string, data []byte) (*XLConfig, error) {
	if len(data) > maxXLSize {
		return nil, &Error{File: file, Msg: fmt.Sprintf("%d bytes: larger than any xl.cfg (at most %d); is this the right file?", len(data), maxXLSize)}
	}
	if !utf8.Valid(data) {
		// The values end up in system.yaml, which is UTF-8.
		line := 1
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			if r == '\n' {
				line++
			}
			i += n
		}
		return nil, &Error{File: file, Line: line, Msg: "not UTF-8 text: save the file as UTF-8 (iconv -t UTF-8)"}
	}
	p := &xlParser{file: file, src: string(data), line: 1}
	cfg := &XLConfig{File: file}
	if err := p.next(); err != nil {
		return nil, err
	}
	for p.tok.kind != tokEOF {
		switch p.tok.kind {
		case tokNewline, tokSemi:
			if err := p.next(); err != nil {
				return nil, err
			}
			continue
		case tokIdent:
		default:
			return nil, p.errorf("", "unexpected %s at the start of a line: want KEY = VALUE", p.describe())
		}
		key, line := p.tok.text, p.tok.line
		if err := p.next(); err != nil {
			return nil, err
		}
		op := p.tok.kind
		if op != tokAssign && op != tokAppend {
			return nil, p.errorf(key, "want = after the key, found %s", p.describe())
		}
		if err := p.next(); err != nil {
			return nil, err
		}
		v, err := p.value(key, 0)
		if err != nil {
			return nil, err
		}
		switch p.tok.kind {
		case tokNewline, tokSemi, tokEOF:
		default:
			return nil, p.errorf(key, "unexpected %s after the value: put one KEY = VALUE per line, or separate them with ;", p.describe())
		}
		if err := cfg.store(key, op, v, line); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func (c *XLConfig) store(key string, op tokKind, v Value, line int) error {
	prev := c.Get(key)
	if prev == nil {
		c.Settings = append(c.Settings, &Setting{Key: key, Value: v, Line: line})
		return nil
	}
	if op == tokAssign {
		c.Repeated = append(c.Repeated, &Setting{Key: key, Value: prev.Value, Line: prev.Line})
		prev.Value, prev.Line = v, line
		return nil
	}
	// += concatenates (libxlu_cfg.c, xlu__cfg_concat_vals).
	if prev.Value.IsList != v.IsList {
		return &Error{File: c.File, Line: line, Key: key, Msg: fmt.Sprintf("+= cannot add %s to %s: add a list to a list or a string to a string", kindOf(v), kindOf(prev.Value))}
	}
	if v.IsList {
		prev.Value.List = append(prev.Value.List, v.List...)
	} else {
		prev.Value.Atom += v.Atom
	}
	prev.Line = line
	return nil
}

func kindOf(v Value) string {
	if v.IsList {
		return "a list"
	}
	return "a string"
}

func (p *xlParser) value(key string, depth int) (Value, error) {
	switch p.tok.kind {
	case tokString, tokNumber:
		v := Value{Atom: p.tok.text, Quoted: p.tok.kind == tokString, Line: p.tok.line}
		return v, p.next()
	case tokOpen:
	default:
		return Value{}, p.errorf(key, "want a value (a quoted string, a number or a [list]), found %s", p.describe())
	}
	if depth >= maxXLDepth {
		return Value{}, p.errorf(key, "lists nested more than %d deep", maxXLDepth)
	}
	open := p.tok.line
	v := Value{IsList: true, Line: open}
	if err := p.next(); err != nil {
		return v, err
	}
	p.skipNewlines()
	for p.tok.kind != tokClose {
		if p.tok.kind == tokEOF {
			return v, p.errorf(key, "the list opened on line %d is not closed: add ]", open)
		}
		e, err := p.value(key, depth+1)
		if err != nil {
			return v, err
		}
		v.List = append(v.List, e)
		p.skipNewlines()
		if p.tok.kind == tokClose {
			break
		}
		if p.tok.kind != tokComma {
			if p.tok.kind == tokEOF {
				return v, p.errorf(key, "the list opened on line %d is not closed: add ]", open)
			}
			return v, p.errorf(key, "want , or ] in the list, found %s", p.describe())
		}
		if err := p.next(); err != nil {
			return v, err
		}
		p.skipNewlines()
	}
	return v, p.next()
}

func (p *xlParser) skipNewlines() {
	for p.tok.kind == tokNewline {
		if p.next() != nil {
			return
		}
	}
}

func (p *xlParser) describe() string {
	switch p.tok.kind {
	case tokEOF:
		return "the end of the file"
	case tokNewline:
		return "the end of the line"
	case tokIdent:
		return fmt.Sprintf("%q (an unquoted word: quote strings)", p.tok.text)
	case tokNumber:
		return fmt.Sprintf("number %s", p.tok.text)
	case tokString:
		return fmt.Sprintf("string %q", p.tok.text)
	case tokAssign:
		return "="
	case tokAppend:
		return "+="
	case tokSemi:
		return ";"
	case tokComma:
		return ","
	case tokOpen:
		return "["
	case tokClose:
		return "]"
	}
	return "?"
}

func (p *xlParser) errorf(key, format string, args ...any) error {
	return &Error{File: p.file, Line: p.tok.line, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' }
func isIdentChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_'
}
func isNumberChar(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == 'x' }

// next reads the next token into p.tok.
func (p *xlParser) next() error {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\r') {
		p.pos++
	}
	p.tok = token{line: p.line}
	if p.pos >= len(p.src) {
		p.tok.kind = tokEOF
		return nil
	}
	c := p.src[p.pos]
	start := p.pos
	switch {
	case c == '#':
		for p.pos < len(p.src) && p.src[p.pos] != '\n' {
			p.pos++
		}
		return p.next()
	case c == '\n':
		p.pos++
		p.line++
		p.tok.kind = tokNewline
	case isIdentStart(c):
		for p.pos < len(p.src) && isIdentChar(p.src[p.pos]) {
			p.pos++
		}
		p.tok.kind, p.tok.text = tokIdent, p.src[start:p.pos]
	case c >= '0' && c <= '9':
		for p.pos < len(p.src) && isNumberChar(p.src[p.pos]) {
			p.pos++
		}
		p.tok.kind, p.tok.text = tokNumber, p.src[start:p.pos]
	case c == '\'' || c == '"':
		s, err := p.quoted(c)
		if err != nil {
			return err
		}
		p.tok.kind, p.tok.text = tokString, s
	case c == '=':
		p.pos++
		p.tok.kind = tokAssign
	case c == '+' && strings.HasPrefix(p.src[p.pos:], "+="):
		p.pos += 2
		p.tok.kind = tokAppend
	case c == ';':
		p.pos++
		p.tok.kind = tokSemi
	case c == ',':
		p.pos++
		p.tok.kind = tokComma
	case c == '[':
		p.pos++
		p.tok.kind = tokOpen
	case c == ']':
		p.pos++
		p.tok.kind = tokClose
	case c >= 'A' && c <= 'Z':
		end := p.pos
		for end < len(p.src) && (isIdentChar(p.src[end]) || p.src[end] >= 'A' && p.src[end] <= 'Z') {
			end++
		}
		w := p.src[start:end]
		return p.errorf("", "%q: xl keys and words are lower case; write %q, and quote string values", w, strings.ToLower(w))
	default:
		end := p.pos
		for end < len(p.src) && p.src[end] != ' ' && p.src[end] != '\t' && p.src[end] != '\n' {
			end++
		}
		hint := "quote string values ('...' or \"...\")"
		// libxlu flags these as "likely python": xend's configs were Python.
		if strings.ContainsRune("+-.():", rune(c)) {
			hint = "xl.cfg is not Python: " + hint + ", and write lists as [ ... ]"
		}
		return p.errorf("", "unexpected %q: %s", p.src[start:end], hint)
	}
	return nil
}

// quoted reads a quoted string at p.pos and returns it dequoted, as
// libxlu's xlu__cfgl_dequote does.
func (p *xlParser) quoted(q byte) (string, error) {
	var b strings.Builder
	p.pos++
	for {
		if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
			return "", p.errorf("", "string not closed on its line: add the closing %c", q)
		}
		c := p.src[p.pos]
		p.pos++
		if c == q {
			return b.String(), nil
		}
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if p.pos >= len(p.src) || p.src[p.pos] == '\n' {
			return "", p.errorf("", "string not closed on its line: add the closing %c", q)
		}
		e := p.src[p.pos]
		p.pos++
		switch e {
		case '"', '\'', '\\':
			b.WriteByte(e)
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		default:
			if e == 'x' || e >= '0' && e <= '7' {
				// libxlu's numeric escapes misread their digits
				// (xlu__cfgl_dequote), so xl would not get what the
				// file says either.
				return "", p.errorf("", `\%c: numeric escapes in strings are not read reliably by xl; write the character itself`, e)
			}
			return "", p.errorf("", `\%c in a string: not an escape xl knows; write \\ for a backslash`, e)
		}
	}
}

// parseXLNumber reads a number as libxlu does (strtol with base 0):
// decimal, 0x hex or leading-0 octal, the whole string.
func parseXLNumber(s string) (int64, bool) {
	base, digits := 10, s
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	if digits == "" || strings.ContainsAny(digits, "_+-") {
		return 0, false
	}
	n, err := strconv.ParseInt(digits, base, 64)
	return n, err == nil
}
