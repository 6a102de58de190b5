// Package system is the supervisor of a Tandem board: it reads the system
// manifest (system.yaml), checks it against the host, starts one `tandem
// vmm` process per guest in dependency order, restarts guests by policy,
// watches them, and routes the inter-VM channel (vsock) between them.
package system

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/fsx"
	"github.com/tandem-hv/tandem/hv"
	"github.com/tandem-hv/tandem/internal/strictyaml"
)

// Roles a guest can have. The control role is the safety-relevant guest:
// it may ask for real-time priority and is started before the others.
const (
	RoleControl      = "control"
	RoleInfotainment = "infotainment"
)

// Restart policies.
const (
	RestartNever     = "never"
	RestartOnFailure = "on-failure" // any end but a power-off
	RestartAlways    = "always"
)

// Vsock addresses (virtio spec §5.10.4 and linux/vm_sockets.h): CIDs 0-2
// are reserved (2 is the host), guests take 3 and up. The top of the
// 32-bit CID space is reserved too (VMADDR_CID_ANY is 0xffffffff).
const (
	HostCID     = 2
	minGuestCID = 3
	maxGuestCID = 0xfffffffe
)

// Defaults of a guest's fields left out of the manifest.
const (
	defaultCPUs        = 1
	defaultMemory      = "512M"
	defaultCmdline     = "console=ttyS0"
	defaultBackoff     = 200 * time.Millisecond
	maxRTPriority      = 99 // SCHED_FIFO's range on Linux is 1-99
	defaultDevDiskRoot = "/dev/disk"
)

// Manifest is a decoded, validated system.yaml.
type Manifest struct {
	// Path is the manifest file; relative paths in it are taken from
	// its directory.
	Path string
	// ControlSocket is where the supervisor serves `tandem ps` and
	// friends; empty means DefaultControlSocket.
	ControlSocket string
	// Guests in the order the manifest lists them.
	Guests []*Guest

	// DevDisk is the directory holding by-label and by-partuuid; tests
	// point it at a fake tree. Empty means /dev/disk.
	DevDisk string

	lines map[string]int // "guests[1].host-cpus" → line, for errors
}

// Guest is one guest of the manifest.
type Guest struct {
	Name    string
	Role    string
	Kernel  string // absolute, or relative to the working directory
	Initrd  string
	Cmdline string
	CPUs    int
	Memory  uint64
	// HostCPUs are host cores dedicated to this guest's vCPU threads;
	// no other guest may list them. Empty: the guest floats.
	HostCPUs []int
	// RTPriority is the SCHED_FIFO priority of the vCPU threads (1-99;
	// 0: normal scheduling). Only a control guest may have one.
	RTPriority int
	LockMemory bool
	HugePages  bool
	Disks      []Disk
	Nets       []hv.Net
	Vsock      *Vsock
	Restart    Restart
	Watchdog   Watchdog
	After      []string
	// Passthrough are host device tree nodes handed to the guest.
	Passthrough []HostDevice

	index    int
	manifest *Manifest
	rawAllow []string // vsock.allow as written, resolved by validate
}

// Disk is a guest disk: a file, or a host partition found by its label
// or GPT partition UUID under /dev/disk/by-label or by-partuuid.
type Disk struct {
	Path     string
	Label    string
	PartUUID string
	ReadOnly bool
}

// Vsock is a guest's place on the inter-VM channel.
type Vsock struct {
	CID uint32
	// Allow lists the peers this guest may connect to. Anything else is
	// refused with an RST.
	Allow []Endpoint
	// Forward exposes guest ports as host UNIX sockets.
	Forward []Forward
	// Host are the host's services this guest reaches at CID 2, each a
	// host UNIX socket (a logger, a diagnostics or telemetry sink). Its
	// port must be on the allow-list too.
	Host []HostService
}

// HostService is a host port a guest connects to (CID 2), served by
// whatever listens on Socket.
type HostService struct {
	Port   uint32 // port the guest dials at CID 2
	Socket string // host path
}

// HostService returns the host service on port, or nil.
func (v *Vsock) HostService(port uint32) *HostService {
	if v == nil {
		return nil
	}
	for i := range v.Host {
		if v.Host[i].Port == port {
			return &v.Host[i]
		}
	}
	return nil
}

// Endpoint is a peer a guest may connect to: a CID and a port, where
// AnyPort allows every port of that CID.
type Endpoint struct {
	CID  uint32
	Port uint32
	Any  bool // every port
}

// AnyPort is the port wildcard in an allow entry ("4:*").
const AnyPort = "*"

func (e Endpoint) String() string {
	if e.Any {
		return fmt.Sprintf("%d:*", e.CID)
	}
	return fmt.Sprintf("%d:%d", e.CID, e.Port)
}

// Allows reports whether a connection to cid:port is on the list.
func (v *Vsock) Allows(cid, port uint32) bool {
	if v == nil {
		return false
	}
	for _, e := range v.Allow {
		if e.CID == cid && (e.Any || e.Port == port) {
			return true
		}
	}
	return false
}

// Forward makes a host UNIX socket whose connections reach a guest port.
type Forward struct {
	Socket string // host path
	Port   uint32 // guest port
}

// Restart is a guest's restart policy.
type Restart struct {
	Policy string // never, on-failure, always
	// Limit is how many restarts in a row are made before the guest is
	// left stopped (0: no limit). A run longer than StableAfter resets
	// the count.
	Limit int
	// Backoff is the delay before the first restart; it doubles with
	// each restart in a row, up to MaxBackoff.
	Backoff     time.Duration
	MaxBackoff  time.Duration
	StableAfter time.Duration
}

// Watchdog gives a guest a watchdog device (hv.Watchdog: an SP805 on ARM,
// an ACPI WDAT watchdog on x86) and restarts the guest, by its restart
// policy, when the guest stops pinging it: its VMM ends with the exit
// status hv.ExitWatchdog.
type Watchdog struct {
	// Timeout is the device's default timeout (the device tree's
	// timeout-sec, the WDAT's Max Count): whole seconds; 0: no watchdog.
	Timeout time.Duration
	// Grace, when above 0, runs the device from power-on, as firmware
	// would leave it, and is how long a started guest has to take it
	// over: a guest whose kernel never drives it is ended after Grace.
	// 0, the default: the device waits, stopped, until the guest's
	// driver starts it (Linux's, when /dev/watchdog is opened), so a
	// guest without a working driver runs unwatched rather than being
	// restarted over and over.
	Grace time.Duration
}

// yaml forms. Every field is decoded strictly (internal/strictyaml):
// an unknown key is an error with file:line.
type manifestYAML struct {
	ControlSocket string      `yaml:"control-socket"`
	Guests        []guestYAML `yaml:"guests"`
}

type guestYAML struct {
	Name       string     `yaml:"name"`
	Role       string     `yaml:"role"`
	Kernel     string     `yaml:"kernel"`
	Initrd     string     `yaml:"initrd"`
	Cmdline    string     `yaml:"cmdline"`
	CPUs       int        `yaml:"cpus"`
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

// ErrManifest marks every error about the manifest's content (as opposed
// to failing to read it).
var ErrManifest = errors.New("invalid manifest")

// manifestError is one problem, located.
type manifestError struct {
	msg string
}

func (e *manifestError) Error() string { return e.msg }
func (e *manifestError) Is(t error) bool {
	return t == ErrManifest
}

// LoadManifest reads, decodes and validates a manifest. It checks
// everything that does not depend on the machine it runs on — fields,
// names, CIDs, dependencies, dedicated cores overlapping, files existing
// — so an image builder can call it; CheckHost adds the host's facts.
// Every error names the file and line, the guest and the field.
func LoadManifest(path string) (*Manifest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return ParseManifest(path, data)
}

// ParseManifest is LoadManifest on data already read; path names it in
// errors and anchors relative paths.
func ParseManifest(path string, data []byte) (*Manifest, error) {
	var y manifestYAML
	if err := strictyaml.Decode(path, data, &y); err != nil {
		return nil, &manifestError{err.Error()}
	}
	m := &Manifest{Path: path, ControlSocket: y.ControlSocket, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		indexLines(&root, "", m.lines)
	}
	if len(y.Guests) == 0 {
		return nil, m.errorf("guests", "", "no guests: list at least one under guests:")
	}
	for i := range y.Guests {
		g, err := m.decodeGuest(i, &y.Guests[i])
		if err != nil {
			return nil, err
		}
		m.Guests = append(m.Guests, g)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
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

// line finds the line of field, falling back to its parents.
func (m *Manifest) line(field string) int {
	for p := field; p != ""; {
		if l, ok := m.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// errorf makes an error located at field (a path such as
// "guests[1].host-cpus"), naming the guest when there is one.
func (m *Manifest) errorf(field, guest, format string, args ...any) error {
	loc := m.Path
	if l := m.line(field); l > 0 {
		loc = fmt.Sprintf("%s:%d", m.Path, l)
	}
	short := field
	if i := strings.Index(field, "]."); i >= 0 && strings.HasPrefix(field, "guests[") {
		short = field[i+2:]
	}
	who := ""
	if guest != "" {
		who = fmt.Sprintf("guest %q: ", guest)
	}
	return &manifestError{fmt.Sprintf("%s: %s%s: %s", loc, who, short, fmt.Sprintf(format, args...))}
}

func (g *Guest) errorf(field, format string, args ...any) error {
	name := g.Name
	if name == "" {
		name = fmt.Sprintf("#%d", g.index+1)
	}
	return g.manifest.errorf(fmt.Sprintf("guests[%d].%s", g.index, field), name, format, args...)
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
		Name: y.Name, Role: y.Role, Kernel: m.rel(y.Kernel), Initrd: m.rel(y.Initrd),
		Cmdline: y.Cmdline, CPUs: y.CPUs, HostCPUs: y.HostCPUs, RTPriority: y.RTPriority,
		LockMemory: y.LockMemory, HugePages: y.HugePages, After: y.After,
		index: i, manifest: m,
	}
	for _, decode := range []func(*guestYAML) error{
		g.decodeBasics,
		g.decodeMemory,
		g.decodeScheduling,
		g.decodeDisks,
		g.decodeNets,
		g.decodeVsock,
		g.decodeRestart,
		g.decodeWatchdog,
		g.decodePassthrough,
	} {
		if err := decode(y); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// decodeBasics checks the name and the kernel, and defaults cpus and
// cmdline.
func (g *Guest) decodeBasics(*guestYAML) error {
	if g.Name == "" {
		return g.errorf("name", "missing: every guest needs a name")
	}
	if !validName(g.Name) {
		return g.errorf("name", "%q: use letters, digits, '-' and '_' only (it names sockets and log lines)", g.Name)
	}
	if g.Kernel == "" {
		return g.errorf("kernel", "missing: give the guest kernel's path")
	}
	if g.CPUs == 0 {
		g.CPUs = defaultCPUs
	}
	if g.CPUs < 0 || g.CPUs > hv.MaxCPUs {
		return g.errorf("cpus", "%d: must be between 1 and %d", g.CPUs, hv.MaxCPUs)
	}
	if g.Cmdline == "" {
		g.Cmdline = defaultCmdline
	}
	return nil
}

// decodeMemory reads memory:, defaulting it.
func (g *Guest) decodeMemory(y *guestYAML) error {
	ms := y.Memory
	if ms == "" {
		ms = defaultMemory
	}
	var err error
	if g.Memory, err = hv.ParseSize(ms); err != nil {
		return g.errorf("memory", "%v", err)
	}
	if g.Memory < hv.MinMemory || g.Memory%(2<<20) != 0 {
		return g.errorf("memory", "%s: must be a multiple of 2M and at least %s", ms, hv.FormatSize(hv.MinMemory))
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
		nt := hv.Net{TAP: n.TAP}
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
	if v.CID < minGuestCID || v.CID > maxGuestCID {
		return g.errorf("vsock.cid", "%d: guest CIDs are %d to %d (0-2 are reserved, 2 is the host)", v.CID, minGuestCID, uint32(maxGuestCID))
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
	if t := g.Watchdog.Timeout; t%time.Second != 0 || t > hv.MaxWatchdogTimeout {
		return g.errorf("watchdog.timeout", "%v: want whole seconds up to %v, as the guest's watchdog driver counts", t, hv.MaxWatchdogTimeout)
	}
	if w.Grace != "" {
		if g.Watchdog.Grace, err = parseDuration(w.Grace); err != nil || g.Watchdog.Grace > hv.MaxWatchdogTimeout {
			if err == nil {
				err = fmt.Errorf("at most %v", hv.MaxWatchdogTimeout)
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

// validate checks what involves several guests, and the files.
func (m *Manifest) validate() error {
	byName := map[string]*Guest{}
	byCID := map[uint32]*Guest{}
	coreOwner := map[int]*Guest{}
	sockets := map[string]*Guest{}
	for _, g := range m.Guests {
		if o := byName[g.Name]; o != nil {
			return g.errorf("name", "duplicate: guest #%d (line %d) has the same name", o.index+1, m.line(fmt.Sprintf("guests[%d].name", o.index)))
		}
		byName[g.Name] = g
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

// checkFiles checks that the kernel, initrd and disk files exist.
func (g *Guest) checkFiles() error {
	for _, f := range []struct{ field, path string }{{"kernel", g.Kernel}, {"initrd", g.Initrd}} {
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

// StartOrder returns the guests in an order that starts each after the
// guests it names in after:, control guests first among equals. A cycle
// is an error naming the guests on it.
func (m *Manifest) StartOrder() ([]*Guest, error) {
	byName := map[string]*Guest{}
	for _, g := range m.Guests {
		byName[g.Name] = g
	}
	// Kahn's algorithm, picking among ready guests by (control first,
	// manifest order) so the order is stable.
	indeg := map[*Guest]int{}
	next := map[*Guest][]*Guest{}
	for _, g := range m.Guests {
		for _, a := range g.After {
			if p := byName[a]; p != nil {
				indeg[g]++
				next[p] = append(next[p], g)
			}
		}
	}
	var ready, order []*Guest
	for _, g := range m.Guests {
		if indeg[g] == 0 {
			ready = append(ready, g)
		}
	}
	for len(ready) > 0 {
		sort.SliceStable(ready, func(i, j int) bool {
			ci, cj := ready[i].Role == RoleControl, ready[j].Role == RoleControl
			if ci != cj {
				return ci
			}
			return ready[i].index < ready[j].index
		})
		g := ready[0]
		ready = ready[1:]
		order = append(order, g)
		for _, n := range next[g] {
			indeg[n]--
			if indeg[n] == 0 {
				ready = append(ready, n)
			}
		}
	}
	if len(order) < len(m.Guests) {
		var cyc []string
		var first *Guest
		for _, g := range m.Guests {
			if indeg[g] > 0 {
				cyc = append(cyc, g.Name)
				if first == nil {
					first = g
				}
			}
		}
		return nil, first.errorf("after", "dependency cycle among %s: no guest of them can start first", strings.Join(cyc, ", "))
	}
	return order, nil
}

// Guest returns the named guest, or nil.
func (m *Manifest) Guest(name string) *Guest {
	for _, g := range m.Guests {
		if g.Name == name {
			return g
		}
	}
	return nil
}

// Files returns every host file the manifest references — kernels,
// initrds, disk image files — once each, in manifest order, as paths
// usable from the working directory. Host partitions (label, partuuid)
// and sockets are not files to pack and are left out.
func (m *Manifest) Files() []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, g := range m.Guests {
		add(g.Kernel)
		add(g.Initrd)
		for _, d := range g.Disks {
			add(d.Path)
		}
	}
	return out
}

// resolveDisk finds a disk's host path: its file, or the partition its
// label or partuuid names under /dev/disk.
func (g *Guest) resolveDisk(j int, d Disk) (string, error) {
	if d.Path != "" {
		return d.Path, nil
	}
	root := g.manifest.DevDisk
	if root == "" {
		root = defaultDevDiskRoot
	}
	dir, key, field := "by-label", d.Label, "label"
	if d.PartUUID != "" {
		dir, key, field = "by-partuuid", strings.ToLower(d.PartUUID), "partuuid"
	}
	link := filepath.Join(root, dir, key)
	p, err := filepath.EvalSymlinks(link)
	if err != nil {
		return "", g.errorf(fmt.Sprintf("disks[%d].%s", j, field), "%s: no such partition on this host (%s: %v)", key, link, fsx.UnwrapPathError(err))
	}
	return p, nil
}

// Config returns the VMM configuration of this guest: paths resolved,
// host partitions found, host devices to pass through resolved against
// the host's device tree, vCPU placement and priority set. The vsock
// device's host side is left for the VMM to attach.
func (g *Guest) Config() (hv.Config, error) {
	cfg := hv.Config{
		Name: g.Name, Kernel: g.Kernel, Initrd: g.Initrd, Cmdline: g.Cmdline,
		CPUs: g.CPUs, Memory: g.Memory, Nets: g.Nets,
		Lock: g.LockMemory, HugePages: g.HugePages,
		VCPUAffinity: slices.Clone(g.HostCPUs), RTPriority: g.RTPriority,
	}
	for j, d := range g.Disks {
		p, err := g.resolveDisk(j, d)
		if err != nil {
			return hv.Config{}, err
		}
		cfg.Disks = append(cfg.Disks, hv.Disk{Path: p, ReadOnly: d.ReadOnly})
	}
	if g.Vsock != nil {
		cfg.Vsock = &hv.Vsock{CID: g.Vsock.CID}
	}
	var err error
	if cfg.Passthrough, err = ResolvePassthrough(g.Passthrough); err != nil {
		return hv.Config{}, fmt.Errorf("guest %s: passing host devices through: %w", g.Name, err)
	}
	if g.Watchdog.Timeout > 0 {
		cfg.Watchdog = &hv.Watchdog{Timeout: g.Watchdog.Timeout, Boot: g.Watchdog.Grace}
	}
	return cfg, nil
}
