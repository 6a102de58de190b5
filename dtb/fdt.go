// Package dtb reads, writes, builds and queries flattened device trees
// (FDT, "DTB"), as laid out in chapter 5 of the Devicetree Specification
// v0.4 (https://www.devicetree.org/specifications/).
//
// Tandem uses it three ways: to generate a fresh device tree for every ARM
// guest, to read the boards' real DTBs when porting a board, and to copy
// host nodes into guests for passthrough.
//
// The package is written from the specification rather than wrapping
// github.com/u-root/u-root/pkg/dt. The blobs it reads come from outside
// (vendor DTBs, firmware), so every offset and length is checked against
// the caps below and the parser returns an error for anything malformed
// instead of panicking; u-root's reader trusts the header more than that,
// has no phandle allocation or string-list builder, and its
// (*Property).AsStringList (v0.16.0) loops on len(p.Value) instead of the
// unconsumed remainder, so it slices past the end and panics on every
// non-empty, well-formed string list. See TestStringsTerminatedList.
//
// The model is a tree of *Node values, each with an ordered list of
// properties and an ordered list of children; order is kept exactly as
// read so that Parse followed by Bytes reproduces a dtc-made blob byte for
// byte. Output is deterministic: the same tree always gives the same bytes.
package dtb

import (
	"encoding/binary"
	"errors"
)

// Constants of the flattened format (Devicetree Specification v0.4, 5.1-5.4).
const (
	// Magic is the first word of every blob (5.2, "magic").
	Magic = 0xd00dfeed
	// Version is the format version this package writes (5.2, "version").
	Version = 17
	// LastCompVersion is the oldest version a v17 blob is backwards
	// compatible with (5.2, "last_comp_version").
	LastCompVersion = 16

	// headerSize is the size of struct fdt_header for version 17: ten
	// big-endian u32 fields (5.2).
	headerSize = 40
	// rsvEntrySize is the size of one struct fdt_reserve_entry: address and
	// size, both u64 (5.3.2).
	rsvEntrySize = 16
	// rsvAlign is the alignment of the memory reservation block (5.3.1).
	rsvAlign = 8
	// tokenAlign is the alignment of every structure block token (5.4.1).
	tokenAlign = 4

	// Structure block tokens (5.4.1).
	tokenBeginNode = 0x00000001
	tokenEndNode   = 0x00000002
	tokenProp      = 0x00000003
	tokenNop       = 0x00000004
	tokenEnd       = 0x00000009
)

// Caps on what Parse accepts and Bytes produces. They are far above any real
// board (the largest Debian armhf/arm64 DTBs are about 200 KiB with a few
// thousand nodes) and low enough that a hostile blob cannot make the parser
// use more than a small multiple of MaxTotalSize in memory or recurse
// deeply.
const (
	// MaxTotalSize caps a blob's totalsize. Linux itself refuses DTBs over
	// 2 MiB on arm64 (MAX_FDT_SIZE); 16 MiB leaves room for odd vendors.
	MaxTotalSize = 16 << 20
	// MaxDepth caps node nesting, root at depth 1. Linux's unflattener
	// uses the same limit (FDT_MAX_DEPTH in drivers/of/fdt.c).
	MaxDepth = 64
	// MaxPropertyLen caps one property value.
	MaxPropertyLen = 4 << 20
	// MaxNodes caps the number of nodes in one tree.
	MaxNodes = 1 << 16
	// MaxProperties caps the number of properties in one tree.
	MaxProperties = 1 << 18
	// MaxNameLen caps node and property names. The specification allows 31
	// characters for a property name and 31 plus a unit address for a node
	// name (2.2.1, 2.2.4); real trees exceed the former, so the cap is
	// only there to bound the work per name.
	MaxNameLen = 256
	// MaxReservations caps the entries in the memory reservation block.
	MaxReservations = 1024
)

// Errors that callers branch on. Every error this package returns wraps at
// most one of them, with text naming the step and the field at fault.
var (
	// ErrBadMagic: the blob does not start with Magic.
	ErrBadMagic = errors.New("bad FDT magic")
	// ErrTruncated: a header field, block or token runs past the data.
	ErrTruncated = errors.New("FDT truncated")
	// ErrTooLarge: the blob, a property or a count exceeds a cap above.
	ErrTooLarge = errors.New("FDT too large")
	// ErrTooDeep: nodes nest deeper than MaxDepth.
	ErrTooDeep = errors.New("FDT nodes nested too deeply")
	// ErrVersion: the blob's version cannot be read as version 17.
	ErrVersion = errors.New("unsupported FDT version")
	// ErrBadHeader: header offsets or sizes are misaligned or overlap.
	ErrBadHeader = errors.New("bad FDT header")
	// ErrBadStructure: the structure block is malformed (unknown token,
	// unterminated name, missing FDT_END, duplicate names, ...).
	ErrBadStructure = errors.New("bad FDT structure block")
	// ErrBadStrings: a property name offset or string is outside the
	// strings block.
	ErrBadStrings = errors.New("bad FDT strings block")
	// ErrNotFound: a path, alias, phandle or property does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBadValue: a property's value does not have the requested form
	// (wrong length for a u32, no terminating NUL for a string, ...).
	ErrBadValue = errors.New("bad property value")
	// ErrBadName: a node or property name is not valid (2.2.1, 2.2.4).
	ErrBadName = errors.New("bad name")
	// ErrPhandleCollision: a copied subtree brings a phandle that the
	// destination tree already uses.
	ErrPhandleCollision = errors.New("phandle collision")
)

// fdtError carries a message naming the step and the field, and unwraps to
// one of the sentinels above.
type fdtError struct {
	msg  string
	kind error
}

func (e *fdtError) Error() string { return e.msg }
func (e *fdtError) Unwrap() error { return e.kind }

// header mirrors struct fdt_header (Devicetree Specification v0.4, 5.2;
// libfdt/fdt.h). All fields are big-endian u32s.
type header struct {
	Magic           uint32
	TotalSize       uint32
	OffDtStruct     uint32
	OffDtStrings    uint32
	OffMemRsvmap    uint32
	Version         uint32
	LastCompVersion uint32
	BootCPUIDPhys   uint32
	SizeDtStrings   uint32
	SizeDtStruct    uint32
}

// Byte offsets of the header fields, pinned by a test.
const (
	offMagic           = 0
	offTotalSize       = 4
	offOffDtStruct     = 8
	offOffDtStrings    = 12
	offOffMemRsvmap    = 16
	offVersion         = 20
	offLastCompVersion = 24
	offBootCPUIDPhys   = 28
	offSizeDtStrings   = 32
	offSizeDtStruct    = 36
)

func decodeHeader(b []byte) header {
	u := func(off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
	return header{
		Magic:           u(offMagic),
		TotalSize:       u(offTotalSize),
		OffDtStruct:     u(offOffDtStruct),
		OffDtStrings:    u(offOffDtStrings),
		OffMemRsvmap:    u(offOffMemRsvmap),
		Version:         u(offVersion),
		LastCompVersion: u(offLastCompVersion),
		BootCPUIDPhys:   u(offBootCPUIDPhys),
		SizeDtStrings:   u(offSizeDtStrings),
		SizeDtStruct:    u(offSizeDtStruct),
	}
}

func (h header) encode(b []byte) {
	p := func(off int, v uint32) { binary.BigEndian.PutUint32(b[off:], v) }
	p(offMagic, h.Magic)
	p(offTotalSize, h.TotalSize)
	p(offOffDtStruct, h.OffDtStruct)
	p(offOffDtStrings, h.OffDtStrings)
	p(offOffMemRsvmap, h.OffMemRsvmap)
	p(offVersion, h.Version)
	p(offLastCompVersion, h.LastCompVersion)
	p(offBootCPUIDPhys, h.BootCPUIDPhys)
	p(offSizeDtStrings, h.SizeDtStrings)
	p(offSizeDtStruct, h.SizeDtStruct)
}
