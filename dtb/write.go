package dtb

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Bytes returns the tree as a version 17 blob, laid out as dtc lays it out:
// header, memory reservation block at offset 40 (8-byte aligned), structure
// block, strings block, no padding. Property names are stored once; a name
// that is the tail of one already stored ("phandle" in "linux,phandle")
// points into it, as dtc's string table does, so a dtc-made blob survives
// Parse then Bytes unchanged. The tree is checked with Validate first.
func (t *Tree) Bytes() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	w := writer{tail: map[string]uint32{}}
	w.node(t.Root)
	w.u32(tokenEnd)

	rsvOff := uint32(headerSize+rsvAlign-1) &^ (rsvAlign - 1)
	rsvSize := uint32(len(t.Reservations)+1) * rsvEntrySize
	structOff := rsvOff + rsvSize
	stringsOff := structOff + uint32(len(w.strct))
	total := uint64(stringsOff) + uint64(len(w.strs))
	if total > MaxTotalSize {
		return nil, &fdtError{fmt.Sprintf("writing FDT: blob of %#x bytes larger than the %#x cap", total, MaxTotalSize), ErrTooLarge}
	}
	b := make([]byte, total)
	header{
		Magic:           Magic,
		TotalSize:       uint32(total),
		OffDtStruct:     structOff,
		OffDtStrings:    stringsOff,
		OffMemRsvmap:    rsvOff,
		Version:         Version,
		LastCompVersion: LastCompVersion,
		BootCPUIDPhys:   t.BootCPU,
		SizeDtStrings:   uint32(len(w.strs)),
		SizeDtStruct:    uint32(len(w.strct)),
	}.encode(b)
	off := rsvOff
	for _, r := range t.Reservations {
		binary.BigEndian.PutUint64(b[off:], r.Address)
		binary.BigEndian.PutUint64(b[off+8:], r.Size)
		off += rsvEntrySize
	}
	// The terminating entry is already zero.
	copy(b[structOff:], w.strct)
	copy(b[stringsOff:], w.strs)
	return b, nil
}

// WriteTo writes the blob made by Bytes to w.
func (t *Tree) WriteTo(w io.Writer) (int64, error) {
	b, err := t.Bytes()
	if err != nil {
		return 0, err
	}
	n, err := w.Write(b)
	if err != nil {
		return int64(n), fmt.Errorf("writing FDT: %w", err)
	}
	return int64(n), nil
}

// writer accumulates the structure and strings blocks.
type writer struct {
	strct []byte
	strs  []byte
	// tail maps every suffix of every stored name to its offset in strs;
	// the first (lowest) offset wins, matching dtc's linear search.
	tail map[string]uint32
}

func (w *writer) u32(v uint32) { w.strct = binary.BigEndian.AppendUint32(w.strct, v) }

func (w *writer) pad() {
	for len(w.strct)%tokenAlign != 0 {
		w.strct = append(w.strct, 0)
	}
}

func (w *writer) node(n *Node) {
	w.u32(tokenBeginNode)
	w.strct = append(w.strct, n.Name...)
	w.strct = append(w.strct, 0)
	w.pad()
	for _, p := range n.props {
		w.u32(tokenProp)
		w.u32(uint32(len(p.Value)))
		w.u32(w.stringOff(p.Name))
		w.strct = append(w.strct, p.Value...)
		w.pad()
	}
	for _, c := range n.children {
		w.node(c)
	}
	w.u32(tokenEndNode)
}

func (w *writer) stringOff(name string) uint32 {
	if off, ok := w.tail[name]; ok {
		return off
	}
	off := uint32(len(w.strs))
	w.strs = append(w.strs, name...)
	w.strs = append(w.strs, 0)
	for i := range len(name) {
		if _, ok := w.tail[name[i:]]; !ok {
			w.tail[name[i:]] = off + uint32(i)
		}
	}
	return off
}
