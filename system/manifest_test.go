package system

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/vmm"
)

// goodManifest is testdata/system.yaml; tests copy it next to stand-in
// guest files so its relative paths resolve.
func goodManifest(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/system.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// guestDir makes a directory with the files testdata/system.yaml names.
func guestDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"control.cpio.gz", "info.cpio.gz", "media.img"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A kernel this host's VMM accepts, for CheckHost.
	if _, err := fakekernel.Write(dir, "vmlinuz"); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeManifest(t testing.TB, dir string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, "system.yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadManifest(t *testing.T) {
	dir := guestDir(t)
	m, err := LoadManifest(writeManifest(t, dir, goodManifest(t)))
	if err != nil {
		t.Fatalf("LoadManifest() = %v, want nil", err)
	}
	if got, want := len(m.Guests), 2; got != want {
		t.Fatalf("len(Guests) = %d, want %d", got, want)
	}
	c, info := m.Guest("control"), m.Guest("infotainment")
	checks := []struct {
		name      string
		got, want any
	}{
		{"control.Kernel", c.Kernel, filepath.Join(dir, "vmlinuz")},
		{"control.Memory", c.Memory, uint64(128 << 20)},
		{"control.HostCPUs", c.HostCPUs, []int{1}},
		{"control.RTPriority", c.RTPriority, 50},
		{"control.Restart.Policy", c.Restart.Policy, RestartAlways},
		{"control.Restart.Backoff", c.Restart.Backoff, 100 * time.Millisecond},
		{"control.Watchdog.Timeout", c.Watchdog.Timeout, 10 * time.Second},
		{"control.Watchdog.Grace", c.Watchdog.Grace, 30 * time.Second},
		{"control.Vsock.Allow", c.Vsock.Allow, []Endpoint{{CID: 4, Port: 5000}}},
		{"control allows 4:5000", c.Vsock.Allows(4, 5000), true},
		{"control allows 4:5001", c.Vsock.Allows(4, 5001), false},
		{"info.CPUs", info.CPUs, 1},
		{"info.Cmdline", info.Cmdline, defaultCmdline},
		{"info.Restart.Limit", info.Restart.Limit, 5},
		{"info.Vsock.Forward", info.Vsock.Forward, []Forward{{Socket: filepath.Join(dir, "info-5000.sock"), Port: 5000}}},
		{"info.Watchdog", info.Watchdog, Watchdog{}},
	}
	for _, tt := range checks {
		if !equal(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	wantFiles := []string{"vmlinuz", "control.cpio.gz", "info.cpio.gz", "media.img"}
	for i := range wantFiles {
		wantFiles[i] = filepath.Join(dir, wantFiles[i])
	}
	if got := m.Files(); !slices.Equal(got, wantFiles) {
		t.Errorf("Files() = %v, want %v", got, wantFiles)
	}
	order, err := m.StartOrder()
	if err != nil || order[0].Name != "control" {
		t.Errorf("StartOrder() = %v, %v, want control first", order, err)
	}
	cfg, err := c.Config()
	if err != nil {
		t.Fatalf("Config() = %v", err)
	}
	if !slices.Equal(cfg.VCPUAffinity, []int{1}) || cfg.RTPriority != 50 || !cfg.Lock || cfg.Vsock == nil || cfg.Vsock.CID != 3 {
		t.Errorf("Config() = %+v, want affinity [1], priority 50, locked, vsock CID 3", cfg)
	}
	if w := cfg.Watchdog; w == nil || *w != (vmm.Watchdog{Timeout: 10 * time.Second, Boot: 30 * time.Second}) {
		t.Errorf("Config().Watchdog = %+v, want a 10s device armed for 30s at power-on", w)
	}
	if cfg, _ := info.Config(); cfg.Watchdog != nil {
		t.Errorf("infotainment Config().Watchdog = %+v, want none", cfg.Watchdog)
	}
}

func equal(a, b any) bool {
	return strings.TrimSpace(fmtAny(a)) == strings.TrimSpace(fmtAny(b))
}

func fmtAny(v any) string { return strings.ReplaceAll(sprint(v), " ", "") }

// TestBadManifests corrupts the good manifest one field at a time: each
// must fail, naming the line, the guest and the field.
// TestManifestCmdlineAndFormat reads a guest's command line as given,
// an empty one included, and the console default only without cmdline:
// at all; and a raw kernel's format and load address, into the VMM's
// configuration.
func TestManifestCmdlineAndFormat(t *testing.T) {
	dir := guestDir(t)
	good := string(goodManifest(t))
	good = strings.Replace(good, "    cmdline: console=ttyS0 quiet\n", "    cmdline: \"\"\n", 1)
	good = strings.Replace(good, "    initrd: info.cpio.gz\n", "    initrd: info.cpio.gz\n    kernel-format: raw\n    load-address: 0x100000\n", 1)
	m, err := LoadManifest(writeManifest(t, dir, []byte(good)))
	if err != nil {
		t.Fatalf("LoadManifest() = %v", err)
	}
	c, info := m.Guest("control"), m.Guest("infotainment")
	cc, err := c.Config()
	if err != nil {
		t.Fatal(err)
	}
	ic, err := info.Config()
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"control.Cmdline", c.Cmdline, ""},
		{"control's VMM command line", *cc.Cmdline, ""},
		{"control.KernelFormat", cc.KernelFormat, vmm.KernelAuto},
		{"info.Cmdline", info.Cmdline, defaultCmdline},
		{"info's VMM command line", *ic.Cmdline, defaultCmdline},
		{"info.KernelFormat", ic.KernelFormat, vmm.KernelRaw},
		{"info.LoadAddress", ic.LoadAddress, uint64(0x100000)},
	}
	for _, tt := range checks {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestManifestFirmware reads a guest that boots from firmware: no
// kernel, the firmware's path resolved from the manifest's directory and
// handed to the VMM, and measured first under its own kind.
func TestManifestFirmware(t *testing.T) {
	dir := guestDir(t)
	good := string(goodManifest(t))
	old := "    kernel: vmlinuz\n    initrd: info.cpio.gz\n"
	if !strings.Contains(good, old) {
		t.Fatalf("test bug: %q not in the good manifest", old)
	}
	good = strings.Replace(good, old, "    firmware: vmlinuz\n", 1)
	m, err := LoadManifest(writeManifest(t, dir, []byte(good)))
	if err != nil {
		t.Fatalf("LoadManifest() = %v", err)
	}
	info := m.Guest("infotainment")
	cfg, err := info.Config()
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "vmlinuz"); cfg.Firmware != want || cfg.Kernel != "" || cfg.Initrd != "" {
		t.Errorf("Config() firmware %q, kernel %q, initrd %q; want firmware %q and neither of the others", cfg.Firmware, cfg.Kernel, cfg.Initrd, want)
	}
	if !slices.Contains(m.Files(), filepath.Join(dir, "vmlinuz")) {
		t.Errorf("Files() = %v, want the firmware among them", m.Files())
	}
	cs, err := info.Components()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 || cs[0].Kind != "firmware" || cs[0].Name != "vmlinuz" {
		t.Errorf("Components()[0] = %+v, want the firmware, named as the manifest names it", cs)
	}
}

func TestBadManifests(t *testing.T) {
	good := string(goodManifest(t))
	tests := []struct {
		name     string
		old, new string // replace old by new in the good manifest
		want     string // substring of the error
	}{
		{"unknown field", "    lock-memory: true", "    lock-memroy: true", `system.yaml:14: unknown field "lock-memroy"`},
		{"wrong type", "    cpus: 1", "    cpus: one", "system.yaml:10: cannot use !!str `one` into int"},
		{"not yaml", "guests:", "guests: [", "system.yaml:"},
		{"no name", "  - name: control\n    role: control\n", "  - role: control\n", `system.yaml:5: guest "#1": name: missing`},
		{"bad name", "name: control", "name: con/trol", `system.yaml:5: guest "con/trol": name: "con/trol": use letters`},
		{"duplicate name", "name: infotainment", "name: control", `system.yaml:24: guest "control": name: duplicate: guest #1 (line 5)`},
		{"missing kernel", "    kernel: vmlinuz\n    initrd: control", "    kernel: nosuch\n    initrd: control", `system.yaml:7: guest "control": kernel: `},
		{"no kernel field", "    kernel: vmlinuz\n    initrd: info", "    initrd: info", `guest "infotainment": kernel: missing`},
		{"missing firmware", "    kernel: vmlinuz\n    initrd: info.cpio.gz\n", "    firmware: u-boot-gone.bin\n", `guest "infotainment": firmware: `},
		{"missing initrd", "initrd: info.cpio.gz", "initrd: gone.gz", `system.yaml:27: guest "infotainment": initrd: `},
		{"missing disk", "path: media.img", "path: gone.img", `system.yaml:30: guest "infotainment": disks[0].path: `},
		{"two disk sources", "path: media.img", "path: media.img\n        label: DATA", `disks[0]: give exactly one of path, label or partuuid`},
		{"bad memory", "memory: 256M", "memory: lots", `system.yaml:28: guest "infotainment": memory: size "lots"`},
		{"small memory", "memory: 256M", "memory: 1M", `guest "infotainment": memory: 1M: must be`},
		{"too many cpus", "    cpus: 1", "    cpus: 1000", `system.yaml:10: guest "control": cpus: 1000`},
		{"no cpus", "    cpus: 1", "    cpus: 0", `system.yaml:10: guest "control": cpus: 0: must be between 1 and 64`},
		{"two control guests", "    role: infotainment", "    role: control", `system.yaml:25: guest "infotainment": role: control: guest "control" (line 6) is the control guest already`},
		{"negative core", "host-cpus: [1]", "host-cpus: [-1]", `system.yaml:12: guest "control": host-cpus[0]: -1`},
		{"core twice", "host-cpus: [1]", "host-cpus: [1, 1]", `host-cpus[1]: core 1 listed twice`},
		{"overlapping cores", "    disks:", "    host-cpus: [0, 1]\n    disks:", `system.yaml:29: guest "infotainment": host-cpus[1]: core 1 is already dedicated to guest "control"`},
		{"rt without control role", "role: control", "role: other", `system.yaml:13: guest "control": rt-priority: only a guest with role: control`},
		{"rt out of range", "rt-priority: 50", "rt-priority: 100", `guest "control": rt-priority: 100`},
		{"rt without cores", "    host-cpus: [1]\n", "", `guest "control": rt-priority: needs host-cpus`},
		{"reserved cid", "cid: 3", "cid: 2", `system.yaml:16: guest "control": vsock.cid: 2`},
		{"duplicate cid", "cid: 4", "cid: 3", `system.yaml:33: guest "infotainment": vsock.cid: 3: duplicate, guest "control"`},
		{"allow unknown guest", `"infotainment:5000"`, `"radio:5000"`, `system.yaml:17: guest "control": vsock.allow[0]: "radio:5000"`},
		{"allow unknown cid", `"infotainment:5000"`, `"9:5000"`, `vsock.allow[0]: "9:5000": no guest has CID 9`},
		{"allow bad port", `"infotainment:5000"`, `"4:http"`, `vsock.allow[0]: "4:http": port`},
		{"allow self", `"infotainment:5000"`, `"3:1"`, `a guest does not connect to itself`},
		{"allow no colon", `"infotainment:5000"`, `"4"`, `want CID:PORT`},
		{"bad policy", "policy: always", "policy: sometimes", `system.yaml:19: guest "control": restart.policy: "sometimes"`},
		{"bad backoff", "backoff: 100ms", "backoff: soon", `system.yaml:20: guest "control": restart.backoff: "soon"`},
		{"negative limit", "limit: 5", "limit: -1", `guest "infotainment": restart.limit: -1`},
		{"watchdog no timeout", "      timeout: 10s\n", "", `guest "control": watchdog.timeout: missing`},
		{"watchdog zero", "timeout: 10s", "timeout: 0s", `watchdog.timeout: must be more than 0`},
		{"watchdog not whole seconds", "timeout: 10s", "timeout: 1500ms", `system.yaml:22: guest "control": watchdog.timeout: 1.5s: want whole seconds`},
		{"watchdog over an hour", "timeout: 10s", "timeout: 2h", `watchdog.timeout: 2h0m0s: want whole seconds up to 1h0m0s`},
		{"watchdog grace over an hour", "grace: 30s", "grace: 2h", `system.yaml:23: guest "control": watchdog.grace: at most 1h0m0s`},
		{"watchdog unknown field", "grace: 30s", "grace: 30s\n      action: reset", `watchdog`},
		{"after unknown", "after: [control]", "after: [radio]", `system.yaml:41: guest "infotainment": after[0]: "radio": no such guest`},
		{"after self", "after: [control]", "after: [infotainment]", `after[0]: a guest cannot start after itself`},
		{"measured unknown", "    lock-memory: true", "    lock-memory: true\n    measured: always", `system.yaml:15: guest "control": measured: "always": want required`},
		{"cycle", "    watchdog:\n      timeout", "    after: [infotainment]\n    watchdog:\n      timeout", `guest "control": after: dependency cycle among control, infotainment`},
		{"bad mac", "    disks:", "    nets:\n      - tap: tap0\n        mac: zz\n    disks:", `guest "infotainment": nets[0].mac: "zz"`},
		{"net without tap", "    disks:", "    nets:\n      - mac: 52:54:00:00:00:01\n    disks:", `nets[0]: missing tap`},
		{"host service no socket", "      cid: 4\n", "      cid: 4\n      host: [{port: 6000}]\n", `system.yaml:34: guest "infotainment": vsock.host[0]: missing socket`},
		{"host service not allowed", "      cid: 4\n", "      cid: 4\n      host: [{port: 6000, socket: log.sock}]\n", `guest "infotainment": vsock.host[0].port: 6000 is not in vsock.allow: add "host:6000"`},
		{"host service twice", "      cid: 4\n", "      cid: 4\n      allow: [\"host:6000\"]\n      host: [{port: 6000, socket: a.sock}, {port: 6000, socket: b.sock}]\n", `vsock.host[1].port: 6000: listed twice`},
		{"forward no socket", "- socket: info-5000.sock", "- socket: \"\"", `vsock.forward[0]: missing socket`},
		{"display without height", "    disks:", "    display: {width: 800}\n    disks:", `system.yaml:29: guest "infotainment": display: give both width and height, or neither for 1280x720`},
		{"display too wide", "    disks:", "    display: {width: 5000, height: 720}\n    disks:", `guest "infotainment": display.width: 5000: want 320 to 3840 pixels`},
		{"display too short", "    disks:", "    display: {width: 800, height: 100}\n    disks:", `display.height: 100: want 200 to 2160 pixels`},
		{"display unknown field", "    disks:", "    display: {spice: 5900}\n    disks:", `unknown field "spice"`},
		{"display vnc not an address", "    disks:", "    display: {vnc: 5900}\n    disks:", `guest "infotainment": display.vnc: "5900": want unix:PATH or tcp:HOST:PORT`},
		{"display vnc on every interface", "    disks:", "    display: {vnc: \"tcp:0.0.0.0:5901\"}\n    disks:", `display.vnc: "tcp:0.0.0.0:5901" listens beyond this host`},
		{"display vnc-allow-remote alone", "    disks:", "    display: {vnc-allow-remote: true}\n    disks:", `display.vnc-allow-remote: no vnc: address to allow`},
		{"board display on the control guest", "    watchdog:\n      timeout", "    display: {board: true}\n    watchdog:\n      timeout", `guest "control": display.board: true on the control guest`},
		{"no guests", good, "guests: []\n", `system.yaml:1: guests: no guests`},
		{"unknown kernel format", "    cmdline: console=ttyS0 quiet", "    kernel-format: uimage", `system.yaml:9: guest "control": kernel-format: "uimage": want auto`},
		{"load address not a number", "    cmdline: console=ttyS0 quiet", "    load-address: high", "system.yaml:9: cannot use !!str `high`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(good, tt.old) {
				t.Fatalf("test bug: %q not in the good manifest", tt.old)
			}
			dir := guestDir(t)
			p := writeManifest(t, dir, []byte(strings.Replace(good, tt.old, tt.new, 1)))
			m, err := LoadManifest(p)
			if err == nil {
				t.Fatalf("LoadManifest() = %v, nil, want an error containing %q", m, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadManifest() = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrManifest) {
				t.Errorf("errors.Is(%v, ErrManifest) = false, want true", err)
			}
		})
	}
}

func TestCheckHost(t *testing.T) {
	good := goodManifest(t)
	tests := []struct {
		name string
		host Host
		edit func(string) string
		want string // "" for no error
	}{
		{"fits", Host{CPUs: []int{0, 1, 2, 3}, Memory: 4 << 30}, nil, ""},
		{"no such core", Host{CPUs: []int{0}, Memory: 4 << 30}, nil, `system.yaml:12: guest "control": host-cpus[0]: core 1: this host has cores 0`},
		{"memory over", Host{CPUs: []int{0, 1, 2, 3}, Memory: 300 << 20}, nil, `system.yaml:28: guest "infotainment": memory: 256M brings the guests' memory to 384M, more than the host's 0.3 GiB`},
		{"every core to one guest", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string { return strings.Replace(s, "[1]", "[0, 1]", 1) },
			`system.yaml:12: guest "control": host-cpus: every core of this host (0-1) is dedicated to a guest once this guest's are: leave at least one out`},
		{"every core between two guests", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string {
			return strings.Replace(s, "    disks:", "    host-cpus: [0]\n    disks:", 1)
		}, `system.yaml:29: guest "infotainment": host-cpus: every core of this host (0-1) is dedicated`},
		{"a core left over", Host{CPUs: []int{0, 1, 2}, Memory: 4 << 30}, func(s string) string {
			return strings.Replace(s, "    disks:", "    host-cpus: [0]\n    disks:", 1)
		}, ""},
		{"a single guest on every core", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string {
			i := strings.Index(s, "  - name: infotainment")
			return strings.NewReplacer("[1]", "[0, 1]", `allow: ["infotainment:5000"]`, "allow: []").Replace(s[:i])
		}, `guest "control": host-cpus: every core of this host (0-1)`},
		{"kernel not a kernel", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string { return strings.Replace(s, "kernel: vmlinuz", "kernel: media.img", 1) },
			`system.yaml:7: guest "control": kernel: `},
		{"TAP missing", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string {
			return strings.Replace(s, "    disks:", "    nets: [{tap: tandem-no-tap}]\n    disks:", 1)
		}, `system.yaml:29: guest "infotainment": nets[0].tap: tandem-no-tap: no such interface on this host`},
		{"TAP not a TAP", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string {
			return strings.Replace(s, "    disks:", "    nets:\n      - tap: lo\n    disks:", 1)
		}, `system.yaml:30: guest "infotainment": nets[0].tap: lo: not a TAP interface`},
		{"missing label", Host{CPUs: []int{0, 1}, Memory: 4 << 30}, func(s string) string { return strings.Replace(s, "path: media.img", "label: MEDIA", 1) }, `system.yaml:30: guest "infotainment": disks[0].label: MEDIA: no such partition`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := guestDir(t)
			data := string(good)
			if tt.edit != nil {
				data = tt.edit(data)
			}
			m, err := LoadManifest(writeManifest(t, dir, []byte(data)))
			if err != nil {
				t.Fatalf("LoadManifest() = %v", err)
			}
			m.DevDisk = filepath.Join(dir, "dev-disk")
			err = m.CheckHost(tt.host)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("CheckHost(%+v) = %v, want %q", tt.host, err, tt.want)
			}
		})
	}
}

func TestDiskByLabel(t *testing.T) {
	dir := guestDir(t)
	data := strings.Replace(string(goodManifest(t)), "path: media.img", "partuuid: 0AB1-02", 1)
	m, err := LoadManifest(writeManifest(t, dir, []byte(data)))
	if err != nil {
		t.Fatal(err)
	}
	m.DevDisk = filepath.Join(dir, "disk")
	os.MkdirAll(filepath.Join(m.DevDisk, "by-partuuid"), 0o755)
	if err := os.Symlink(filepath.Join(dir, "media.img"), filepath.Join(m.DevDisk, "by-partuuid", "0ab1-02")); err != nil {
		t.Fatal(err)
	}
	cfg, err := m.Guest("infotainment").Config()
	if err != nil {
		t.Fatalf("Config() = %v", err)
	}
	if want := filepath.Join(dir, "media.img"); len(cfg.Disks) != 1 || cfg.Disks[0].Path != want || !cfg.Disks[0].ReadOnly {
		t.Errorf("Config().Disks = %+v, want [{%s true}]", cfg.Disks, want)
	}
	if got := m.Files(); slices.Contains(got, "0AB1-02") || len(got) != 3 {
		t.Errorf("Files() = %v, want the kernel and two initrds only", got)
	}
}

func TestDetectHost(t *testing.T) {
	h, err := DetectHost()
	if err != nil {
		t.Skipf("skipping: ghw cannot read this host: %v", err)
	}
	if len(h.CPUs) == 0 || h.Memory == 0 {
		t.Errorf("DetectHost() = %+v, want some CPUs and memory", h)
	}
}

func FuzzLoadManifest(f *testing.F) {
	f.Add(goodManifest(f))
	f.Add([]byte("guests:\n  - name: a\n    kernel: k\n    after: [a]\n"))
	f.Add([]byte("guests:\n  - name: a\n    kernel: k\n    vsock: {cid: 3, allow: [\"a:*\"]}\n"))
	dir := guestDir(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(filepath.Join(dir, "system.yaml"), data)
		if err != nil {
			if !errors.Is(err, ErrManifest) {
				t.Fatalf("ParseManifest() = %v, not an ErrManifest", err)
			}
			return
		}
		if len(m.Guests) == 0 {
			t.Fatalf("ParseManifest() = %d guests, nil error", len(m.Guests))
		}
		order, err := m.StartOrder()
		if err != nil || len(order) != len(m.Guests) {
			t.Fatalf("StartOrder() = %d, %v after a valid parse", len(order), err)
		}
		m.Files()
	})
}

func sprint(v any) string { return fmt.Sprint(v) }

// TestDescribeExit pins the words the supervisor logs for each end.
func TestDescribeExit(t *testing.T) {
	tests := []struct {
		code int
		err  error
		want string
	}{
		{int(vmm.ExitPowerOff), nil, "VMM exited: power-off"},
		{int(vmm.ExitCrash), nil, "VMM exited: crash"},
		{int(vmm.ExitWatchdog), nil, "watchdog expired"},
		{-1, errors.New("VMM killed (signal: killed)"), "VMM killed (signal: killed)"},
	}
	for _, tt := range tests {
		if got := describeExit(tt.code, tt.err); got != tt.want {
			t.Errorf("describeExit(%d, %v) = %q, want %q", tt.code, tt.err, got, tt.want)
		}
	}
}

// TestWatchdogGrace pins grace: power-on arming is opt-in.
func TestWatchdogGrace(t *testing.T) {
	good := string(goodManifest(t))
	for _, tt := range []struct {
		name, grace string // the watchdog's grace line, "" for none
		want        time.Duration
	}{
		{"left out: armed by the guest's driver only", "", 0},
		{"0s", "      grace: 0s\n", 0},
		{"45s", "      grace: 45s\n", 45 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const line = "      grace: 30s\n"
			if !strings.Contains(good, line) {
				t.Fatalf("test bug: %q not in the good manifest", line)
			}
			p := writeManifest(t, guestDir(t), []byte(strings.Replace(good, line, tt.grace, 1)))
			m, err := LoadManifest(p)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := m.Guests[0].Config()
			if err != nil {
				t.Fatal(err)
			}
			if w := cfg.Watchdog; w == nil || *w != (vmm.Watchdog{Timeout: 10 * time.Second, Boot: tt.want}) {
				t.Errorf("Config().Watchdog = %+v, want a 10s device armed at power-on for %v", w, tt.want)
			}
		})
	}
}

// TestHostServices: vsock.host lists the host's services a guest may
// reach at CID 2, with socket paths relative to the manifest.
func TestHostServices(t *testing.T) {
	dir := guestDir(t)
	text := strings.Replace(string(goodManifest(t)), "      cid: 4\n",
		"      cid: 4\n      allow: [\"host:6000\"]\n      host: [{port: 6000, socket: log.sock}]\n", 1)
	m, err := LoadManifest(writeManifest(t, dir, []byte(text)))
	if err != nil {
		t.Fatalf("LoadManifest() = %v, want nil", err)
	}
	v := m.Guest("infotainment").Vsock
	if want := []HostService{{Port: 6000, Socket: filepath.Join(dir, "log.sock")}}; !slices.Equal(v.Host, want) {
		t.Errorf("infotainment's Vsock.Host = %v, want %v", v.Host, want)
	}
	if v.HostService(6000) == nil || v.HostService(6001) != nil || !v.Allows(HostCID, 6000) {
		t.Errorf("infotainment's host service on 6000 = %v, on 6001 = %v, allows host:6000 = %v; want only 6000, allowed", v.HostService(6000), v.HostService(6001), v.Allows(HostCID, 6000))
	}
}

// TestManifestDisplay reads display: into the guest's VMM configuration
// and its hardware description, and board: into whether the board's
// display shows it.
func TestManifestDisplay(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		want  *vmm.Display
		board bool
	}{
		{"none", "", nil, false},
		{"default size", "    display: {}\n", &vmm.Display{Width: 1280, Height: 720}, false},
		{"given size", "    display:\n      width: 1024\n      height: 600\n", &vmm.Display{Width: 1024, Height: 600}, false},
		{"on the board", "    display: {width: 800, height: 480, board: true}\n", &vmm.Display{Width: 800, Height: 480}, true},
		{"VNC on a UNIX socket", "    display: {vnc: \"unix:/run/tandem/infotainment.vnc\"}\n", &vmm.Display{Width: 1280, Height: 720, VNC: "unix:/run/tandem/infotainment.vnc"}, false},
		{"VNC allowed beyond the host", "    display: {vnc: \"tcp:0.0.0.0:5901\", vnc-allow-remote: true}\n", &vmm.Display{Width: 1280, Height: 720, VNC: "tcp:0.0.0.0:5901", VNCAllowRemote: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := guestDir(t)
			data := strings.Replace(string(goodManifest(t)), "    disks:", tt.yaml+"    disks:", 1)
			m, err := LoadManifest(writeManifest(t, dir, []byte(data)))
			if err != nil {
				t.Fatal(err)
			}
			g := m.Guest("infotainment")
			cfg, err := g.Config()
			if err != nil {
				t.Fatal(err)
			}
			if (cfg.Display == nil) != (tt.want == nil) || tt.want != nil && *cfg.Display != *tt.want {
				t.Errorf("Config().Display = %+v, want %+v", cfg.Display, tt.want)
			}
			if g.BoardDisplay != tt.board {
				t.Errorf("BoardDisplay = %v, want %v", g.BoardDisplay, tt.board)
			}
			hw := string(g.hardwareDescription())
			if has := strings.Contains(hw, "virtio-gpu"); has != (tt.want != nil) {
				t.Errorf("hardware description %q: mentions virtio-gpu %v, want %v", hw, has, tt.want != nil)
			}
		})
	}
}

// TestManifestCPUFeatures checks pmu: and sve:: a guest has both by
// default (where the host offers them), false takes each away, and true
// is the default written out.
func TestManifestCPUFeatures(t *testing.T) {
	tests := []struct {
		name         string
		lines        string
		noPMU, noSVE bool
	}{
		{"default", "", false, false},
		{"pmu: false", "    pmu: false\n", true, false},
		{"sve: false", "    sve: false\n", false, true},
		{"both false", "    pmu: false\n    sve: false\n", true, true},
		{"both true", "    pmu: true\n    sve: true\n", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := guestDir(t)
			m, err := LoadManifest(writeManifest(t, dir, []byte("guests:\n  - name: g\n    kernel: vmlinuz\n"+tt.lines)))
			if err != nil {
				t.Fatalf("LoadManifest() = %v", err)
			}
			c, err := m.Guest("g").Config()
			if err != nil {
				t.Fatal(err)
			}
			if c.NoPMU != tt.noPMU || c.NoSVE != tt.noSVE {
				t.Errorf("Config() NoPMU, NoSVE = %t, %t, want %t, %t", c.NoPMU, c.NoSVE, tt.noPMU, tt.noSVE)
			}
		})
	}
}
