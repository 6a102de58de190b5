package system

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/tandem-hv/tandem/fsx"
)

// validate checks what involves several guests, and the files.
func (m *Manifest) validate() error {
	byName := map[string]*Guest{}
	byCID := map[uint32]*Guest{}
	coreOwner := map[int]*Guest{}
	sockets := map[string]*Guest{}
	var control, board *Guest
	for _, g := range m.Guests {
		if g.BoardDisplay {
			if board != nil {
				return g.errorf("display.board", "true on guest %q too: the board has one display; keep board: true on one guest", board.Name)
			}
			board = g
		}
		if o := byName[g.Name]; o != nil {
			return g.errorf("name", "duplicate: guest #%d (line %d) has the same name", o.index+1, m.line(fmt.Sprintf("guests[%d].name", o.index)))
		}
		byName[g.Name] = g
		if g.Role == RoleControl {
			if control != nil {
				return g.errorf("role", "%s: guest %q (line %d) is the control guest already: a system has one; give this guest another role", RoleControl, control.Name, m.line(fmt.Sprintf("guests[%d].role", control.index)))
			}
			control = g
		}
		if g.Vsock != nil {
			if o := byCID[g.Vsock.CID]; o != nil {
				return g.errorf("vsock.cid", "%d: duplicate, guest %q has it too", g.Vsock.CID, o.Name)
			}
			byCID[g.Vsock.CID] = g
			for j, f := range g.Vsock.Forward {
				if o := sockets[f.Socket]; o != nil {
					return g.errorf(fmt.Sprintf("vsock.forward[%d].socket", j), "%s: guest %q forwards the same socket", f.Socket, o.Name)
				}
				sockets[f.Socket] = g
			}
		}
		for j, c := range g.HostCPUs {
			if o := coreOwner[c]; o != nil {
				return g.errorf(fmt.Sprintf("host-cpus[%d]", j), "core %d is already dedicated to guest %q: dedicated cores cannot be shared", c, o.Name)
			}
			coreOwner[c] = g
		}
	}
	for _, g := range m.Guests {
		if g.Vsock == nil {
			continue
		}
		for j, s := range g.rawAllow {
			e, err := parseEndpoint(s, byName)
			if err != nil {
				return g.errorf(fmt.Sprintf("vsock.allow[%d]", j), "%v", err)
			}
			if e.CID != HostCID && byCID[e.CID] == nil {
				return g.errorf(fmt.Sprintf("vsock.allow[%d]", j), "%q: no guest has CID %d", s, e.CID)
			}
			if e.CID == g.Vsock.CID {
				return g.errorf(fmt.Sprintf("vsock.allow[%d]", j), "%q: a guest does not connect to itself over vsock", s)
			}
			g.Vsock.Allow = append(g.Vsock.Allow, e)
		}
		for j, h := range g.Vsock.Host {
			if !g.Vsock.Allows(HostCID, h.Port) {
				return g.errorf(fmt.Sprintf("vsock.host[%d].port", j), "%d is not in vsock.allow: add \"host:%d\" for the guest to reach it", h.Port, h.Port)
			}
		}
	}
	for _, g := range m.Guests {
		for j, a := range g.After {
			if byName[a] == nil {
				return g.errorf(fmt.Sprintf("after[%d]", j), "%q: no such guest", a)
			}
			if a == g.Name {
				return g.errorf(fmt.Sprintf("after[%d]", j), "a guest cannot start after itself")
			}
		}
	}
	if _, err := m.StartOrder(); err != nil {
		return err
	}
	for _, g := range m.Guests {
		if err := g.checkFiles(); err != nil {
			return err
		}
	}
	return nil
}

// parseEndpoint reads "CID:PORT", where CID may be a guest's name or
// "host" and PORT may be "*".
func parseEndpoint(s string, byName map[string]*Guest) (Endpoint, error) {
	c, p, ok := strings.Cut(s, ":")
	if !ok {
		return Endpoint{}, fmt.Errorf("%q: want CID:PORT (CID a number or a guest's name, PORT a number or *)", s)
	}
	var e Endpoint
	switch {
	case c == "host":
		e.CID = HostCID
	case byName[c] != nil:
		g := byName[c]
		if g.Vsock == nil {
			return e, fmt.Errorf("%q: guest %q has no vsock", s, c)
		}
		e.CID = g.Vsock.CID
	default:
		n, err := strconv.ParseUint(c, 10, 32)
		if err != nil {
			return e, fmt.Errorf("%q: %q is neither a CID nor a guest's name", s, c)
		}
		e.CID = uint32(n)
	}
	if p == AnyPort {
		e.Any = true
		return e, nil
	}
	n, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return e, fmt.Errorf("%q: port %q is not a number or *", s, p)
	}
	e.Port = uint32(n)
	return e, nil
}

// checkFiles checks that the kernel, initrd, firmware and disk files
// exist.
func (g *Guest) checkFiles() error {
	for _, f := range []struct{ field, path string }{{"kernel", g.Kernel}, {"initrd", g.Initrd}, {"firmware", g.Firmware}} {
		if f.path == "" {
			continue
		}
		st, err := os.Stat(f.path)
		if err != nil {
			return g.errorf(f.field, "%s: %v", f.path, fsx.UnwrapPathError(err))
		}
		if !st.Mode().IsRegular() {
			return g.errorf(f.field, "%s: not a regular file", f.path)
		}
	}
	for j, d := range g.Disks {
		if d.Path == "" {
			continue
		}
		st, err := os.Stat(d.Path)
		if err != nil {
			return g.errorf(fmt.Sprintf("disks[%d].path", j), "%s: %v", d.Path, fsx.UnwrapPathError(err))
		}
		if st.IsDir() {
			return g.errorf(fmt.Sprintf("disks[%d].path", j), "%s: is a directory, want an image file or block device", d.Path)
		}
	}
	return nil
}
