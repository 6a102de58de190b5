package dtb

import (
	"fmt"
	"strings"
)

// Phandle values that are never valid (2.3.3): 0 means "none" and
// 0xffffffff is reserved for "unresolved" in overlays.
const (
	phandleNone     = 0
	phandleReserved = 0xffffffff
)

// Lookup finds a node by path ("/cpus/cpu@0"). A path that does not start
// with '/' begins with an alias ("serial0" or "serial0/child"), resolved
// through /aliases (2.2.3). A path component without a unit address matches
// a node that has one ("/memory" finds "/memory@40000000").
func (t *Tree) Lookup(path string) (*Node, error) {
	n := t.Root
	rest := path
	if !strings.HasPrefix(path, "/") {
		alias, tail, _ := strings.Cut(path, "/")
		a, err := t.Alias(alias)
		if err != nil {
			return nil, err
		}
		n, rest = a, tail
	}
	for _, part := range strings.Split(rest, "/") {
		if part == "" {
			continue
		}
		c := n.Child(part)
		if c == nil {
			return nil, &fdtError{fmt.Sprintf("looking up %q: no node %q under %s", path, part, n.Path()), ErrNotFound}
		}
		n = c
	}
	return n, nil
}

// Alias resolves a name in /aliases to its node.
func (t *Tree) Alias(name string) (*Node, error) {
	aliases := t.Root.Child("aliases")
	if aliases == nil {
		return nil, &fdtError{fmt.Sprintf("resolving alias %q: no /aliases node", name), ErrNotFound}
	}
	target, err := aliases.String(name)
	if err != nil {
		return nil, fmt.Errorf("resolving alias %q: %w", name, err)
	}
	// An alias value is a full path (2.3.1); refusing a relative one also
	// stops aliases that point at each other from looping.
	if !strings.HasPrefix(target, "/") {
		return nil, &fdtError{fmt.Sprintf("resolving alias %q: value %q is not a full path", name, target), ErrBadValue}
	}
	return t.Lookup(target)
}

// StdoutPath resolves /chosen/stdout-path (or the older linux,stdout-path)
// to the console node, and returns the options after ':' ("115200n8"), if
// any (3.6).
func (t *Tree) StdoutPath() (*Node, string, error) {
	chosen := t.Root.Child("chosen")
	if chosen == nil {
		return nil, "", &fdtError{"resolving stdout-path: no /chosen node", ErrNotFound}
	}
	name := "stdout-path"
	if !chosen.Has(name) && chosen.Has("linux,stdout-path") {
		name = "linux,stdout-path"
	}
	v, err := chosen.String(name)
	if err != nil {
		return nil, "", fmt.Errorf("resolving stdout-path: %w", err)
	}
	path, opts, _ := strings.Cut(v, ":")
	n, err := t.Lookup(path)
	if err != nil {
		return nil, "", fmt.Errorf("resolving stdout-path %q: %w", v, err)
	}
	return n, opts, nil
}

// FindCompatible returns every node whose compatible list holds c, in tree
// order.
func (t *Tree) FindCompatible(c string) []*Node {
	var found []*Node
	_ = t.Root.Walk(func(n *Node) error {
		if n.IsCompatible(c) {
			found = append(found, n)
		}
		return nil
	})
	return found
}

// nodePhandle returns the node's phandle from "phandle" or the older
// "linux,phandle", or 0.
func nodePhandle(n *Node) uint32 {
	for _, name := range []string{"phandle", "linux,phandle"} {
		if p := n.Prop(name); p != nil {
			if v, err := p.U32(); err == nil {
				return v
			}
		}
	}
	return phandleNone
}

// PhandleOf returns the node's phandle, or 0 if it has none.
func (n *Node) PhandleOf() uint32 { return nodePhandle(n) }

// FindPhandle returns the node with the given phandle.
func (t *Tree) FindPhandle(ph uint32) (*Node, error) {
	if ph != phandleNone && ph != phandleReserved {
		var found *Node
		_ = t.Root.Walk(func(n *Node) error {
			if nodePhandle(n) == ph {
				found = n
				return errStop
			}
			return nil
		})
		if found != nil {
			return found, nil
		}
	}
	return nil, &fdtError{fmt.Sprintf("looking up phandle %#x: no such node", ph), ErrNotFound}
}

// errStop ends a Walk early.
var errStop = fmt.Errorf("stop")

// maxPhandle returns the highest phandle used in the subtree.
func maxPhandle(root *Node) uint32 {
	var hi uint32
	_ = root.Walk(func(n *Node) error {
		for _, name := range []string{"phandle", "linux,phandle"} {
			if p := n.Prop(name); p != nil {
				if v, err := p.U32(); err == nil && v != phandleReserved && v > hi {
					hi = v
				}
			}
		}
		return nil
	})
	return hi
}

// Phandle returns n's phandle, giving it one first if it has none: one more
// than the highest phandle in the tree, so a new phandle never collides
// with one already read from a blob. Use it for references:
//
//	uart.SetU32("interrupt-parent", t.Phandle(gic))
//
// n must be in t.
func (t *Tree) Phandle(n *Node) uint32 {
	if ph := nodePhandle(n); ph != phandleNone && ph != phandleReserved {
		return ph
	}
	ph := maxPhandle(t.Root) + 1
	if ph == phandleReserved {
		// Only reachable if a blob used 0xfffffffe; reuse the lowest free
		// value instead of wrapping to 0.
		used := map[uint32]bool{}
		_ = t.Root.Walk(func(m *Node) error { used[nodePhandle(m)] = true; return nil })
		for ph = 1; used[ph]; ph++ {
		}
	}
	n.SetU32("phandle", ph)
	return ph
}

// CopyNode puts a deep copy of src (from any tree) under parent, which must
// be in t, and returns the copy. It fails, changing nothing, if parent
// already has a child of that name or if the copy would bring a phandle
// that t already uses: phandle references inside the copy cannot be
// renumbered without knowing which cells hold phandles, so the caller
// decides (for example by deleting the phandle properties first).
func (t *Tree) CopyNode(parent, src *Node) (*Node, error) {
	if parent.childExactName(src.Name) {
		return nil, &fdtError{fmt.Sprintf("copying node %s: %s already has a child %q", src.Path(), parent.Path(), src.Name), ErrBadStructure}
	}
	used := map[uint32]*Node{}
	_ = t.Root.Walk(func(n *Node) error {
		if ph := nodePhandle(n); ph != phandleNone {
			used[ph] = n
		}
		return nil
	})
	if err := src.Walk(func(n *Node) error {
		if ph := nodePhandle(n); ph != phandleNone {
			if other, ok := used[ph]; ok {
				return &fdtError{fmt.Sprintf("copying node %s: its node %s has phandle %#x, already used by %s", src.Path(), n.Path(), ph, other.Path()), ErrPhandleCollision}
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	c := src.Clone()
	parent.adopt(c)
	return c, nil
}

func (n *Node) childExactName(name string) bool {
	for _, c := range n.children {
		if c.Name == name {
			return true
		}
	}
	return false
}
