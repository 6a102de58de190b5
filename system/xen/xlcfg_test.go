package xen

import (
	"errors"
	"strings"
	"testing"
)

// TestParseXL checks the xl.cfg syntax libxlu accepts: quoting, escapes,
// numbers, lists over several lines, separators, comments, += and
// repeated keys.
func TestParseXL(t *testing.T) {
	tests := []struct {
		name string
		src  string
		key  string
		want string // Value.String() of key
		line int
	}{
		{"double quotes", `name = "a b"`, "name", `"a b"`, 1},
		{"single quotes", `name = 'a b'`, "name", `"a b"`, 1},
		{"escapes", `extra = "a\"b\\c\td"`, "extra", `"a\"b\\c\td"`, 1},
		{"other quote inside", `extra = 'say "hi"'`, "extra", `"say \"hi\""`, 1},
		{"bare number", "memory = 512", "memory", "512", 1},
		{"hex number", "memory = 0x200", "memory", "0x200", 1},
		{"comment after value", "memory = 512 # MiB\n", "memory", "512", 1},
		{"comment lines first", "# guest\n\n# more\nvcpus = 2\n", "vcpus", "2", 4},
		{"semicolons", `name = "a"; vcpus = 2; memory = 64`, "vcpus", "2", 1},
		{"list", `disk = ['a', "b"]`, "disk", `["a", "b"]`, 1},
		{"list over lines, trailing comma", "disk = [\n  'a',\n  'b',\n]\n", "disk", `["a", "b"]`, 1},
		{"empty list", "vif = []", "vif", "[]", 1},
		{"nested list", `vnuma = [ ["pnode=0", "size=512"] ]`, "vnuma", `[["pnode=0", "size=512"]]`, 1},
		{"last assignment wins", "memory = 1\nmemory = 2\n", "memory", "2", 2},
		{"+= appends to a list", "disk = ['a']\ndisk += ['b']\n", "disk", `["a", "b"]`, 2},
		{"+= appends to a string", "extra = 'a'\nextra += ' b'\n", "extra", `"a b"`, 2},
		{"+= on a new key", "extra += 'a'\n", "extra", `"a"`, 1},
		{"key with dot and digits", "a.b_2 = 1", "a.b_2", "1", 1},
		{"CRLF line ends", "name = \"a\"\r\nvcpus = 2\r\n", "vcpus", "2", 2},
		{"no final newline", "vcpus = 2", "vcpus", "2", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseXL("g.cfg", []byte(tt.src))
			if err != nil {
				t.Fatalf("ParseXL() = %v, want nil", err)
			}
			s := cfg.Get(tt.key)
			if s == nil {
				t.Fatalf("Get(%q) = nil", tt.key)
			}
			if got := s.Value.String(); got != tt.want {
				t.Errorf("%s = %s, want %s", tt.key, got, tt.want)
			}
			if s.Line != tt.line {
				t.Errorf("%s: Line = %d, want %d", tt.key, s.Line, tt.line)
			}
		})
	}
}

func TestParseXLRepeated(t *testing.T) {
	cfg, err := ParseXL("g.cfg", []byte("memory = 1\nvcpus = 1\nmemory = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Repeated) != 1 || cfg.Repeated[0].Key != "memory" || cfg.Repeated[0].Line != 1 {
		t.Fatalf("Repeated = %+v, want memory from line 1", cfg.Repeated)
	}
	if len(cfg.Settings) != 2 || cfg.Settings[0].Key != "memory" {
		t.Errorf("Settings keep first-appearance order: got %d settings, first %q", len(cfg.Settings), cfg.Settings[0].Key)
	}
}

// TestParseXLErrors corrupts a good file one construct at a time; every
// error names the file and line and says what to write instead.
func TestParseXLErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unclosed double quote", "name = \"a\nvcpus = 1\n", []string{"g.cfg:1:", "not closed", `closing "`}},
		{"unclosed single quote", "vcpus = 1\nname = 'a\n", []string{"g.cfg:2:", "not closed", "closing '"}},
		{"unquoted string", "name = guest\n", []string{"g.cfg:1:", "name:", "unquoted", "quote strings"}},
		{"python-style value", "name = 'a'\ncpus = (1, 2)\n", []string{"g.cfg:2:", `"(1,"`, "not Python", "[ ... ]"}},
		{"upper-case key", "Name = 'a'\n", []string{"g.cfg:1:", `"Name"`, `"name"`}},
		{"missing =", "name 'a'\n", []string{"g.cfg:1:", "name:", "want = after the key"}},
		{"missing value", "name =\n", []string{"g.cfg:1:", "name:", "want a value"}},
		{"list not closed", "disk = [ 'a',\n 'b'\n", []string{"g.cfg:3:", "disk:", "opened on line 1", "add ]"}},
		{"list missing comma", "disk = [ 'a' 'b' ]\n", []string{"g.cfg:1:", "disk:", "want , or ]"}},
		{"two values", "name = 'a' 'b'\n", []string{"g.cfg:1:", "name:", "one KEY = VALUE per line"}},
		{"bad escape", `extra = "a\qb"` + "\n", []string{"g.cfg:1:", `\q`, `\\`}},
		{"numeric escape", `extra = "a\x41"` + "\n", []string{"g.cfg:1:", "numeric escapes", "character itself"}},
		{"+= list to string", "extra = 'a'\nextra += ['b']\n", []string{"g.cfg:2:", "extra:", "list to a list or a string to a string"}},
		{"value at line start", "'a'\n", []string{"g.cfg:1:", "want KEY = VALUE"}},
		{"nesting too deep", "x = " + strings.Repeat("[", 20) + strings.Repeat("]", 20), []string{"g.cfg:1:", "x:", "nested"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseXL("g.cfg", []byte(tt.src))
			if err == nil {
				t.Fatal("ParseXL() = nil, want an error")
			}
			if !errors.Is(err, ErrInput) {
				t.Errorf("ParseXL() = %v, want it to wrap ErrInput", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseXL() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestParseXLNumber(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512", 512, true}, {"0x200", 512, true}, {"01000", 512, true}, {"0", 0, true},
		{"5_12", 0, false}, {"0x", 0, false}, {"abc", 0, false}, {"512M", 0, false}, {"", 0, false}, {"-1", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseXLNumber(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseXLNumber(%q) = %d, %v, want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseXLNotUTF8(t *testing.T) {
	_, err := ParseXL("g.cfg", []byte("name = 'a'\nextra = '\xaf'\n"))
	if err == nil || !strings.Contains(err.Error(), "g.cfg:2:") || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("ParseXL() = %v, want g.cfg:2: ... UTF-8", err)
	}
}
