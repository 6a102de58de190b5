package system

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/vmm"
)

// yaml forms. Every field is decoded strictly (strictyaml):
// an unknown key is an error with file:line.
type manifestYAML struct {
	ControlSocket string      `yaml:"control-socket"`
	VMMUser       string      `yaml:"vmm-user"`
	Guests        []guestYAML `yaml:"guests"`
}

type guestYAML struct {
	Name       string     `yaml:"name"`
	Role       string     `yaml:"role"`
	Kernel     string     `yaml:"kernel"`
	KernelFmt  string     `yaml:"kernel-format"`
	LoadAddr   uint64     `yaml:"load-address"`
	Initrd     string     `yaml:"initrd"`
	Firmware   string     `yaml:"firmware"`
	Cmdline    *string    `yaml:"cmdline"` // nil: left out, defaultCmdline
	CPUs       *int       `yaml:"cpus"`    // nil: left out, defaultCPUs
	Memory     string     `yaml:"memory"`
	HostCPUs   []int      `yaml:"host-cpus"`
	RTPriority int        `yaml:"rt-priority"`
	LockMemory bool       `yaml:"lock-memory"`
	HugePages  bool       `yaml:"hugepages"`
	Disks      []diskYAML `yaml:"disks"`
	Nets       []struct {
		TAP string `yaml:"tap"`
		MAC string `yaml:"mac"`
	} `yaml:"nets"`
	Vsock *struct {
		CID     int64    `yaml:"cid"`
		Allow   []string `yaml:"allow"`
		Forward []struct {
			Socket string `yaml:"socket"`
			Port   int64  `yaml:"port"`
		} `yaml:"forward"`
		Host []struct {
			Port   int64  `yaml:"port"`
			Socket string `yaml:"socket"`
		} `yaml:"host"`
	} `yaml:"vsock"`
	Display *struct {
		Width          int    `yaml:"width"`
		Height         int    `yaml:"height"`
		Board          bool   `yaml:"board"`
		VNC            string `yaml:"vnc"`
		VNCAllowRemote bool   `yaml:"vnc-allow-remote"`
	} `yaml:"display"`
	Restart *struct {
		Policy      string `yaml:"policy"`
		Limit       int    `yaml:"limit"`
		Backoff     string `yaml:"backoff"`
		MaxBackoff  string `yaml:"max-backoff"`
		StableAfter string `yaml:"stable-after"`
	} `yaml:"restart"`
	Watchdog *struct {
		Timeout string `yaml:"timeout"`
		Grace   string `yaml:"grace"`
	} `yaml:"watchdog"`
	After       []string `yaml:"after"`
	Measured    string   `yaml:"measured"`
	VTPM        bool     `yaml:"vtpm"`
	PMU         *bool    `yaml:"pmu"`
	SVE         *bool    `yaml:"sve"`
	Passthrough []struct {
		Node       string `yaml:"node"`
		Interrupts string `yaml:"interrupts"`
	} `yaml:"passthrough"`
}

type diskYAML struct {
	Path     string `yaml:"path"`
	Label    string `yaml:"label"`
	PartUUID string `yaml:"partuuid"`
	ReadOnly bool   `yaml:"readonly"`
}

// indexLines records the line of every mapping key and sequence item
// under a dotted path: guests[0].vsock.cid.
func indexLines(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			indexLines(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			out[p] = k.Line
			indexLines(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			out[p] = c.Line
			indexLines(c, p, out)
		}
	}
}

// rel makes a manifest path usable from the working directory.
func (m *Manifest) rel(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(m.Path), p)
}

// decodeGuest makes guest i from its yaml form, checking and defaulting
// each field; what involves other guests is left for validate.
func (m *Manifest) decodeGuest(i int, y *guestYAML) (*Guest, error) {
	g := &Guest{
		Name: y.Name, Role: y.Role, Kernel: m.rel(y.Kernel), Initrd: m.rel(y.Initrd), Firmware: m.rel(y.Firmware),
		LoadAddress: y.LoadAddr, HostCPUs: y.HostCPUs, RTPriority: y.RTPriority,
		LockMemory: y.LockMemory, HugePages: y.HugePages, After: y.After,
		VTPM:  y.VTPM,
		NoPMU: y.PMU != nil && !*y.PMU, NoSVE: y.SVE != nil && !*y.SVE,
		index: i, manifest: m, kernelName: y.Kernel, initrdName: y.Initrd, firmwareName: y.Firmware,
	}
	for _, decode := range []func(*guestYAML) error{
		g.decodeBasics,
		g.decodeMemory,
		g.decodeScheduling,
		g.decodeDisks,
		g.decodeNets,
		g.decodeVsock,
		g.decodeDisplay,
		g.decodeRestart,
		g.decodeWatchdog,
		g.decodePassthrough,
		g.decodeMeasured,
	} {
		if err := decode(y); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// decodeBasics checks the name and the kernel, and defaults cpus and
// cmdline (only when there is no cmdline: at all: an empty one is the
// guest's).
func (g *Guest) decodeBasics(y *guestYAML) error {
	if g.Name == "" {
		return g.errorf("name", "missing: every guest needs a name")
	}
	if !validName(g.Name) {
		return g.errorf("name", "%q: use letters, digits, '-' and '_' only (it names sockets and log lines)", g.Name)
	}
	if g.Kernel == "" && g.Firmware == "" {
		return g.errorf("kernel", "missing: give the guest kernel's path (or, for an arm64 guest that boots from its disk, firmware:)")
	}
	g.CPUs = defaultCPUs
	if y.CPUs != nil {
		g.CPUs = *y.CPUs
	}
	if g.CPUs < 1 || g.CPUs > vmm.MaxCPUs {
		return g.errorf("cpus", "%d: must be between 1 and %d", g.CPUs, vmm.MaxCPUs)
	}
	g.Cmdline = defaultCmdline
	if y.Cmdline != nil {
		g.Cmdline = *y.Cmdline
	}
	f, err := vmm.ParseKernelFormat(y.KernelFmt)
	if err != nil {
		return g.errorf("kernel-format", "%v", err)
	}
	g.KernelFormat = f
	return nil
}

// decodeMemory reads memory:, defaulting it.
func (g *Guest) decodeMemory(y *guestYAML) error {
	ms := y.Memory
	if ms == "" {
		ms = defaultMemory
	}
	var err error
	if g.Memory, err = vmm.ParseSize(ms); err != nil {
		return g.errorf("memory", "%v", err)
	}
	if g.Memory < vmm.MinMemory || g.Memory%(2<<20) != 0 {
		return g.errorf("memory", "%s: must be a multiple of 2M and at least %s", ms, vmm.FormatSize(vmm.MinMemory))
	}
	return nil
}

// decodeScheduling checks host-cpus and rt-priority.
func (g *Guest) decodeScheduling(*guestYAML) error {
	for j, c := range g.HostCPUs {
		if c < 0 {
			return g.errorf(fmt.Sprintf("host-cpus[%d]", j), "%d: not a core number", c)
		}
		if slices.Index(g.HostCPUs, c) != j {
			return g.errorf(fmt.Sprintf("host-cpus[%d]", j), "core %d listed twice", c)
		}
	}
	if g.RTPriority < 0 || g.RTPriority > maxRTPriority {
		return g.errorf("rt-priority", "%d: must be between 1 and %d (SCHED_FIFO), or 0 for none", g.RTPriority, maxRTPriority)
	}
	if g.RTPriority > 0 && g.Role != RoleControl {
		return g.errorf("rt-priority", "only a guest with role: control may run its vCPUs at real-time priority (this one has role %q)", g.Role)
	}
	if g.RTPriority > 0 && len(g.HostCPUs) == 0 {
		return g.errorf("rt-priority", "needs host-cpus: a SCHED_FIFO vCPU on a shared core starves the host")
	}
	return nil
}

// decodeDisks reads disks:, each a path, a label or a partuuid.
func (g *Guest) decodeDisks(y *guestYAML) error {
	for j, d := range y.Disks {
		f := fmt.Sprintf("disks[%d]", j)
		n := 0
		for _, s := range []string{d.Path, d.Label, d.PartUUID} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return g.errorf(f, "give exactly one of path, label or partuuid")
		}
		g.Disks = append(g.Disks, Disk{Path: g.manifest.rel(d.Path), Label: d.Label, PartUUID: d.PartUUID, ReadOnly: d.ReadOnly})
	}
	return nil
}

// decodeNets reads nets:.
func (g *Guest) decodeNets(y *guestYAML) error {
	for j, n := range y.Nets {
		if n.TAP == "" {
			return g.errorf(fmt.Sprintf("nets[%d]", j), "missing tap: name the host TAP interface")
		}
		nt := vmm.Net{TAP: n.TAP}
		if n.MAC != "" {
			mac, err := parseMAC(n.MAC)
			if err != nil {
				return g.errorf(fmt.Sprintf("nets[%d].mac", j), "%v", err)
			}
			nt.MAC = mac
		}
		g.Nets = append(g.Nets, nt)
	}
	return nil
}

// decodeVsock reads vsock: but its allow-list, which may name guests and
// so is resolved in validate.
func (g *Guest) decodeVsock(y *guestYAML) error {
	v := y.Vsock
	if v == nil {
		return nil
	}
	m := g.manifest
	if v.CID < MinGuestCID || v.CID > MaxGuestCID {
		return g.errorf("vsock.cid", "%d: guest CIDs are %d to %d (0-2 are reserved, 2 is the host)", v.CID, MinGuestCID, uint32(MaxGuestCID))
	}
	g.Vsock = &Vsock{CID: uint32(v.CID)}
	g.rawAllow = v.Allow
	for j, f := range v.Forward {
		if err := g.checkSocketPort(fmt.Sprintf("vsock.forward[%d]", j), f.Socket, f.Port, "the host UNIX socket's path"); err != nil {
			return err
		}
		g.Vsock.Forward = append(g.Vsock.Forward, Forward{Socket: m.rel(f.Socket), Port: uint32(f.Port)})
	}
	for j, h := range v.Host {
		fld := fmt.Sprintf("vsock.host[%d]", j)
		if err := g.checkSocketPort(fld, h.Socket, h.Port, "the path of the host UNIX socket that serves the port"); err != nil {
			return err
		}
		if g.Vsock.HostService(uint32(h.Port)) != nil {
			return g.errorf(fld+".port", "%d: listed twice", h.Port)
		}
		g.Vsock.Host = append(g.Vsock.Host, HostService{Port: uint32(h.Port), Socket: m.rel(h.Socket)})
	}
	return nil
}

// decodeRestart reads restart:, defaulting the policy and its timings.
func (g *Guest) decodeRestart(y *guestYAML) error {
	g.Restart = Restart{Policy: RestartNever, Backoff: defaultBackoff}
	if r := y.Restart; r != nil {
		if r.Policy != "" {
			g.Restart.Policy = r.Policy
		}
		switch g.Restart.Policy {
		case RestartNever, RestartOnFailure, RestartAlways:
		default:
			return g.errorf("restart.policy", "%q: want never, on-failure or always", r.Policy)
		}
		if r.Limit < 0 {
			return g.errorf("restart.limit", "%d: want 0 (no limit) or more", r.Limit)
		}
		g.Restart.Limit = r.Limit
		for _, d := range []struct {
			field, s string
			dst      *time.Duration
		}{{"restart.backoff", r.Backoff, &g.Restart.Backoff}, {"restart.max-backoff", r.MaxBackoff, &g.Restart.MaxBackoff}, {"restart.stable-after", r.StableAfter, &g.Restart.StableAfter}} {
			if d.s == "" {
				continue
			}
			var err error
			if *d.dst, err = parseDuration(d.s); err != nil {
				return g.errorf(d.field, "%v", err)
			}
		}
	}
	if g.Restart.MaxBackoff == 0 {
		g.Restart.MaxBackoff = max(30*time.Second, g.Restart.Backoff)
	}
	if g.Restart.StableAfter == 0 {
		g.Restart.StableAfter = time.Minute
	}
	return nil
}

// decodeDisplay reads display:, the guest's screen: width and height
// together, or neither for the default 1280×720; board: true shows it
// on the board's own display; vnc: where a VNC server shows it (a
// loopback or UNIX address unless vnc-allow-remote: true).
func (g *Guest) decodeDisplay(y *guestYAML) error {
	d := y.Display
	if d == nil {
		return nil
	}
	if (d.Width == 0) != (d.Height == 0) {
		return g.errorf("display", "give both width and height, or neither for %dx%d", vmm.DefaultDisplayWidth, vmm.DefaultDisplayHeight)
	}
	w, h := d.Width, d.Height
	if w == 0 {
		w, h = vmm.DefaultDisplayWidth, vmm.DefaultDisplayHeight
	}
	for _, f := range []struct {
		field     string
		v, lo, hi int
	}{
		{"display.width", w, vmm.MinDisplayWidth, vmm.MaxDisplayWidth},
		{"display.height", h, vmm.MinDisplayHeight, vmm.MaxDisplayHeight},
	} {
		if f.v < f.lo || f.v > f.hi {
			return g.errorf(f.field, "%d: want %d to %d pixels", f.v, f.lo, f.hi)
		}
	}
	if d.VNCAllowRemote && d.VNC == "" {
		return g.errorf("display.vnc-allow-remote", "no vnc: address to allow: add vnc: tcp:HOST:PORT or drop it")
	}
	if d.VNC != "" {
		if err := vmm.CheckVNC(d.VNC, d.VNCAllowRemote); err != nil {
			return g.errorf("display.vnc", "%v", err)
		}
	}
	g.Display = &vmm.Display{Width: w, Height: h, VNC: d.VNC, VNCAllowRemote: d.VNCAllowRemote}
	if d.Board {
		// The control guest's screen would be drawn by a VMM it shares
		// nothing else with: it never gets the board's.
		if g.Role == RoleControl {
			return g.errorf("display.board", "true on the control guest: the board's display is for another guest's scanout; remove it here or move it to that guest")
		}
		g.BoardDisplay = true
	}
	return nil
}

// decodeWatchdog reads watchdog:.
func (g *Guest) decodeWatchdog(y *guestYAML) error {
	w := y.Watchdog
	if w == nil {
		return nil
	}
	if w.Timeout == "" {
		return g.errorf("watchdog.timeout", "missing: how long the guest may go without pinging its watchdog, e.g. 10s")
	}
	var err error
	if g.Watchdog.Timeout, err = parseDuration(w.Timeout); err != nil || g.Watchdog.Timeout == 0 {
		if err == nil {
			err = errors.New("must be more than 0")
		}
		return g.errorf("watchdog.timeout", "%v", err)
	}
	if t := g.Watchdog.Timeout; t%time.Second != 0 || t > vmm.MaxWatchdogTimeout {
		return g.errorf("watchdog.timeout", "%v: want whole seconds up to %v, as the guest's watchdog driver counts", t, vmm.MaxWatchdogTimeout)
	}
	if w.Grace != "" {
		if g.Watchdog.Grace, err = parseDuration(w.Grace); err != nil || g.Watchdog.Grace > vmm.MaxWatchdogTimeout {
			if err == nil {
				err = fmt.Errorf("at most %v", vmm.MaxWatchdogTimeout)
			}
			return g.errorf("watchdog.grace", "%v", err)
		}
	}
	return nil
}

// decodePassthrough reads passthrough:, the host devices handed to the
// guest.
func (g *Guest) decodePassthrough(y *guestYAML) error {
	for j, p := range y.Passthrough {
		f := fmt.Sprintf("passthrough[%d]", j)
		if p.Node == "" {
			return g.errorf(f, "missing node: give the host device tree path, e.g. /pl031@9010000")
		}
		d := HostDevice{Node: p.Node}
		if err := d.Validate(); err != nil {
			return g.errorf(f+".node", "%v", err)
		}
		var err error
		if d.NoInterrupts, err = ParseInterrupts(p.Interrupts); err != nil {
			return g.errorf(f+".interrupts", "%v", err)
		}
		for _, e := range g.Passthrough {
			if e.Node == d.Node {
				return g.errorf(f+".node", "%s is listed twice", d.Node)
			}
		}
		g.Passthrough = append(g.Passthrough, d)
	}
	return nil
}

// decodeMeasured reads measured:.
func (g *Guest) decodeMeasured(y *guestYAML) error {
	switch y.Measured {
	case "":
		g.Measured = MeasuredRecorded
	case MeasuredRequired, MeasuredRecorded:
		g.Measured = y.Measured
	default:
		return g.errorf("measured", "%q: want %s (the guest starts only when every component matches its expected digest) or %s (measured when there is a TPM, started whatever the digests)", y.Measured, MeasuredRequired, MeasuredRecorded)
	}
	return nil
}

func validName(s string) bool {
	if len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 500ms or 10s", s)
	}
	return d, nil
}

func parseMAC(s string) ([]byte, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 6 {
		return nil, fmt.Errorf("%q: want six hex bytes separated by colons", s)
	}
	mac := make([]byte, 6)
	for i, p := range parts {
		b, err := strconv.ParseUint(p, 16, 8)
		if err != nil || len(p) != 2 {
			return nil, fmt.Errorf("%q: want six hex bytes separated by colons", s)
		}
		mac[i] = byte(b)
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Errorf("%q: a multicast address cannot be a NIC's", s)
	}
	return mac, nil
}

// checkSocketPort checks a vsock.forward or vsock.host entry (field fld):
// a socket path, what says which, and a port.
func (g *Guest) checkSocketPort(fld, socket string, port int64, what string) error {
	if socket == "" {
		return g.errorf(fld, "missing socket: give %s", what)
	}
	if port < 0 || port > 0xffffffff {
		return g.errorf(fld+".port", "%d: not a vsock port", port)
	}
	return nil
}
