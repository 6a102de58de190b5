package dtb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
)

// Encoding of property values (Devicetree Specification v0.4, 2.2.4):
// big-endian u32 cells, u64 as two cells, NUL-terminated strings, string
// lists as strings back to back.

// Set sets the named property to a copy of value, keeping the property's
// place if it exists and appending it otherwise. It returns n so that
// calls chain.
func (n *Node) Set(name string, value []byte) *Node {
	v := append([]byte{}, value...)
	if p := n.Prop(name); p != nil {
		p.Value = v
		return n
	}
	n.props = append(n.props, &Property{Name: name, Value: v})
	return n
}

// SetEmpty sets a property with no value (a boolean such as
// "interrupt-controller" or "dma-coherent").
func (n *Node) SetEmpty(name string) *Node { return n.Set(name, nil) }

// SetU32 sets a one-cell property.
func (n *Node) SetU32(name string, v uint32) *Node {
	return n.Set(name, binary.BigEndian.AppendUint32(nil, v))
}

// SetU64 sets a two-cell property, most significant cell first.
func (n *Node) SetU64(name string, v uint64) *Node {
	return n.Set(name, binary.BigEndian.AppendUint64(nil, v))
}

// SetU32s sets a property of one cell per value (a <prop-encoded-array>
// such as interrupts = <0 1 4>).
func (n *Node) SetU32s(name string, vs ...uint32) *Node {
	b := make([]byte, 0, 4*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return n.Set(name, b)
}

// SetString sets a NUL-terminated string property.
func (n *Node) SetString(name, s string) *Node {
	return n.Set(name, append([]byte(s), 0))
}

// SetStrings sets a string list ("compatible = "a", "b"").
func (n *Node) SetStrings(name string, ss ...string) *Node {
	var b []byte
	for _, s := range ss {
		b = append(b, s...)
		b = append(b, 0)
	}
	return n.Set(name, b)
}

// SetBytes sets a byte-string property (printed as [00 01] in DTS).
func (n *Node) SetBytes(name string, b []byte) *Node { return n.Set(name, b) }

// U32 decodes a one-cell value.
func (p *Property) U32() (uint32, error) {
	if len(p.Value) != 4 {
		return 0, p.bad("%d bytes, want 4 for a u32", len(p.Value))
	}
	return binary.BigEndian.Uint32(p.Value), nil
}

// U64 decodes a two-cell value.
func (p *Property) U64() (uint64, error) {
	if len(p.Value) != 8 {
		return 0, p.bad("%d bytes, want 8 for a u64", len(p.Value))
	}
	return binary.BigEndian.Uint64(p.Value), nil
}

// U32s decodes a list of cells.
func (p *Property) U32s() ([]uint32, error) {
	if len(p.Value)%4 != 0 {
		return nil, p.bad("%d bytes, not a multiple of 4 for a cell array", len(p.Value))
	}
	vs := make([]uint32, len(p.Value)/4)
	for i := range vs {
		vs[i] = binary.BigEndian.Uint32(p.Value[4*i:])
	}
	return vs, nil
}

// String decodes a single NUL-terminated string.
func (p *Property) String() (string, error) {
	v := p.Value
	if len(v) == 0 || v[len(v)-1] != 0 {
		return "", p.bad("not NUL-terminated")
	}
	if i := bytes.IndexByte(v, 0); i != len(v)-1 {
		return "", p.bad("NUL at %d inside a single string (a string list?)", i)
	}
	return string(v[:len(v)-1]), nil
}

// Strings decodes a string list. Every string, the last included, must end
// in NUL; empty strings in the list are kept.
func (p *Property) Strings() ([]string, error) {
	v := p.Value
	if len(v) == 0 {
		return nil, nil
	}
	if v[len(v)-1] != 0 {
		return nil, p.bad("string list not NUL-terminated")
	}
	// Split on what is left, not on the whole value: cutting the value's
	// last NUL leaves nothing to split.
	return strings.Split(string(v[:len(v)-1]), "\x00"), nil
}

func (p *Property) bad(format string, args ...any) error {
	return &fdtError{fmt.Sprintf("property %q: %s", p.Name, fmt.Sprintf(format, args...)), ErrBadValue}
}

// prop returns the named property or an ErrNotFound error naming the node.
func (n *Node) prop(name string) (*Property, error) {
	if p := n.Prop(name); p != nil {
		return p, nil
	}
	return nil, &fdtError{fmt.Sprintf("node %s: no property %q", n.Path(), name), ErrNotFound}
}

func (n *Node) wrap(err error) error { return fmt.Errorf("node %s: %w", n.Path(), err) }

// U32 returns the named property as a u32.
func (n *Node) U32(name string) (uint32, error) {
	p, err := n.prop(name)
	if err != nil {
		return 0, err
	}
	v, err := p.U32()
	if err != nil {
		return 0, n.wrap(err)
	}
	return v, nil
}

// U64 returns the named property as a u64.
func (n *Node) U64(name string) (uint64, error) {
	p, err := n.prop(name)
	if err != nil {
		return 0, err
	}
	v, err := p.U64()
	if err != nil {
		return 0, n.wrap(err)
	}
	return v, nil
}

// U32s returns the named property as a list of cells.
func (n *Node) U32s(name string) ([]uint32, error) {
	p, err := n.prop(name)
	if err != nil {
		return nil, err
	}
	v, err := p.U32s()
	if err != nil {
		return nil, n.wrap(err)
	}
	return v, nil
}

// String returns the named property as a string.
func (n *Node) String(name string) (string, error) {
	p, err := n.prop(name)
	if err != nil {
		return "", err
	}
	v, err := p.String()
	if err != nil {
		return "", n.wrap(err)
	}
	return v, nil
}

// Strings returns the named property as a string list.
func (n *Node) Strings(name string) ([]string, error) {
	p, err := n.prop(name)
	if err != nil {
		return nil, err
	}
	v, err := p.Strings()
	if err != nil {
		return nil, n.wrap(err)
	}
	return v, nil
}

// IsCompatible reports whether the node's compatible list holds c.
func (n *Node) IsCompatible(c string) bool {
	p := n.Prop("compatible")
	if p == nil {
		return false
	}
	list, err := p.Strings()
	if err != nil {
		return false
	}
	for _, s := range list {
		if s == c {
			return true
		}
	}
	return false
}

// Cell counts (2.3.5). A node's #address-cells and #size-cells describe its
// children's reg; when absent the specification says to assume 2 and 1.
const (
	defaultAddressCells = 2
	defaultSizeCells    = 1
	// maxRegCells is the most cells a reg address or size may use here:
	// two cells fill a uint64. PCI's three-cell addresses are out of scope.
	maxRegCells = 2
	// maxInterruptCells bounds #interrupt-cells; real controllers use 1-4.
	maxInterruptCells = 16
)

// cells returns a #...-cells property of n, or def if absent.
func (n *Node) cells(name string, def uint32) (uint32, error) {
	p := n.Prop(name)
	if p == nil {
		return def, nil
	}
	v, err := p.U32()
	if err != nil {
		return 0, n.wrap(err)
	}
	return v, nil
}

// Region is one (address, size) pair of a reg property.
type Region struct {
	Address, Size uint64
}

// regCells returns the parent's #address-cells and #size-cells, which
// govern n's reg.
func (n *Node) regCells() (ac, sc uint32, err error) {
	parent := n.parent
	if parent == nil {
		return 0, 0, &fdtError{fmt.Sprintf("node %s: no parent to give #address-cells and #size-cells for reg", n.Path()), ErrNotFound}
	}
	if ac, err = parent.cells("#address-cells", defaultAddressCells); err != nil {
		return 0, 0, err
	}
	if sc, err = parent.cells("#size-cells", defaultSizeCells); err != nil {
		return 0, 0, err
	}
	if ac > maxRegCells || sc > maxRegCells {
		return 0, 0, &fdtError{fmt.Sprintf("node %s: parent has #address-cells %d, #size-cells %d; at most %d each fit in 64 bits", n.Path(), ac, sc, maxRegCells), ErrBadValue}
	}
	return ac, sc, nil
}

// Reg decodes the node's reg property into (address, size) pairs, using
// its parent's #address-cells and #size-cells (2.3.6).
func (n *Node) Reg() ([]Region, error) {
	ac, sc, err := n.regCells()
	if err != nil {
		return nil, err
	}
	p, err := n.prop("reg")
	if err != nil {
		return nil, err
	}
	cells, err := p.U32s()
	if err != nil {
		return nil, n.wrap(err)
	}
	per := int(ac + sc)
	if per == 0 || len(cells)%per != 0 {
		return nil, n.wrap(p.bad("%d cells, not a multiple of #address-cells %d + #size-cells %d", len(cells), ac, sc))
	}
	regs := make([]Region, 0, len(cells)/per)
	for i := 0; i < len(cells); i += per {
		regs = append(regs, Region{
			Address: joinCells(cells[i : i+int(ac)]),
			Size:    joinCells(cells[i+int(ac) : i+per]),
		})
	}
	return regs, nil
}

func joinCells(cs []uint32) uint64 {
	var v uint64
	for _, c := range cs {
		v = v<<32 | uint64(c)
	}
	return v
}

// SetReg encodes regs into the node's reg property using its parent's
// #address-cells and #size-cells, so the parent's cell counts must be set
// first. A value that does not fit its cells is an error, not truncated.
func (n *Node) SetReg(regs ...Region) error {
	ac, sc, err := n.regCells()
	if err != nil {
		return fmt.Errorf("setting reg: %w", err)
	}
	var b []byte
	for _, r := range regs {
		for _, f := range []struct {
			what  string
			v     uint64
			cells uint32
		}{{"address", r.Address, ac}, {"size", r.Size, sc}} {
			if f.cells < 2 && f.v>>(32*f.cells) != 0 {
				return &fdtError{fmt.Sprintf("setting reg of node %s: %s %#x does not fit in %d cell(s) (raise the parent's #%s-cells)", n.Path(), f.what, f.v, f.cells, f.what), ErrBadValue}
			}
			for i := int(f.cells) - 1; i >= 0; i-- {
				b = binary.BigEndian.AppendUint32(b, uint32(f.v>>(32*i)))
			}
		}
	}
	n.Set("reg", b)
	return nil
}

// InterruptParent returns the node's interrupt parent: the node named by
// the nearest interrupt-parent property on it or its ancestors, or else its
// parent (2.4.1). The tree is needed to look up the phandle.
func (t *Tree) InterruptParent(n *Node) (*Node, error) {
	for a := n; a != nil; a = a.parent {
		if p := a.Prop("interrupt-parent"); p != nil {
			ph, err := p.U32()
			if err != nil {
				return nil, a.wrap(err)
			}
			return t.FindPhandle(ph)
		}
	}
	if n.parent == nil {
		return nil, &fdtError{fmt.Sprintf("node %s: no interrupt parent", n.Path()), ErrNotFound}
	}
	return n.parent, nil
}

// Interrupts decodes the node's interrupts property into specifiers of the
// interrupt parent's #interrupt-cells each, and returns that parent.
// interrupts-extended is not decoded: InterruptSpecs reads either.
func (t *Tree) Interrupts(n *Node) (*Node, [][]uint32, error) {
	p, err := n.prop("interrupts")
	if err != nil {
		return nil, nil, err
	}
	ctrl, err := t.InterruptParent(n)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding interrupts: %w", err)
	}
	cellsPer, err := interruptCells(n, ctrl)
	if err != nil {
		return nil, nil, err
	}
	cells, err := p.U32s()
	if err != nil {
		return nil, nil, n.wrap(err)
	}
	if len(cells)%int(cellsPer) != 0 {
		return nil, nil, n.wrap(p.bad("%d cells, not a multiple of #interrupt-cells %d of %s", len(cells), cellsPer, ctrl.Path()))
	}
	var specs [][]uint32
	for i := 0; i < len(cells); i += int(cellsPer) {
		specs = append(specs, cells[i:i+int(cellsPer)])
	}
	return ctrl, specs, nil
}

// interruptCells returns the #interrupt-cells of ctrl, the controller (or
// nexus) n's interrupts go to.
func interruptCells(n, ctrl *Node) (uint32, error) {
	ic, err := ctrl.prop("#interrupt-cells")
	if err != nil {
		return 0, fmt.Errorf("decoding interrupts of %s: %w", n.Path(), err)
	}
	cellsPer, err := ic.U32()
	if err != nil {
		return 0, ctrl.wrap(err)
	}
	if cellsPer == 0 || cellsPer > maxInterruptCells {
		return 0, ctrl.wrap(ic.bad("#interrupt-cells %d, want 1 to %d", cellsPer, maxInterruptCells))
	}
	return cellsPer, nil
}

// Interrupt is one interrupt of a node: the controller (or nexus) it goes
// to and the specifier in that controller's #interrupt-cells.
type Interrupt struct {
	Parent *Node
	Spec   []uint32
}

// InterruptSpecs decodes every interrupt the node generates, each with
// its controller: from interrupts-extended, whose entries are a phandle
// and that controller's #interrupt-cells cells each, so one node's
// interrupts may go to several controllers; or else from interrupts, all
// to the interrupt parent. Where both are present interrupts-extended
// takes precedence (Devicetree Specification 2.4.1.3; Linux's
// bindings/interrupt-controller/interrupts.txt). A node with neither
// gives ErrNotFound.
func (t *Tree) InterruptSpecs(n *Node) ([]Interrupt, error) {
	p := n.Prop("interrupts-extended")
	if p == nil {
		ctrl, specs, err := t.Interrupts(n)
		if err != nil {
			return nil, err
		}
		out := make([]Interrupt, len(specs))
		for i, s := range specs {
			out[i] = Interrupt{Parent: ctrl, Spec: s}
		}
		return out, nil
	}
	cells, err := p.U32s()
	if err != nil {
		return nil, n.wrap(err)
	}
	var out []Interrupt
	for i := 0; i < len(cells); {
		ctrl, err := t.FindPhandle(cells[i])
		if err != nil {
			return nil, fmt.Errorf("decoding interrupts-extended of %s, entry %d: %w", n.Path(), len(out), err)
		}
		cellsPer, err := interruptCells(n, ctrl)
		if err != nil {
			return nil, err
		}
		i++
		if len(cells)-i < int(cellsPer) {
			return nil, n.wrap(p.bad("entry %d for %s has %d cells, want #interrupt-cells %d", len(out), ctrl.Path(), len(cells)-i, cellsPer))
		}
		out = append(out, Interrupt{Parent: ctrl, Spec: cells[i : i+int(cellsPer)]})
		i += int(cellsPer)
	}
	return out, nil
}
