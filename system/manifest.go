// Package system is the supervisor of a Tandem board: it reads the system
// manifest (system.yaml), checks it against the host, starts one `tandem
// vmm` process per guest in dependency order, restarts guests by policy,
// watches them, and routes the inter-VM channel (vsock) between them.
package system

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/tandem-hv/tandem/strictyaml"
	"github.com/tandem-hv/tandem/vmm"
)

// Roles a guest can have. The control role is the safety-relevant guest:
// it may ask for real-time priority and is started before the others.
const (
	RoleControl      = "control"
	RoleInfotainment = "infotainment"
)

// Measurement policies (measured:).
const (
	// MeasuredRequired: the guest does not start unless each of its
	// components matches its expected digest and was extended into the
	// TPM.
	MeasuredRequired = "required"
	// MeasuredRecorded, the default: the guest is measured when there is
	// a TPM, and starts whatever the digests.
	MeasuredRecorded = "recorded"
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
	MinGuestCID = 3
	MaxGuestCID = 0xfffffffe
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
	// VMMUser is who the VMMs run as (privileges.go): a user name, or
	// UID:GID, or root; empty for DefaultVMMUser where the host has it.
	VMMUser string
	// Guests in the order the manifest lists them.
	Guests []*Guest

	// DevDisk is the directory holding by-label and by-partuuid; tests
	// point it at a fake tree. Empty means /dev/disk.
	DevDisk string

	lines map[string]int // "guests[1].host-cpus" → line, for errors
}

// Guest is one guest of the manifest.
type Guest struct {
	Name   string
	Role   string
	Kernel string // absolute, or relative to the working directory
	// KernelFormat and LoadAddress say how a kernel without a header is
	// loaded (kernel-format: raw, load-address:).
	KernelFormat vmm.KernelFormat
	LoadAddress  uint64
	Initrd       string
	// Firmware, in place of Kernel, is what an arm64 guest starts in
	// (U-Boot's qemu_arm64 u-boot.bin), booting from its disks.
	Firmware string
	// Cmdline is the kernel command line: as given, empty included, or
	// the default console when the guest has no cmdline: at all.
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
	Nets       []vmm.Net
	Vsock      *Vsock
	// Display gives the guest a virtio-gpu display of this size with a
	// keyboard and a touch screen; nil: none.
	Display *vmm.Display
	// BoardDisplay shows the display's scanout on the board's own
	// display (the host's framebuffer, BoardFramebuffer); at most one
	// guest, never the control guest.
	BoardDisplay bool
	Restart      Restart
	Watchdog     Watchdog
	After        []string
	// Passthrough are host device tree nodes handed to the guest.
	Passthrough []HostDevice
	// Measured is MeasuredRequired or MeasuredRecorded: whether the
	// guest starts only when its measurements match the expected ones.
	Measured string
	// VTPM gives the guest a TPM 2.0 of its own, backed by a software
	// TPM the supervisor runs for it, whose state is kept under the
	// supervisor's state directory across the guest's restarts.
	VTPM bool
	// NoPMU and NoSVE (pmu: false, sve: false) take from an arm64 guest
	// the PMU and SVE it gets where the host's KVM offers them.
	NoPMU, NoSVE bool

	index    int
	manifest *Manifest
	rawAllow []string // vsock.allow as written, resolved by validate
	// kernelName and initrdName are the files as the manifest names
	// them, which name them in the measurements; entry is the guest's
	// entry of the manifest, as measured (KindManifest).
	kernelName, initrdName, firmwareName string
	entry                                []byte
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

// Watchdog gives a guest a watchdog device (vmm.Watchdog: an SP805 on ARM,
// an ACPI WDAT watchdog on x86) and restarts the guest, by its restart
// policy, when the guest stops pinging it: its VMM ends with the exit
// status vmm.ExitWatchdog.
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
	m := &Manifest{Path: path, ControlSocket: y.ControlSocket, VMMUser: y.VMMUser, lines: map[string]int{}}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		indexLines(&root, "", m.lines)
	}
	entries := guestEntries(&root)
	if len(y.Guests) == 0 {
		return nil, m.errorf("guests", "", "no guests: list at least one under guests:")
	}
	for i := range y.Guests {
		g, err := m.decodeGuest(i, &y.Guests[i])
		if err != nil {
			return nil, err
		}
		if i < len(entries) {
			g.entry = entries[i]
		}
		m.Guests = append(m.Guests, g)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// line finds the line of field, falling back to its parents.
func (m *Manifest) line(field string) int {
	return strictyaml.Nearest(field, func(f string) int { return m.lines[f] })
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
		add(g.Firmware)
		for _, d := range g.Disks {
			add(d.Path)
		}
	}
	return out
}

// Errorf returns an error located at one of the guest's fields, as the
// manifest's own checks make them (`system.yaml:4: guest "control":
// kernel: ...`), for the checks of callers that know more (the image
// builder knows the board's host).
func (g *Guest) Errorf(field, format string, args ...any) error {
	return g.errorf(field, format, args...)
}
