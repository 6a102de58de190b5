package dtb

import (
	"fmt"
	"strings"
)

// Tree is a whole device tree: the node hierarchy plus the two things the
// blob carries outside it.
type Tree struct {
	// Root is the root node; its name is empty.
	Root *Node
	// Reservations is the memory reservation block (5.3): physical ranges
	// the client must not use as general memory, in blob order.
	Reservations []Reservation
	// BootCPU is the header's boot_cpuid_phys: the reg value of the CPU
	// node the client boots on (5.2).
	BootCPU uint32
}

// Reservation is one memory reservation block entry (struct
// fdt_reserve_entry, 5.3.2).
type Reservation struct {
	Address, Size uint64
}

// Property is one property: a name and its raw big-endian value. Typed
// accessors (U32, Strings, ...) decode Value on demand.
type Property struct {
	Name  string
	Value []byte
}

// Node is one device tree node. Its name includes the unit address
// ("cpu@0"); the root's name is empty. Properties and children keep their
// order. A node belongs to at most one parent: use Clone or CopyNode to put
// a copy elsewhere.
type Node struct {
	Name     string
	props    []*Property
	children []*Node
	parent   *Node
}

// New returns a tree holding only an empty root node.
func New() *Tree {
	return &Tree{Root: &Node{}}
}

// Parent returns the node's parent, or nil for a root or detached node.
func (n *Node) Parent() *Node { return n.parent }

// Children returns the node's children in order. The slice belongs to the
// node: add and remove children with AddNode and Delete.
func (n *Node) Children() []*Node { return n.children }

// Properties returns the node's properties in order. The slice belongs to
// the node: change it with the Set and DeleteProp methods; a property's
// Value may be changed in place.
func (n *Node) Properties() []*Property { return n.props }

// Path returns the node's full path ("/cpus/cpu@0"; "/" for the root).
func (n *Node) Path() string {
	if n.parent == nil {
		return "/"
	}
	var parts []string
	for p := n; p.parent != nil; p = p.parent {
		parts = append(parts, p.Name)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String()
}

// BaseName returns the name without its unit address ("cpu" for "cpu@0").
func (n *Node) BaseName() string {
	base, _, _ := strings.Cut(n.Name, "@")
	return base
}

// UnitAddress returns the text after '@' in the name, or "" if none.
func (n *Node) UnitAddress() string {
	_, unit, _ := strings.Cut(n.Name, "@")
	return unit
}

// Child returns the child with the given name. A name without a unit
// address also matches a child that has one ("memory" finds "memory@0"),
// as libfdt's path lookup does; an exact match is preferred.
func (n *Node) Child(name string) *Node {
	for _, c := range n.children {
		if c.Name == name {
			return c
		}
	}
	if strings.Contains(name, "@") {
		return nil
	}
	for _, c := range n.children {
		if c.BaseName() == name {
			return c
		}
	}
	return nil
}

// AddNode appends a new, empty child called name and returns it. Names are
// checked when the tree is written (see Validate), so a builder can chain
// calls without an error at every step.
func (n *Node) AddNode(name string) *Node {
	c := &Node{Name: name, parent: n}
	n.children = append(n.children, c)
	return c
}

// AddNodeAt appends a child called base@unit, the unit address in lower-case
// hex without a prefix, as the specification's examples and dtc's
// unit_address_format check want ("cpu@1", "uart@9000000").
func (n *Node) AddNodeAt(base string, unit uint64) *Node {
	return n.AddNode(fmt.Sprintf("%s@%x", base, unit))
}

// Delete removes the node, with its subtree, from its parent. Deleting a
// root or detached node does nothing.
func (n *Node) Delete() {
	p := n.parent
	if p == nil {
		return
	}
	for i, c := range p.children {
		if c == n {
			p.children = append(p.children[:i:i], p.children[i+1:]...)
			break
		}
	}
	n.parent = nil
}

// Clone returns a deep copy of the node and its subtree, detached from any
// parent.
func (n *Node) Clone() *Node {
	c := &Node{Name: n.Name}
	for _, p := range n.props {
		c.props = append(c.props, &Property{Name: p.Name, Value: append([]byte(nil), p.Value...)})
	}
	for _, ch := range n.children {
		cc := ch.Clone()
		cc.parent = c
		c.children = append(c.children, cc)
	}
	return c
}

// adopt appends an existing detached node as a child.
func (n *Node) adopt(c *Node) {
	c.parent = n
	n.children = append(n.children, c)
}

// Walk calls fn for the node and every descendant, parents before
// children, in order, and stops at the first error.
func (n *Node) Walk(fn func(*Node) error) error {
	if err := fn(n); err != nil {
		return err
	}
	for _, c := range n.children {
		if err := c.Walk(fn); err != nil {
			return err
		}
	}
	return nil
}

// Clone returns a deep copy of the whole tree.
func (t *Tree) Clone() *Tree {
	return &Tree{
		Root:         t.Root.Clone(),
		Reservations: append([]Reservation(nil), t.Reservations...),
		BootCPU:      t.BootCPU,
	}
}

// AddReservation appends a memory reservation block entry.
func (t *Tree) AddReservation(address, size uint64) {
	t.Reservations = append(t.Reservations, Reservation{Address: address, Size: size})
}

// Prop returns the named property, or nil.
func (n *Node) Prop(name string) *Property {
	for _, p := range n.props {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Has reports whether the node has the named property.
func (n *Node) Has(name string) bool { return n.Prop(name) != nil }

// DeleteProp removes the named property and reports whether it was there.
func (n *Node) DeleteProp(name string) bool {
	for i, p := range n.props {
		if p.Name == name {
			n.props = append(n.props[:i:i], n.props[i+1:]...)
			return true
		}
	}
	return false
}

// isNameChar reports whether c may appear in a node or property name. The
// specification's sets (2.2.1 table 2.1, 2.2.4 table 2.2) are subsets of
// what dtc's lexer accepts for a name; using the lexer's set means every
// tree this package reads can be printed as DTS that dtc parses again.
func isNameChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(",._+*#?@-", c) >= 0
}

// checkName returns why name is not a valid node or property name, or "".
func checkName(name string) string {
	if name == "" {
		return "empty name"
	}
	if len(name) > MaxNameLen {
		return fmt.Sprintf("name of %d bytes longer than %d", len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return fmt.Sprintf("name %q has character %q at %d (allowed: letters, digits and ,._+*#?@-)", name, name[i], i)
		}
	}
	return ""
}

// Validate checks what Bytes needs to produce a blob Parse accepts: names
// valid and unique among siblings, property names unique within a node,
// and every cap respected. The error names the node's path.
func (t *Tree) Validate() error {
	if t.Root == nil {
		return &fdtError{"validating tree: no root node", ErrBadStructure}
	}
	if t.Root.Name != "" {
		return &fdtError{fmt.Sprintf("validating tree: root node named %q, want empty", t.Root.Name), ErrBadName}
	}
	if len(t.Reservations) > MaxReservations {
		return &fdtError{fmt.Sprintf("validating tree: %d memory reservations, more than %d", len(t.Reservations), MaxReservations), ErrTooLarge}
	}
	var nodes, props int
	var walk func(n *Node, depth int) error
	walk = func(n *Node, depth int) error {
		if depth > MaxDepth {
			return &fdtError{fmt.Sprintf("validating tree: node %s nested deeper than %d", n.Path(), MaxDepth), ErrTooDeep}
		}
		if nodes++; nodes > MaxNodes {
			return &fdtError{fmt.Sprintf("validating tree: more than %d nodes", MaxNodes), ErrTooLarge}
		}
		seen := make(map[string]bool, len(n.props))
		for _, p := range n.props {
			if why := checkName(p.Name); why != "" {
				return &fdtError{fmt.Sprintf("validating tree: node %s: property %s", n.Path(), why), ErrBadName}
			}
			if seen[p.Name] {
				return &fdtError{fmt.Sprintf("validating tree: node %s: duplicate property %q", n.Path(), p.Name), ErrBadStructure}
			}
			seen[p.Name] = true
			if len(p.Value) > MaxPropertyLen {
				return &fdtError{fmt.Sprintf("validating tree: node %s: property %q of %d bytes longer than %d", n.Path(), p.Name, len(p.Value), MaxPropertyLen), ErrTooLarge}
			}
			if props++; props > MaxProperties {
				return &fdtError{fmt.Sprintf("validating tree: more than %d properties", MaxProperties), ErrTooLarge}
			}
		}
		clear(seen)
		for _, c := range n.children {
			if c.parent != n {
				return &fdtError{fmt.Sprintf("validating tree: node %s/%s: parent link broken", n.Path(), c.Name), ErrBadStructure}
			}
			if why := checkName(c.Name); why != "" {
				return &fdtError{fmt.Sprintf("validating tree: child of %s: node %s", n.Path(), why), ErrBadName}
			}
			if seen[c.Name] {
				return &fdtError{fmt.Sprintf("validating tree: duplicate node %s", c.Path()), ErrBadStructure}
			}
			seen[c.Name] = true
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(t.Root, 1)
}
