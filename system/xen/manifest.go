package xen

import (
	"bytes"
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/vmm"
)

// Manifest is an imported system manifest: the guests, in the order of
// the input, in the terms of system.yaml (system/manifest.go).
type Manifest struct {
	Source string // the input file, named in the header comment
	Format string // "xl.cfg" or "dom0less device tree"
	Guests []*Guest
}

// Guest is one guest in system.yaml's terms. Fields left zero are left
// out of the YAML, so the manifest's defaults apply.
type Guest struct {
	Name       string
	Role       string
	Kernel     string
	Initrd     string
	Cmdline    string
	CPUs       int
	Memory     uint64 // bytes, a multiple of 2 MiB
	HostCPUs   []int
	LockMemory bool
	Disks      []Disk
	Nets       []Net
	Restart    string // never, on-failure, always; "" for the default (never)

	// Notes are YAML line comments by field name ("kernel"): a
	// placeholder to fill in, where a value came from.
	Notes map[string]string
}

// Disk is a guest disk: a file or a host block device.
type Disk struct {
	Path     string
	ReadOnly bool
	Note     string
}

// Net is a guest NIC on a host TAP interface.
type Net struct {
	TAP  string
	MAC  string
	Note string
}

func (g *Guest) note(field, format string, args ...any) {
	if g.Notes == nil {
		g.Notes = map[string]string{}
	}
	g.Notes[field] = fmt.Sprintf(format, args...)
}

// YAML renders the manifest as system.yaml: a header naming the source,
// then guests:, each field with its note as a line comment.
func (m *Manifest) YAML() ([]byte, error) {
	guests := &yaml.Node{Kind: yaml.SequenceNode}
	for _, g := range m.Guests {
		guests.Content = append(guests.Content, g.node())
	}
	root := mapping()
	root.HeadComment = fmt.Sprintf("Imported from %s (%s).\nPaths are as the source gave them; relative ones are taken from this\nfile's directory. Check the warnings printed with it.", m.Source, m.Format)
	add(root, "guests", guests, "")
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("writing the manifest as YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing the manifest as YAML: %w", err)
	}
	return buf.Bytes(), nil
}

func (g *Guest) node() *yaml.Node {
	n := mapping()
	str := func(key, v string) {
		if v != "" {
			add(n, key, text(v), g.Notes[key])
		}
	}
	str("name", g.Name)
	str("role", g.Role)
	str("kernel", g.Kernel)
	str("initrd", g.Initrd)
	str("cmdline", g.Cmdline)
	if g.CPUs > 0 {
		add(n, "cpus", scalar(strconv.Itoa(g.CPUs)), g.Notes["cpus"])
	}
	if g.Memory > 0 {
		add(n, "memory", scalar(vmm.FormatSize(g.Memory)), g.Notes["memory"])
	}
	if len(g.HostCPUs) > 0 {
		s := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, c := range g.HostCPUs {
			s.Content = append(s.Content, scalar(strconv.Itoa(c)))
		}
		add(n, "host-cpus", s, g.Notes["host-cpus"])
	}
	if g.LockMemory {
		add(n, "lock-memory", scalar("true"), g.Notes["lock-memory"])
	}
	if len(g.Disks) > 0 {
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, d := range g.Disks {
			dn := mapping()
			add(dn, "path", text(d.Path), d.Note)
			if d.ReadOnly {
				add(dn, "readonly", scalar("true"), "")
			}
			s.Content = append(s.Content, dn)
		}
		add(n, "disks", s, g.Notes["disks"])
	}
	if len(g.Nets) > 0 {
		s := &yaml.Node{Kind: yaml.SequenceNode}
		for _, nt := range g.Nets {
			nn := mapping()
			add(nn, "tap", text(nt.TAP), nt.Note)
			if nt.MAC != "" {
				add(nn, "mac", text(nt.MAC), "")
			}
			s.Content = append(s.Content, nn)
		}
		add(n, "nets", s, g.Notes["nets"])
	}
	if g.Restart != "" {
		r := mapping()
		add(r, "policy", text(g.Restart), "")
		add(n, "restart", r, g.Notes["restart"])
	}
	return n
}

func mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

// scalar is a number or boolean, written as it is.
func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v}
}

// text is a string, quoted by the encoder where YAML would read it as
// something else (a name "123", a command line "true").
func text(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func add(m *yaml.Node, key string, v *yaml.Node, comment string) {
	k := text(key)
	if comment != "" {
		if v.Kind == yaml.ScalarNode || v.Style == yaml.FlowStyle {
			v.LineComment = comment
		} else {
			k.LineComment = comment
		}
	}
	m.Content = append(m.Content, k, v)
}
