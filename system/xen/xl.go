package xen

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tandem-hv/tandem/vmm"
)

// XLOptions adjusts an xl import.
type XLOptions struct {
	// Role is the guest's role in system.yaml (control, infotainment);
	// xl has no such notion. Empty leaves it out.
	Role string
}

// Result is a converted manifest and what did not convert exactly.
type Result struct {
	Manifest *Manifest
	Warnings []Warning
}

// xlHandled are the keys ImportXL converts; the notes below cover the
// rest. Keys in neither are reported as unknown to xl.cfg(5).
var xlHandled = map[string]bool{
	"name": true, "type": true, "builder": true, "kernel": true, "ramdisk": true,
	"cmdline": true, "root": true, "extra": true, "memory": true, "maxmem": true,
	"vcpus": true, "maxvcpus": true, "cpus": true, "disk": true, "vif": true,
	"on_poweroff": true, "on_reboot": true, "on_crash": true,
}

// xlNoEquivalent explains, for keys of xl.cfg(5) that have no Tandem
// equivalent, what happens instead. The key is left out of the manifest.
var xlNoEquivalent = map[string]string{
	// Passthrough: the guest would lose a device.
	"pci":              "PCI passthrough is not supported by import: the guest will not see the device",
	"dtdev":            "device tree passthrough is not supported by import: the guest will not see the device",
	"iomem":            "MMIO passthrough is not supported by import: the guest will not see the memory range",
	"irqs":             "interrupt passthrough is not supported by import: the guest will not get the interrupts",
	"ioports":          "I/O port passthrough is not supported by import: the guest will not see the ports",
	"device_tree":      "partial device tree for passthrough is not supported by import: Tandem generates the guest's device tree",
	"usbdev":           "USB passthrough is not supported by import",
	"usbctrl":          "USB controllers are not supported by import",
	"gfx_passthru":     "graphics passthrough is not supported by import",
	"rdm":              "reserved device memory applies to passthrough, which import does not support",
	"pci_permissive":   "PCI passthrough is not supported by import",
	"pci_msitranslate": "PCI passthrough is not supported by import",
	"pci_seize":        "PCI passthrough is not supported by import",
	"pci_power_mgmt":   "PCI passthrough is not supported by import",
	// Boot.
	"bootloader":      "Tandem boots a kernel directly: set kernel= (and ramdisk=) to files taken from the guest's disk",
	"bootloader_args": "Tandem boots a kernel directly; no bootloader runs",
	"firmware":        "Tandem boots a kernel directly, without firmware (no BIOS, UEFI or pvgrub)",
	"bios":            "Tandem boots a kernel directly, without BIOS",
	"boot":            "Tandem boots a kernel directly: there is no boot device order",
	"pvshim":          "no PV shim: Tandem guests are KVM guests",
	// Scheduling and memory placement.
	"pool":          "no CPU pools: use host-cpus to give the guest its own cores",
	"cpus_soft":     "no soft affinity: a guest is pinned (host-cpus) or floats on every core",
	"cpu_weight":    "no scheduler weights: the vCPUs are ordinary Linux threads; a control guest can use rt-priority",
	"cap":           "no CPU cap: the vCPUs are ordinary Linux threads; cap them with a cgroup on the host",
	"vnuma":         "no virtual NUMA: the guest sees one memory node",
	"shadow_memory": "no shadow paging: KVM uses the hardware's two-stage translation",
	// Devices with no Tandem model.
	"vfb":       "no graphical console: the guest has a serial console (tandem console NAME)",
	"vnc":       "no graphical console: the guest has a serial console (tandem console NAME)",
	"sdl":       "no graphical console: the guest has a serial console (tandem console NAME)",
	"vkb":       "no virtual keyboard: the guest has a serial console",
	"vtpm":      "no virtual TPM",
	"p9":        "no 9pfs shares: give the guest a disk image instead",
	"pvcalls":   "no PV calls",
	"channel":   "no Xen channels: guests talk over vsock (vsock: in system.yaml)",
	"vdispl":    "no virtual display",
	"vsnd":      "no virtual sound",
	"virtio":    "Tandem's own virtio devices are configured by disks: and nets:",
	"serial":    "the guest gets one console UART; no extra serial devices",
	"vuart":     "an arm64 guest always gets a PL011 UART (ttyAMA0) as its console",
	"soundhw":   "no sound device",
	"usb":       "no USB",
	"usbdevice": "no USB",
	"tee":       "no TEE mediation: the guest cannot reach OP-TEE or FF-A",
	"arm_sci":   "no SCMI forwarding",
	// Identity, security and toolstack.
	"uuid":                       "guests have no UUID in system.yaml",
	"seclabel":                   "no XSM labels: the VMM of each guest is a separate host process",
	"init_seclabel":              "no XSM labels",
	"driver_domain":              "no driver domains: device backends run in each guest's VMM process",
	"max_grant_frames":           "no grant tables: guests share nothing but what vsock carries",
	"max_maptrack_frames":        "no grant tables",
	"max_grant_version":          "no grant tables",
	"max_event_channels":         "no event channels",
	"nomigrate":                  "no migration",
	"on_watchdog":                "Xen's watchdog has no equivalent; system.yaml's watchdog: restarts a silent guest",
	"on_soft_reset":              "no soft reset",
	"gic_version":                "the guest gets a virtual GIC of the host's kind (v3, or v2 on GICv2 hosts)",
	"nr_spis":                    "the VMM sizes the guest's interrupt controller itself",
	"sve":                        "SVE is not configured per guest",
	"llc_colors":                 "no cache colouring",
	"trap_unmapped_accesses":     "an access to unmapped memory reads zeros and is logged",
	"passthrough":                "IOMMU passthrough is not supported by import",
	"vpmu":                       "no virtual PMU",
	"xenstore_feature_mask":      "no xenstore",
	"xenstore_quota":             "no xenstore",
	"xend_suspend_evtchn_compat": "no xend",
	"vmtrace_buf_kb":             "no processor trace",
	"e820_host":                  "the VMM writes the guest's memory map",
	"localtime":                  "the guest's RTC runs in UTC",
	"rtc_timeoffset":             "the guest's RTC has no offset",
	"tsc_mode":                   "TSC handling is KVM's",
	"cpuid":                      "CPUID is the VMM's",
	"msr_relaxed":                "MSR handling is KVM's",
	"mca_caps":                   "no machine check injection",
	"altp2m":                     "no alternate p2m",
	"nestedhvm":                  "no nested virtualisation in guests",
	"viridian":                   "no Hyper-V enlightenments",
	"acpi":                       "x86 guests always get ACPI tables; arm64 guests a device tree",
	"apic":                       "x86 guests always get an APIC",
	"hap":                        "KVM always uses hardware-assisted paging",
	"device_model_version":       "no QEMU device model: the VMM's devices are built in",
	"device_model_override":      "no QEMU device model",
	"device_model_args":          "no QEMU device model",
	"device_model_user":          "no QEMU device model",
	"stdvga":                     "no VGA",
	"vga":                        "no VGA",
	"videoram":                   "no VGA",
	"nographic":                  "the guest has no display in any case",
	"keymap":                     "no graphical console",
	"spice":                      "no graphical console",
	"xen_platform_pci":           "no Xen platform device",
}

// xlActions maps on_* actions (xl.cfg(5), "Event Actions") to whether
// the domain comes back.
var xlActions = map[string]bool{
	"destroy": false, "preserve": false, "coredump-destroy": false,
	"restart": true, "rename-restart": true, "coredump-restart": true,
	"soft-reset": true,
}

// xlImport is one ImportXL run.
type xlImport struct {
	cfg  *XLConfig
	g    *Guest
	warn []Warning
}

func (x *xlImport) warnf(s *Setting, key, format string, args ...any) {
	w := Warning{File: x.cfg.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	if s != nil {
		w.Line = s.Line
	}
	x.warn = append(x.warn, w)
}

func (x *xlImport) errorf(s *Setting, key, format string, args ...any) error {
	e := &Error{File: x.cfg.File, Key: key, Msg: fmt.Sprintf(format, args...)}
	if s != nil {
		e.Line = s.Line
	}
	return e
}

// str returns a key's value as a string; a list is an error.
func (x *xlImport) str(key string) (string, *Setting, error) {
	s := x.cfg.Get(key)
	if s == nil {
		return "", nil, nil
	}
	if s.Value.IsList {
		return "", s, x.errorf(s, key, "a list, want a single value: %s = \"...\"", key)
	}
	return s.Value.Atom, s, nil
}

// num returns a key's value as a number, as xl reads it.
func (x *xlImport) num(key, unit string) (int64, *Setting, error) {
	v, s, err := x.str(key)
	if s == nil || err != nil {
		return 0, s, err
	}
	n, ok := parseXLNumber(v)
	if !ok {
		return 0, s, x.errorf(s, key, "%s is not a number: give %s, e.g. %s = %s", s.Value, unit, key, exampleOf(key))
	}
	return n, s, nil
}

func exampleOf(key string) string {
	switch key {
	case "memory", "maxmem":
		return "512"
	}
	return "2"
}

// ImportXL converts an xl.cfg(5) guest file into a one-guest manifest.
// file names the input in errors and warnings.
func ImportXL(file string, data []byte, opt XLOptions) (*Result, error) {
	cfg, err := ParseXL(file, data)
	if err != nil {
		return nil, err
	}
	x := &xlImport{cfg: cfg, g: &Guest{Role: opt.Role}}
	for _, r := range cfg.Repeated {
		x.warnf(r, r.Key, "set again on line %d, which wins (as in xl)", cfg.Get(r.Key).Line)
	}
	for _, step := range []func() error{
		x.name, x.guestType, x.kernel, x.cmdline, x.memory, x.vcpus,
		x.pinning, x.disks, x.nets, x.restart, x.otherKeys,
	} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	m := &Manifest{Source: file, Format: "xl.cfg", Guests: []*Guest{x.g}}
	return &Result{Manifest: m, Warnings: x.warn}, nil
}

func (x *xlImport) name() error {
	v, s, err := x.str("name")
	if err != nil {
		return err
	}
	if s == nil || v == "" {
		return x.errorf(s, "name", "missing: xl.cfg(5) requires name = \"...\"; it names the guest in system.yaml")
	}
	n, changed := guestName(v)
	if n == "" {
		return x.errorf(s, "name", "%q has no letter or digit to name a guest with: rename it", v)
	}
	if changed {
		x.warnf(s, "name", "%q is written %q: system.yaml names use letters, digits, - and _ (at most %d)", v, n, maxNameLen)
	}
	x.g.Name = n
	return nil
}

// maxNameLen is system.yaml's limit on guest names (system/manifest.go).
const maxNameLen = 32

// guestName makes s a valid system.yaml guest name.
func guestName(s string) (string, bool) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	n := strings.Trim(b.String(), "-")
	if len(n) > maxNameLen {
		n = n[:maxNameLen]
	}
	if strings.Trim(n, "-_") == "" {
		return "", true
	}
	return n, n != s
}

func (x *xlImport) guestType() error {
	t, ts, err := x.str("type")
	if err != nil {
		return err
	}
	b, bs, err := x.str("builder")
	if err != nil {
		return err
	}
	key, s := "type", ts
	switch {
	case ts != nil:
		if bs != nil {
			x.warnf(bs, "builder", "ignored in favour of type= (builder is deprecated)")
		}
	case bs != nil:
		key, s = "builder", bs
		switch b {
		case "generic":
			t = "pv"
		case "hvm":
			t = "hvm"
		default:
			return x.errorf(bs, "builder", "%q: want \"generic\" or \"hvm\" (or write type = \"pvh\")", b)
		}
	default:
		return nil
	}
	switch t {
	case "pvh":
	case "pv":
		x.warnf(s, key, "%q: Tandem runs the kernel as a hardware-virtualised (KVM) guest, not paravirtualised; it needs virtio drivers (virtio-blk, virtio-net, virtio-console) instead of Xen's PV frontends", t)
	case "hvm":
		x.warnf(s, key, "%q: Tandem has no firmware and no emulated PC devices (IDE, e1000, VGA): the guest boots its kernel directly and sees virtio devices", t)
	default:
		return x.errorf(s, key, "%q: unknown guest type: want \"pvh\" (on ARM, the only kind), \"pv\" or \"hvm\"", t)
	}
	return nil
}

func (x *xlImport) kernel() error {
	k, ks, err := x.str("kernel")
	if err != nil {
		return err
	}
	if ks == nil || k == "" {
		how := "add kernel = \"/path/to/vmlinuz\""
		if s := x.cfg.Get("bootloader"); s != nil {
			how = fmt.Sprintf("bootloader = %s cannot run under Tandem: copy the kernel (and initrd) out of the guest's disk and set kernel = (and ramdisk =)", s.Value)
		} else if s := x.cfg.Get("firmware"); s != nil {
			how = fmt.Sprintf("firmware = %s cannot run under Tandem: set kernel = to the guest's kernel", s.Value)
		}
		return x.errorf(ks, "kernel", "missing: Tandem boots a kernel directly; %s", how)
	}
	x.g.Kernel = x.path(ks, "kernel", k)
	r, rs, err := x.str("ramdisk")
	if err != nil {
		return err
	}
	if r != "" {
		x.g.Initrd = x.path(rs, "ramdisk", r)
	}
	return nil
}

// path keeps a file path as written, saying where a relative one will be
// looked for.
func (x *xlImport) path(s *Setting, key, p string) string {
	if !filepath.IsAbs(p) {
		x.warnf(s, key, "%q is relative: system.yaml takes it from the manifest's directory, xl from the directory it ran in", p)
	}
	return p
}

func (x *xlImport) cmdline() error {
	c, cs, err := x.str("cmdline")
	if err != nil {
		return err
	}
	root, rs, err := x.str("root")
	if err != nil {
		return err
	}
	extra, es, err := x.str("extra")
	if err != nil {
		return err
	}
	// As xl's parse_cmdline (tools/xl/xl_parse.c): cmdline wins over
	// root and extra, which otherwise make "root=ROOT EXTRA".
	switch {
	case cs != nil:
		for _, s := range []*Setting{rs, es} {
			if s != nil {
				x.warnf(s, s.Key, "ignored in favour of cmdline= (as xl does)")
			}
		}
	case rs != nil && es != nil:
		c = "root=" + root + " " + extra
	case rs != nil:
		c = "root=" + root
	case es != nil:
		c = extra
	}
	x.g.Cmdline = strings.TrimSpace(c)
	// Xen's PV disks are xvdX; Tandem's are virtio-blk, vdX. Each
	// warning names the key the word was written in.
	for _, s := range []*Setting{cs, rs, es} {
		if s == nil || (cs != nil && s != cs) {
			continue
		}
		for _, f := range strings.Fields(s.Value.Atom) {
			if strings.Contains(f, "/dev/xvd") || s.Key == "root" && strings.HasPrefix(f, "xvd") {
				x.warnf(s, s.Key, "%q: the guest sees its disks as /dev/vda, /dev/vdb, ... in disk order: write %s", f, strings.Replace(f, "xvd", "vd", 1))
			}
			if f == "console=hvc0" {
				x.warnf(s, s.Key, "console=hvc0 is Xen's PV console here; under Tandem hvc0 is the virtio console (the guest needs CONFIG_VIRTIO_CONSOLE), and early messages go to the UART only (console=ttyAMA0 on arm64, ttyS0 on x86)")
			}
		}
	}
	return nil
}

func (x *xlImport) memory() error {
	mem, ms, err := x.num("memory", "the guest's memory in MiB")
	if err != nil {
		return err
	}
	maxm, xs, err := x.num("maxmem", "the guest's maximum memory in MiB")
	if err != nil {
		return err
	}
	if ms == nil && xs == nil {
		return nil // system.yaml's default
	}
	if ms == nil {
		mem, ms = maxm, xs
	}
	key := ms.Key
	if mem <= 0 {
		return x.errorf(ms, key, "%d MiB: give the guest's memory in MiB, e.g. %s = 512", mem, key)
	}
	if xs != nil && xs != ms {
		switch {
		case maxm < mem:
			return x.errorf(xs, "maxmem", "%d MiB is less than memory = %d: xl.cfg(5) requires maxmem >= memory; raise maxmem or drop it", maxm, mem)
		case maxm > mem:
			x.warnf(xs, "maxmem", "no ballooning: the guest gets memory = %d MiB for good, never up to %d MiB", mem, maxm)
		}
	}
	if mem > int64(^uint64(0)>>21) {
		return x.errorf(ms, key, "%d MiB: too large", mem)
	}
	b := uint64(mem) << 20
	if b < vmm.MinMemory {
		return x.errorf(ms, key, "%d MiB: Tandem guests need at least %s; raise %s", mem, vmm.FormatSize(vmm.MinMemory), key)
	}
	const align = 2 << 20 // system.yaml's memory is a multiple of 2M
	if r := b % align; r != 0 {
		b += align - r
		x.warnf(ms, key, "%d MiB rounded up to %s: guest memory is a multiple of 2 MiB", mem, vmm.FormatSize(b))
		x.g.note("memory", "xl: %s = %d", key, mem)
	}
	x.g.Memory = b
	return nil
}

func (x *xlImport) vcpus() error {
	n, s, err := x.num("vcpus", "the number of vCPUs")
	if err != nil {
		return err
	}
	maxn, ms, err := x.num("maxvcpus", "the most vCPUs")
	if err != nil {
		return err
	}
	if s == nil && ms == nil {
		return nil
	}
	if s == nil {
		n, s = maxn, ms
	}
	if n < 1 || n > vmm.MaxCPUs {
		return x.errorf(s, s.Key, "%d: Tandem guests have 1 to %d vCPUs", n, vmm.MaxCPUs)
	}
	if ms != nil && ms != s && maxn != n {
		if maxn < n {
			return x.errorf(ms, "maxvcpus", "%d is less than vcpus = %d: raise maxvcpus or drop it", maxn, n)
		}
		x.warnf(ms, "maxvcpus", "no vCPU hotplug: the guest has vcpus = %d, all online, never up to %d", n, maxn)
	}
	x.g.CPUs = int(n)
	return nil
}

func (x *xlImport) pinning() error {
	s := x.cfg.Get("cpus")
	if s == nil {
		return nil
	}
	var specs []string
	if s.Value.IsList {
		// ["2", "3-8,^5"]: one entry per vCPU.
		for _, e := range s.Value.List {
			if e.IsList {
				return x.errorf(s, "cpus", "nested list %s: give one CPULIST string per vCPU, e.g. [\"2\", \"3\"]", e)
			}
			specs = append(specs, e.Atom)
		}
		if len(specs) == 0 {
			return x.errorf(s, "cpus", "empty list: give host cores, e.g. cpus = \"2-3\", or drop cpus")
		}
	} else {
		specs = []string{s.Value.Atom}
	}
	var cores []int
	all := false
	for _, spec := range specs {
		l, err := parseCPUList(spec)
		if err == errAllExcept {
			x.warnf(s, "cpus", "%q: Tandem cannot exclude cores from a guest that floats; list the cores it may use (e.g. \"2-3\") to pin it. Left floating", spec)
			return nil
		}
		if err != nil {
			return x.errorf(s, "cpus", "%v", err)
		}
		if l.all {
			all = true
			continue
		}
		for _, c := range l.cores {
			// Per-vCPU entries may share cores in xl; the union is
			// what Tandem pins to.
			if !slices.Contains(cores, c) {
				cores = append(cores, c)
			}
		}
	}
	if all {
		if len(cores) > 0 {
			x.warnf(s, "cpus", "some vCPUs may run on \"all\" cores: the guest is left floating, not pinned")
		}
		return nil // floating is Tandem's default
	}
	if len(specs) > 1 {
		x.warnf(s, "cpus", "per-vCPU pinning %s: Tandem pins every vCPU thread to the same set, cores %s", s.Value, joinInts(cores))
	}
	x.warnf(s, "cpus", "host-cpus %s are dedicated to this guest: no other guest in system.yaml may list them (xl pinning does not reserve cores)", joinInts(cores))
	x.g.HostCPUs = cores
	return nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func (x *xlImport) restart() error {
	// xl's defaults (xl.cfg(5), "Event Actions").
	defaults := map[string]string{"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy"}
	back := map[string]bool{}
	var set []*Setting
	for _, key := range []string{"on_poweroff", "on_reboot", "on_crash"} {
		v, s, err := x.str(key)
		if err != nil {
			return err
		}
		if s == nil {
			v = defaults[key]
		} else {
			set = append(set, s)
		}
		r, ok := xlActions[v]
		if !ok {
			return x.errorf(s, key, "%q: unknown action: want destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart or soft-reset", v)
		}
		switch {
		case v == "preserve":
			x.warnf(s, key, "\"preserve\": Tandem does not keep an ended guest for inspection; it is stopped")
		case strings.HasPrefix(v, "coredump-"):
			x.warnf(s, key, "%q: Tandem writes no guest core dump", v)
		case v == "soft-reset":
			x.warnf(s, key, "\"soft-reset\": Tandem restarts the guest from scratch")
		}
		back[key] = r
	}
	// Tandem's policies: never; on-failure (a reset or a crash, not a
	// power-off); always.
	p, c, r := back["on_poweroff"], back["on_crash"], back["on_reboot"]
	var at *Setting
	if len(set) > 0 {
		at = set[len(set)-1]
	}
	switch {
	case p && c && r:
		x.g.Restart = "always"
	case !p && c && r:
		x.g.Restart = "on-failure"
	case !p && !c && !r:
		x.g.Restart = "never"
	case p:
		x.g.Restart = "always"
		x.warnf(at, "on_poweroff", "the guest restarts after a power-off but not after every reboot or crash: Tandem's nearest policy is always, which restarts it after all three")
	case r:
		// xl's default: back after a reboot, gone after a crash.
		x.g.Restart = "on-failure"
		x.warnf(at, "on_crash", "the guest restarts after a reboot but not after a crash (on_crash = destroy%s): Tandem's nearest policy is on-failure, which restarts it after a crash too; set restart.limit to bound that", unlessSet(at))
	default:
		x.g.Restart = "on-failure"
		x.warnf(at, "on_reboot", "the guest restarts after a crash but not after a reboot: Tandem's nearest policy is on-failure, which restarts it after a reboot too")
	}
	x.g.note("restart", "on_poweroff=%s on_reboot=%s on_crash=%s", actionOf(x.cfg, "on_poweroff", defaults), actionOf(x.cfg, "on_reboot", defaults), actionOf(x.cfg, "on_crash", defaults))
	return nil
}

func unlessSet(s *Setting) string {
	if s == nil {
		return ", xl's default"
	}
	return ""
}

func actionOf(cfg *XLConfig, key string, defaults map[string]string) string {
	if s := cfg.Get(key); s != nil {
		return s.Value.Atom
	}
	return defaults[key]
}

func (x *xlImport) otherKeys() error {
	for _, s := range x.cfg.Settings {
		if xlHandled[s.Key] {
			continue
		}
		if why, ok := xlNoEquivalent[s.Key]; ok {
			x.warnf(s, s.Key, "no Tandem equivalent, left out: %s", why)
			continue
		}
		x.warnf(s, s.Key, "not a key Tandem knows from xl.cfg(5): left out (check its spelling)")
	}
	return nil
}
