package dtb

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goodBlob returns a fresh copy of the known-good dtc-made blob.
func goodBlob(t testing.TB) []byte {
	b, err := os.ReadFile("testdata/small.dtb")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCorruption breaks a known-good blob one field at a time. Every case
// must give its error, wrapped around the right sentinel, and no panic.
func TestCorruption(t *testing.T) {
	good := goodBlob(t)
	h := decodeHeader(good)
	// set returns a copy of good with the header field at off set to v.
	set := func(off int, v uint32) []byte {
		b := append([]byte(nil), good...)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}
	// minimal is root { a = <16 zero bytes>; } preceded by a NOP, so that
	// the value starts 8-byte aligned at structure offset 24.
	minimal := func() *structBuilder {
		return new(structBuilder).u32(tokenNop).begin("").prop("a", make([]byte, 16)).end().u32(tokenEnd)
	}
	deep := new(structBuilder).begin("")
	for range MaxDepth {
		deep.begin("n")
	}
	wide := new(structBuilder).begin("")
	for i := range MaxNodes {
		wide.begin("n@" + strings.ToLower(strings.TrimLeft(itoaHex(uint32(i)), "0")) + "0")
		wide.end()
	}
	wide.end().u32(tokenEnd)
	rsvOverlap := minimal().blob()
	binary.BigEndian.PutUint32(rsvOverlap[offOffMemRsvmap:], headerSize+rsvEntrySize+24)

	for _, tt := range []struct {
		name string
		blob []byte
		want error
		msg  string // a substring of the error text
	}{
		{"empty", nil, ErrTruncated, "shorter than the 0x28-byte header"},
		{"short header", good[:20], ErrTruncated, "shorter than"},
		{"magic", set(offMagic, 0xfeedd00d), ErrBadMagic, "magic 0xfeedd00d"},
		{"version 16", set(offVersion, 16), ErrVersion, "version 16"},
		{"last_comp_version 18", set(offLastCompVersion, 18), ErrVersion, "last_comp_version 18"},
		{"totalsize past blob", set(offTotalSize, h.TotalSize+4), ErrTruncated, "reading FDT header: totalsize 0x6ac larger than blob (0x6a8)"},
		{"totalsize over cap", set(offTotalSize, MaxTotalSize+1), ErrTooLarge, "cap"},
		{"totalsize inside header", set(offTotalSize, 8), ErrBadHeader, "smaller than the header"},
		{"blob cut short", good[:len(good)-1], ErrTruncated, "larger than blob"},
		{"off_dt_struct misaligned", set(offOffDtStruct, h.OffDtStruct+2), ErrBadHeader, "off_dt_struct 0x5a not 4-byte aligned"},
		{"off_dt_struct in header", set(offOffDtStruct, 4), ErrBadHeader, "off_dt_struct 0x4 inside the header"},
		{"off_dt_struct past end", set(offOffDtStruct, h.TotalSize), ErrTruncated, "off_dt_struct"},
		{"off_dt_struct huge", set(offOffDtStruct, 0xfffffffc), ErrTruncated, "runs past totalsize"},
		{"off_dt_strings past end", set(offOffDtStrings, h.TotalSize), ErrTruncated, "off_dt_strings"},
		{"off_dt_strings overlaps struct", set(offOffDtStrings, h.OffDtStruct), ErrBadHeader, "overlaps strings block"},
		{"off_mem_rsvmap misaligned", set(offOffMemRsvmap, h.OffMemRsvmap+4), ErrBadHeader, "off_mem_rsvmap 0x2c not 8-byte aligned"},
		{"off_mem_rsvmap in header", set(offOffMemRsvmap, 0), ErrBadHeader, "inside the header"},
		{"off_mem_rsvmap no room", set(offOffMemRsvmap, h.TotalSize-8), ErrTruncated, "no room for the terminating entry"},
		{"rsvmap overlaps struct", rsvOverlap, ErrBadHeader, "memory reservation block [0x50, 0x60) overlaps structure block"},
		{"size_dt_struct past end", set(offSizeDtStruct, h.TotalSize), ErrTruncated, "size_dt_struct"},
		{"size_dt_struct unaligned", set(offSizeDtStruct, h.SizeDtStruct-1), ErrBadHeader, "not a multiple of 4"},
		{"size_dt_struct cuts FDT_END", set(offSizeDtStruct, h.SizeDtStruct-4), ErrBadStructure, "without FDT_END"},
		{"size_dt_strings past end", set(offSizeDtStrings, h.SizeDtStrings+1), ErrTruncated, "size_dt_strings"},
		{"size_dt_strings zero", set(offSizeDtStrings, 0), ErrBadStrings, "past the strings block (size 0x0)"},
		{"unterminated node name", new(structBuilder).u32(tokenBeginNode).raw([]byte("abcd")).blob(), ErrBadStructure, "not NUL-terminated"},
		{"node name too long", new(structBuilder).begin("").begin(strings.Repeat("a", MaxNameLen+1)).blob(), ErrBadName, "longer than 256"},
		{"root named", new(structBuilder).begin("x").end().u32(tokenEnd).blob(), ErrBadName, `root node named "x"`},
		{"bad node name char", new(structBuilder).begin("").begin("a b").end().end().u32(tokenEnd).blob(), ErrBadName, `character ' '`},
		{"empty node name", new(structBuilder).begin("").begin("").end().end().u32(tokenEnd).blob(), ErrBadName, "empty name"},
		{"property past block", new(structBuilder).begin("").u32(tokenProp, 64, 0).blob(), ErrTruncated, "property length 0x40"},
		{"property header cut", new(structBuilder).begin("").u32(tokenProp, 4).blob(), ErrTruncated, "property header"},
		{"property over cap", new(structBuilder).begin("").u32(tokenProp, MaxPropertyLen+1, 0).blob(), ErrTooLarge, "cap"},
		{"string offset past block", func() []byte {
			s := new(structBuilder).begin("").prop("a", nil).end().u32(tokenEnd)
			binary.BigEndian.PutUint32(s.strct[16:], 99)
			return s.blob()
		}(), ErrBadStrings, "offset 0x63 past the strings block (size 0x2)"},
		{"string unterminated", func() []byte {
			s := new(structBuilder).begin("").prop("a", nil).end().u32(tokenEnd)
			s.strs = []byte("ab")
			return s.blob()
		}(), ErrBadStrings, "not NUL-terminated"},
		{"bad property name char", new(structBuilder).begin("").prop("a=b", nil).end().u32(tokenEnd).blob(), ErrBadName, "character '='"},
		{"missing FDT_END", new(structBuilder).begin("").end().blob(), ErrBadStructure, "without FDT_END"},
		{"FDT_END inside node", new(structBuilder).begin("").begin("a").end().u32(tokenEnd).blob(), ErrBadStructure, "FDT_END inside node /"},
		{"FDT_END before root", new(structBuilder).u32(tokenEnd).blob(), ErrBadStructure, "before the root"},
		{"stray FDT_END_NODE", new(structBuilder).begin("").end().end().blob(), ErrBadStructure, "outside any node"},
		{"property outside node", new(structBuilder).prop("a", nil).blob(), ErrBadStructure, "FDT_PROP outside"},
		{"second root", new(structBuilder).begin("").end().begin("").end().u32(tokenEnd).blob(), ErrBadStructure, "second root"},
		{"unknown token", new(structBuilder).begin("").u32(7).blob(), ErrBadStructure, "unknown token 0x00000007"},
		{"property after subnode", new(structBuilder).begin("").begin("a").end().prop("b", nil).end().u32(tokenEnd).blob(), ErrBadStructure, "after its subnodes"},
		{"duplicate node", new(structBuilder).begin("").begin("a").end().begin("a").end().end().u32(tokenEnd).blob(), ErrBadStructure, "duplicate node /a"},
		{"duplicate property", new(structBuilder).begin("").prop("a", nil).prop("a", nil).end().u32(tokenEnd).blob(), ErrBadStructure, `duplicate property "a"`},
		{"too deep", deep.blob(), ErrTooDeep, "deeper than 64"},
		{"too many nodes", wide.blob(), ErrTooLarge, "more than 65536 nodes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Parse(tt.blob)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse() = %v, %v, want error %v", tr, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Parse() error %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

// TestCorruptionBaseline: the corruption table's inputs are good before
// they are broken, so each case tests the one field it changes.
func TestCorruptionBaseline(t *testing.T) {
	if _, err := Parse(goodBlob(t)); err != nil {
		t.Fatalf("Parse(small.dtb) = %v", err)
	}
	tr := mustParse(t, new(structBuilder).u32(tokenNop).begin("").prop("a", make([]byte, 16)).end().u32(tokenEnd).blob())
	if got := len(tr.Root.Prop("a").Value); got != 16 {
		t.Errorf("minimal blob property a has %d bytes, want 16", got)
	}
	deep := new(structBuilder).begin("")
	for range MaxDepth - 1 {
		deep.begin("n")
	}
	for range MaxDepth {
		deep.end()
	}
	if _, err := Parse(deep.u32(tokenEnd).blob()); err != nil {
		t.Errorf("Parse(%d nested nodes) = %v, want success", MaxDepth, err)
	}
}

// TestReadCap: Read stops at MaxTotalSize without reading the rest.
func TestReadCap(t *testing.T) {
	_, err := Read(zeroReader{})
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read(endless) = %v, want %v", err, ErrTooLarge)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func itoaHex(v uint32) string {
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b[:])
}

// FuzzParse: no input panics, and whatever parses must write, and write
// again identically after a second parse.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.dtb")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(new(structBuilder).begin("").prop("a", []byte("x\x00")).begin("b@0").end().end().u32(tokenEnd).blob())
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Parse(b)
		if err != nil {
			return
		}
		out, err := tr.Bytes()
		if err != nil {
			t.Fatalf("Bytes() of a parsed tree = %v", err)
		}
		tr2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Bytes()) = %v", err)
		}
		out2, err := tr2.Bytes()
		if err != nil || string(out2) != string(out) {
			t.Fatalf("Bytes(Parse(Bytes())) = %v, differs from Bytes()", err)
		}
		var sb strings.Builder
		if err := tr.WriteDTS(&sb); err != nil {
			t.Fatalf("WriteDTS() of a parsed tree = %v", err)
		}
		// Queries must not panic on whatever the blob holds. Interrupts
		// looks its parent up by phandle, a walk of the tree, so only the
		// first nodes are asked, to keep big inputs fast.
		asked := 0
		_ = tr.Root.Walk(func(n *Node) error {
			_, _ = n.Reg()
			_, _, _ = tr.Interrupts(n)
			_, _ = tr.InterruptSpecs(n)
			_, _ = n.Strings("compatible")
			if asked++; asked == 200 {
				return errStop
			}
			return nil
		})
		_, _, _ = tr.StdoutPath()
		_ = tr.Phandle(tr.Root)
	})
}
