// Package xen converts Xen guest configurations into Tandem's system
// manifest (system.yaml), so that a system built on Xen can move over:
// ImportXL reads an xl.cfg(5) guest file, ImportDom0less a Xen dom0less
// host device tree (docs/misc/arm/device-tree/booting.txt in Xen).
//
// A conversion never guesses silently. What has no Tandem equivalent, or
// would behave differently under Tandem, is returned as a Warning naming
// the key and where it was written; what cannot be converted at all is
// an *Error naming the file, the line or node, the key and the fix.
package xen

import (
	"errors"
	"fmt"
)

// ErrInput marks every error about the content of the input (as opposed
// to failing to read or write a file).
var ErrInput = errors.New("cannot import")

// Error is a problem with the input that stops the conversion.
type Error struct {
	File string
	Line int    // xl.cfg line; 0 when not known or for a device tree
	Node string // device tree node path, for dom0less input
	Key  string // xl key or device tree property
	Msg  string // what is wrong and how to fix it
}

func (e *Error) Error() string { return locate(e.File, e.Line, "", e.Node, e.Key) + e.Msg }

// Is makes errors.Is(err, ErrInput) true.
func (e *Error) Is(target error) bool { return target == ErrInput }

// Warning is something converted approximately, or left out.
type Warning struct {
	File string
	Line int
	Node string
	Key  string
	Msg  string
}

func (w Warning) String() string {
	return locate(w.File, w.Line, "warning: ", w.Node, w.Key) + w.Msg
}

// locate formats "file:line: key: " or "file: /chosen/domU1: key: ",
// with kind ("warning: ") after the place.
func locate(file string, line int, kind, node, key string) string {
	s := file
	if line > 0 {
		s += fmt.Sprintf(":%d", line)
	}
	s += ": " + kind
	if node != "" {
		s += node + ": "
	}
	if key != "" {
		s += key + ": "
	}
	return s
}
