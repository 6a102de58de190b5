package dtb

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// dtcPath returns dtc's path or skips the test.
func dtcPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("dtc")
	if err != nil {
		t.Skipf("dtc not installed (apt-get install -y device-tree-compiler): %v", err)
	}
	return p
}

// runDTC runs dtc on in and returns its stdout and stderr. Warnings go to
// stderr; a failure fails the test.
func runDTC(t *testing.T, in []byte, args ...string) (out []byte, warnings string) {
	t.Helper()
	cmd := exec.Command(dtcPath(t), append(args, "-")...)
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("dtc %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes(), stderr.String()
}

// testdataDTBs returns the committed DTBs in testdata.
func testdataDTBs(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/*.dtb")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*.dtb: %v", err)
	}
	m := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(f)] = b
	}
	return m
}

// cachedDTBs returns the paths of the kernel DTBs that "make testdata"
// unpacks under build/cache at the repository root.
func cachedDTBs(t *testing.T) []string {
	t.Helper()
	root := filepath.Join("..", "build", "cache")
	var found []string
	n := 0
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".dtb") {
			if n++; testenv.Sampled(n - 1) {
				found = append(found, path)
			}
		}
		return nil
	})
	return found
}

// mustParse parses b or fails the test.
func mustParse(t *testing.T, b []byte) *Tree {
	t.Helper()
	tr, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse() = %v", err)
	}
	return tr
}

// mustBytes encodes tr or fails the test.
func mustBytes(t *testing.T, tr *Tree) []byte {
	t.Helper()
	b, err := tr.Bytes()
	if err != nil {
		t.Fatalf("Bytes() = %v", err)
	}
	return b
}

// dts returns tr as DTS or fails the test.
func dts(t *testing.T, tr *Tree) string {
	t.Helper()
	var buf bytes.Buffer
	if err := tr.WriteDTS(&buf); err != nil {
		t.Fatalf("WriteDTS() = %v", err)
	}
	return buf.String()
}

// structBuilder assembles raw structure and strings blocks, so corruption
// cases can say exactly which token is wrong.
type structBuilder struct {
	strct, strs []byte
}

func (s *structBuilder) u32(vs ...uint32) *structBuilder {
	for _, v := range vs {
		s.strct = binary.BigEndian.AppendUint32(s.strct, v)
	}
	return s
}

func (s *structBuilder) raw(b []byte) *structBuilder {
	s.strct = append(s.strct, b...)
	return s
}

func (s *structBuilder) pad() *structBuilder {
	for len(s.strct)%4 != 0 {
		s.strct = append(s.strct, 0)
	}
	return s
}

func (s *structBuilder) begin(name string) *structBuilder {
	return s.u32(tokenBeginNode).raw(append([]byte(name), 0)).pad()
}

func (s *structBuilder) end() *structBuilder { return s.u32(tokenEndNode) }

// prop adds a property whose name is appended to the strings block.
func (s *structBuilder) prop(name string, value []byte) *structBuilder {
	off := uint32(len(s.strs))
	s.strs = append(s.strs, append([]byte(name), 0)...)
	return s.u32(tokenProp, uint32(len(value)), off).raw(value).pad()
}

// blob lays the blocks out as dtc does, with an empty reservation block.
func (s *structBuilder) blob() []byte {
	rsv := uint32(headerSize)
	st := rsv + rsvEntrySize
	ss := st + uint32(len(s.strct))
	total := ss + uint32(len(s.strs))
	b := make([]byte, total)
	header{Magic: Magic, TotalSize: total, OffDtStruct: st, OffDtStrings: ss, OffMemRsvmap: rsv,
		Version: Version, LastCompVersion: LastCompVersion,
		SizeDtStrings: uint32(len(s.strs)), SizeDtStruct: uint32(len(s.strct))}.encode(b)
	copy(b[st:], s.strct)
	copy(b[ss:], s.strs)
	return b
}
