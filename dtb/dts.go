package dtb

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
)

// WriteDTS prints the tree as DTS source, as "dtc -I dtb -O dts" (dtc
// 1.6) prints it: the same layout, and each value printed in the form dtc
// guesses from its bytes (a string, <cells> or [bytes]), so the output can
// be diffed against dtc's and compiled back with "dtc -I dts -O dtb" to the
// same tree.
//
// One deliberate difference: in the properties that dtc checks as
// "phandle plus arguments" lists (clocks, resets, *-gpios, ...; see
// phandleArgProps) each phandle is printed as a path reference,
// <&{/clk@0} 0x01>, where dtc prints the number. dtc compiles the two to the
// same bytes (a referenced node keeps its explicit phandle), but only the
// reference passes its clocks_property-style checks without a warning.
// Labels are not recovered: a blob keeps none. The tree is checked with
// Validate first.
func (t *Tree) WriteDTS(w io.Writer) error {
	if err := t.Validate(); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.WriteString("/dts-v1/;\n\n")
	for _, r := range t.Reservations {
		fmt.Fprintf(bw, "/memreserve/\t0x%016x 0x%016x;\n", r.Address, r.Size)
	}
	paths := map[uint32]*Node{}
	_ = t.Root.Walk(func(n *Node) error {
		if ph := nodePhandle(n); ph != phandleNone {
			if _, dup := paths[ph]; !dup {
				paths[ph] = n
			}
		}
		return nil
	})
	writeDTSNode(bw, t.Root, 0, paths)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing DTS: %w", err)
	}
	return nil
}

func writeDTSNode(w *bufio.Writer, n *Node, level int, paths map[uint32]*Node) {
	indent := strings.Repeat("\t", level)
	name := n.Name
	if n.parent == nil {
		name = "/"
	}
	fmt.Fprintf(w, "%s%s {\n", indent, name)
	for _, p := range n.props {
		w.WriteString(indent + "\t" + p.Name)
		if refs, ok := phandleArgs(p, paths); ok {
			w.WriteString(" = <" + strings.Join(refs, " ") + ">;\n")
			continue
		}
		writeDTSValue(w, p.Value)
	}
	for _, c := range n.children {
		w.WriteString("\n")
		writeDTSNode(w, c, level+1, paths)
	}
	w.WriteString(indent + "};\n")
}

// dtsKind is how a value is printed.
type dtsKind int

const (
	dtsString dtsKind = iota
	dtsCells
	dtsBytes
)

// isStringByte mirrors dtc's isstring(): printable ASCII, NUL, or one of
// the C escapes.
func isStringByte(c byte) bool {
	return (c >= 0x20 && c < 0x7f) || c == 0 || strings.IndexByte("\a\b\t\n\v\f\r", c) >= 0
}

// guessKind mirrors dtc's guess_value_type() (treesource.c): a value is a
// string if it ends in NUL, has only string bytes, and has no more NULs
// than other bytes; otherwise cells if its length is a multiple of 4;
// otherwise bytes.
func guessKind(v []byte) dtsKind {
	nul, notString := 0, 0
	for _, c := range v {
		if !isStringByte(c) {
			notString++
		}
		if c == 0 {
			nul++
		}
	}
	switch {
	case v[len(v)-1] == 0 && notString == 0 && nul <= len(v)-nul:
		return dtsString
	case len(v)%4 == 0:
		return dtsCells
	}
	return dtsBytes
}

func writeDTSValue(w *bufio.Writer, v []byte) {
	if len(v) == 0 {
		w.WriteString(";\n")
		return
	}
	switch guessKind(v) {
	case dtsString:
		w.WriteString(" = \"")
		for _, c := range v[:len(v)-1] {
			switch c {
			case '\a':
				w.WriteString(`\a`)
			case '\b':
				w.WriteString(`\b`)
			case '\t':
				w.WriteString(`\t`)
			case '\n':
				w.WriteString(`\n`)
			case '\v':
				w.WriteString(`\v`)
			case '\f':
				w.WriteString(`\f`)
			case '\r':
				w.WriteString(`\r`)
			case '\\':
				w.WriteString(`\\`)
			case '"':
				w.WriteString(`\"`)
			case 0:
				w.WriteString(`\0`)
			default:
				if c >= 0x20 && c < 0x7f {
					w.WriteByte(c)
				} else {
					fmt.Fprintf(w, `\x%02x`, c)
				}
			}
		}
		w.WriteString("\";\n")
	case dtsCells:
		w.WriteString(" = <")
		for i := 0; i < len(v); i += 4 {
			if i > 0 {
				w.WriteByte(' ')
			}
			fmt.Fprintf(w, "0x%02x", binary.BigEndian.Uint32(v[i:]))
		}
		w.WriteString(">;\n")
	default:
		w.WriteString(" = [")
		for i, c := range v {
			if i > 0 {
				w.WriteByte(' ')
			}
			fmt.Fprintf(w, "%02x", c)
		}
		w.WriteString("];\n")
	}
}

// phandleArgProps maps the properties that hold lists of (phandle,
// arguments) to the property of the referenced node that gives the number
// of arguments: the list dtc checks (checks.c, WARNING_PROPERTY_PHANDLE_CELLS
// and check_gpios_property).
var phandleArgProps = map[string]string{
	"clocks":              "#clock-cells",
	"cooling-device":      "#cooling-cells",
	"dmas":                "#dma-cells",
	"hwlocks":             "#hwlock-cells",
	"interrupts-extended": "#interrupt-cells",
	"io-channels":         "#io-channel-cells",
	"iommus":              "#iommu-cells",
	"mboxes":              "#mbox-cells",
	"msi-parent":          "#msi-cells",
	"mux-controls":        "#mux-control-cells",
	"phys":                "#phy-cells",
	"power-domains":       "#power-domain-cells",
	"pwms":                "#pwm-cells",
	"resets":              "#reset-cells",
	"sound-dai":           "#sound-dai-cells",
	"thermal-sensors":     "#thermal-sensor-cells",
}

// cellsPropFor returns the #...-cells property governing a phandle-args
// property, or "".
func cellsPropFor(name string) string {
	if c, ok := phandleArgProps[name]; ok {
		return c
	}
	// dtc checks "gpios", "gpio", "*-gpios" and "*-gpio", except the
	// "nr-gpios" count property.
	if name == "gpios" || name == "gpio" || (strings.HasSuffix(name, "-gpios") || strings.HasSuffix(name, "-gpio")) && !strings.HasSuffix(name, ",nr-gpios") && name != "nr-gpios" {
		return "#gpio-cells"
	}
	return ""
}

// phandleArgs returns p's cells with each phandle as a path reference, or
// false if p is not such a list or does not decode cleanly as one (then it
// is printed as dtc prints it).
func phandleArgs(p *Property, paths map[uint32]*Node) ([]string, bool) {
	cellsName := cellsPropFor(p.Name)
	if cellsName == "" || len(p.Value) == 0 || len(p.Value)%4 != 0 {
		return nil, false
	}
	var out []string
	cells := len(p.Value) / 4
	cell := func(i int) uint32 { return binary.BigEndian.Uint32(p.Value[4*i:]) }
	for i := 0; i < cells; {
		ph := cell(i)
		if ph == phandleNone || ph == phandleReserved {
			// A placeholder entry with no arguments (dtc skips it too).
			out = append(out, fmt.Sprintf("0x%02x", ph))
			i++
			continue
		}
		target, ok := paths[ph]
		if !ok {
			return nil, false
		}
		nargs := uint32(0)
		if c := target.Prop(cellsName); c != nil {
			v, err := c.U32()
			if err != nil {
				return nil, false
			}
			nargs = v
		} else if p.Name != "msi-parent" {
			return nil, false
		}
		if uint64(i)+1+uint64(nargs) > uint64(cells) {
			return nil, false
		}
		out = append(out, "&{"+target.Path()+"}")
		for j := 1; j <= int(nargs); j++ {
			out = append(out, fmt.Sprintf("0x%02x", cell(i+j)))
		}
		i += 1 + int(nargs)
	}
	return out, true
}
