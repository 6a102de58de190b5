package dtb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// Read reads a whole blob from r, at most MaxTotalSize bytes, and parses it.
func Read(r io.Reader) (*Tree, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxTotalSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading FDT: %w", err)
	}
	if len(b) > MaxTotalSize {
		return nil, &fdtError{fmt.Sprintf("reading FDT: blob larger than %#x bytes", MaxTotalSize), ErrTooLarge}
	}
	return Parse(b)
}

// Parse parses a flattened device tree blob. Bytes after the header's
// totalsize are ignored (firmware often hands over a padded buffer). The
// returned tree shares no memory with b.
func Parse(b []byte) (*Tree, error) {
	h, err := checkHeader(b)
	if err != nil {
		return nil, err
	}
	b = b[:h.TotalSize]
	t := &Tree{BootCPU: h.BootCPUIDPhys}
	rsvEnd, err := t.readReservations(b, h)
	if err != nil {
		return nil, err
	}
	// The reservation block's length is only known once its terminating
	// entry is found, so its overlap with the other blocks is checked here.
	rsv := span{"memory reservation block", uint64(h.OffMemRsvmap), rsvEnd}
	for _, s := range []span{
		{"structure block", uint64(h.OffDtStruct), uint64(h.OffDtStruct) + uint64(h.SizeDtStruct)},
		{"strings block", uint64(h.OffDtStrings), uint64(h.OffDtStrings) + uint64(h.SizeDtStrings)},
	} {
		if rsv.overlaps(s) {
			return nil, &fdtError{fmt.Sprintf("reading FDT header: %s [%#x, %#x) overlaps %s [%#x, %#x)", rsv.name, rsv.start, rsv.end, s.name, s.start, s.end), ErrBadHeader}
		}
	}
	p := parser{
		strct:   b[h.OffDtStruct : h.OffDtStruct+h.SizeDtStruct],
		strs:    b[h.OffDtStrings : h.OffDtStrings+h.SizeDtStrings],
		structs: h.OffDtStruct,
	}
	if t.Root, err = p.parse(); err != nil {
		return nil, err
	}
	return t, nil
}

// span is a half-open byte range of the blob.
type span struct {
	name       string
	start, end uint64
}

func (s span) overlaps(o span) bool {
	return s.start < o.end && o.start < s.end && s.start < s.end && o.start < o.end
}

// checkHeader decodes the header and checks every field against the blob
// before any block is touched.
func checkHeader(b []byte) (header, error) {
	fail := func(kind error, format string, args ...any) (header, error) {
		return header{}, &fdtError{"reading FDT header: " + fmt.Sprintf(format, args...), kind}
	}
	if len(b) < headerSize {
		return fail(ErrTruncated, "blob of %#x bytes shorter than the %#x-byte header", len(b), headerSize)
	}
	h := decodeHeader(b)
	switch {
	case h.Magic != Magic:
		return fail(ErrBadMagic, "magic %#08x, want %#08x", h.Magic, uint32(Magic))
	case h.Version < Version:
		return fail(ErrVersion, "version %d, want %d or later (versions before 17 have no size_dt_struct)", h.Version, Version)
	case h.LastCompVersion > Version:
		return fail(ErrVersion, "last_comp_version %d: blob cannot be read as version %d", h.LastCompVersion, Version)
	case h.TotalSize > MaxTotalSize:
		return fail(ErrTooLarge, "totalsize %#x larger than the %#x cap", h.TotalSize, MaxTotalSize)
	case uint64(h.TotalSize) > uint64(len(b)):
		return fail(ErrTruncated, "totalsize %#x larger than blob (%#x)", h.TotalSize, len(b))
	case h.TotalSize < headerSize:
		return fail(ErrBadHeader, "totalsize %#x smaller than the header", h.TotalSize)
	case h.OffMemRsvmap%rsvAlign != 0:
		return fail(ErrBadHeader, "off_mem_rsvmap %#x not %d-byte aligned", h.OffMemRsvmap, rsvAlign)
	case h.OffDtStruct%tokenAlign != 0:
		return fail(ErrBadHeader, "off_dt_struct %#x not %d-byte aligned", h.OffDtStruct, tokenAlign)
	case h.SizeDtStruct%tokenAlign != 0:
		return fail(ErrBadHeader, "size_dt_struct %#x not a multiple of %d", h.SizeDtStruct, tokenAlign)
	}
	blocks := []struct {
		name       string
		off, size  uint32
		offF, rest string
	}{
		{"memory reservation block", h.OffMemRsvmap, rsvEntrySize, "off_mem_rsvmap", ""},
		{"structure block", h.OffDtStruct, h.SizeDtStruct, "off_dt_struct", "size_dt_struct"},
		{"strings block", h.OffDtStrings, h.SizeDtStrings, "off_dt_strings", "size_dt_strings"},
	}
	for _, blk := range blocks {
		if blk.off < headerSize {
			return fail(ErrBadHeader, "%s %#x inside the header", blk.offF, blk.off)
		}
		if end := uint64(blk.off) + uint64(blk.size); end > uint64(h.TotalSize) {
			if blk.rest == "" {
				return fail(ErrTruncated, "%s %#x leaves no room for the terminating entry before totalsize %#x", blk.offF, blk.off, h.TotalSize)
			}
			return fail(ErrTruncated, "%s %#x + %s %#x runs past totalsize %#x", blk.offF, blk.off, blk.rest, blk.size, h.TotalSize)
		}
	}
	st := span{"structure block", uint64(h.OffDtStruct), uint64(h.OffDtStruct) + uint64(h.SizeDtStruct)}
	ss := span{"strings block", uint64(h.OffDtStrings), uint64(h.OffDtStrings) + uint64(h.SizeDtStrings)}
	if st.overlaps(ss) {
		return fail(ErrBadHeader, "structure block [%#x, %#x) overlaps strings block [%#x, %#x)", st.start, st.end, ss.start, ss.end)
	}
	return h, nil
}

// readReservations reads the memory reservation block up to its
// terminating all-zero entry and returns the block's end offset.
func (t *Tree) readReservations(b []byte, h header) (uint64, error) {
	off := uint64(h.OffMemRsvmap)
	for i := 0; ; i++ {
		if off+rsvEntrySize > uint64(len(b)) {
			return 0, &fdtError{fmt.Sprintf("reading FDT memory reservation block: entry %d at %#x runs past totalsize %#x (no terminating entry)", i, off, len(b)), ErrTruncated}
		}
		addr := binary.BigEndian.Uint64(b[off:])
		size := binary.BigEndian.Uint64(b[off+8:])
		off += rsvEntrySize
		if addr == 0 && size == 0 {
			return off, nil
		}
		if i >= MaxReservations {
			return 0, &fdtError{fmt.Sprintf("reading FDT memory reservation block: more than %d entries", MaxReservations), ErrTooLarge}
		}
		t.Reservations = append(t.Reservations, Reservation{Address: addr, Size: size})
	}
}

// parser walks the structure block. Offsets in its errors are blob
// offsets, so they can be found with a hex dump.
type parser struct {
	strct   []byte // the structure block
	strs    []byte // the strings block
	structs uint32 // blob offset of the structure block
	pos     int    // read position in strct
	nodes   int
	props   int
}

func (p *parser) fail(kind error, format string, args ...any) error {
	return &fdtError{fmt.Sprintf("reading FDT structure block at %#x: ", uint64(p.structs)+uint64(p.pos)) + fmt.Sprintf(format, args...), kind}
}

func (p *parser) u32() (uint32, bool) {
	if len(p.strct)-p.pos < 4 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(p.strct[p.pos:])
	p.pos += 4
	return v, true
}

// align moves pos to the next token boundary (5.4.1: tokens are 32-bit
// aligned; names and values are padded with zeros to get there).
func (p *parser) align() bool {
	n := (p.pos + tokenAlign - 1) &^ (tokenAlign - 1)
	if n > len(p.strct) {
		return false
	}
	p.pos = n
	return true
}

// token returns the next token that is not FDT_NOP.
func (p *parser) token() (uint32, error) {
	for {
		at := p.pos
		tok, ok := p.u32()
		if !ok {
			p.pos = at
			return 0, p.fail(ErrBadStructure, "structure block ends without FDT_END")
		}
		if tok != tokenNop {
			p.pos = at
			return tok, nil
		}
	}
}

// parse reads the whole structure block: NOPs, the root node, NOPs,
// FDT_END. It is iterative, with an explicit stack capped at MaxDepth, so
// a hostile blob cannot grow the goroutine stack.
func (p *parser) parse() (*Node, error) {
	var root *Node
	// frame is one open node with the names seen in it so far, so that
	// duplicates are found in constant time even in a huge flat node.
	type frame struct {
		n            *Node
		props, nodes map[string]bool
	}
	var stack []frame
	for {
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		switch tok {
		case tokenBeginNode:
			if root != nil && len(stack) == 0 {
				return nil, p.fail(ErrBadStructure, "second root node (FDT_BEGIN_NODE after the root's FDT_END_NODE)")
			}
			if len(stack) >= MaxDepth {
				return nil, p.fail(ErrTooDeep, "node nested deeper than %d", MaxDepth)
			}
			if p.nodes++; p.nodes > MaxNodes {
				return nil, p.fail(ErrTooLarge, "more than %d nodes", MaxNodes)
			}
			p.pos += 4
			name, err := p.nodeName(len(stack) == 0)
			if err != nil {
				return nil, err
			}
			n := &Node{Name: name}
			if len(stack) == 0 {
				root = n
			} else {
				f := stack[len(stack)-1]
				if f.nodes[name] {
					return nil, p.fail(ErrBadStructure, "duplicate node %s/%s", trimRoot(f.n.Path()), name)
				}
				f.nodes[name] = true
				f.n.adopt(n)
			}
			stack = append(stack, frame{n, map[string]bool{}, map[string]bool{}})
		case tokenEndNode:
			if len(stack) == 0 {
				return nil, p.fail(ErrBadStructure, "FDT_END_NODE outside any node")
			}
			p.pos += 4
			stack = stack[:len(stack)-1]
		case tokenProp:
			if len(stack) == 0 {
				return nil, p.fail(ErrBadStructure, "FDT_PROP outside any node")
			}
			f := stack[len(stack)-1]
			n := f.n
			if len(n.children) > 0 {
				return nil, p.fail(ErrBadStructure, "property in node %s after its subnodes (5.4.2 wants properties first)", n.Path())
			}
			if p.props++; p.props > MaxProperties {
				return nil, p.fail(ErrTooLarge, "more than %d properties", MaxProperties)
			}
			p.pos += 4
			if err := p.prop(n, f.props); err != nil {
				return nil, err
			}
		case tokenEnd:
			if root == nil {
				return nil, p.fail(ErrBadStructure, "FDT_END before the root node")
			}
			if len(stack) != 0 {
				return nil, p.fail(ErrBadStructure, "FDT_END inside node %s (missing FDT_END_NODE)", stack[len(stack)-1].n.Path())
			}
			return root, nil
		default:
			return nil, p.fail(ErrBadStructure, "unknown token %#08x", tok)
		}
	}
}

func trimRoot(path string) string {
	if path == "/" {
		return ""
	}
	return path
}

// nodeName reads the NUL-terminated name after FDT_BEGIN_NODE and the
// padding after it.
func (p *parser) nodeName(root bool) (string, error) {
	rest := p.strct[p.pos:]
	if len(rest) > MaxNameLen+1 {
		rest = rest[:MaxNameLen+1]
	}
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		if len(rest) > MaxNameLen {
			return "", p.fail(ErrBadName, "node name longer than %d bytes", MaxNameLen)
		}
		return "", p.fail(ErrBadStructure, "node name not NUL-terminated before the end of the structure block")
	}
	name := string(rest[:i])
	if root && name != "" {
		return "", p.fail(ErrBadName, "root node named %q, want empty", name)
	}
	if !root {
		if why := checkName(name); why != "" {
			return "", p.fail(ErrBadName, "node %s", why)
		}
	}
	p.pos += i + 1
	if !p.align() {
		return "", p.fail(ErrBadStructure, "node name %q padding runs past the structure block", name)
	}
	return name, nil
}

// prop reads the struct fdt_property {len, nameoff} after FDT_PROP (5.4.1),
// the value and its padding, and adds the property to n.
func (p *parser) prop(n *Node, seen map[string]bool) error {
	length, ok1 := p.u32()
	nameoff, ok2 := p.u32()
	if !ok1 || !ok2 {
		return p.fail(ErrTruncated, "property header runs past the structure block")
	}
	if length > MaxPropertyLen {
		return p.fail(ErrTooLarge, "property of %#x bytes in node %s larger than the %#x cap", length, n.Path(), MaxPropertyLen)
	}
	if uint64(length) > uint64(len(p.strct)-p.pos) {
		return p.fail(ErrTruncated, "property length %#x in node %s runs past the structure block (%#x bytes left)", length, n.Path(), len(p.strct)-p.pos)
	}
	name, err := p.propName(nameoff)
	if err != nil {
		return fmt.Errorf("%w (in node %s)", err, n.Path())
	}
	if seen[name] {
		return p.fail(ErrBadStructure, "duplicate property %q in node %s", name, n.Path())
	}
	seen[name] = true
	val := append([]byte(nil), p.strct[p.pos:p.pos+int(length)]...)
	p.pos += int(length)
	if !p.align() {
		return p.fail(ErrBadStructure, "property %q padding runs past the structure block", name)
	}
	n.props = append(n.props, &Property{Name: name, Value: val})
	return nil
}

// propName returns the NUL-terminated string at nameoff in the strings
// block (5.5).
func (p *parser) propName(nameoff uint32) (string, error) {
	if uint64(nameoff) >= uint64(len(p.strs)) {
		return "", p.fail(ErrBadStrings, "property name offset %#x past the strings block (size %#x)", nameoff, len(p.strs))
	}
	rest := p.strs[nameoff:]
	if len(rest) > MaxNameLen+1 {
		rest = rest[:MaxNameLen+1]
	}
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		if len(rest) > MaxNameLen {
			return "", p.fail(ErrBadName, "property name at strings offset %#x longer than %d bytes", nameoff, MaxNameLen)
		}
		return "", p.fail(ErrBadStrings, "property name at strings offset %#x not NUL-terminated inside the strings block", nameoff)
	}
	name := string(rest[:i])
	if why := checkName(name); why != "" {
		return "", p.fail(ErrBadName, "property %s", why)
	}
	return name, nil
}
