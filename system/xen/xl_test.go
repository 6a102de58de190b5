package xen

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/system"
)

// base is a minimal good xl.cfg; tests add or replace lines.
const base = "name = \"g\"\nkernel = \"/k\"\n"

func importXL(t *testing.T, src string) *Result {
	t.Helper()
	res, err := ImportXL("g.cfg", []byte(src), XLOptions{})
	if err != nil {
		t.Fatalf("ImportXL() = %v, want nil", err)
	}
	return res
}

// TestImportXL checks each converted key, one per case.
func TestImportXL(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		check func(g *Guest) (got, want any)
	}{
		{"name", "", func(g *Guest) (any, any) { return g.Name, "g" }},
		{"kernel", "", func(g *Guest) (any, any) { return g.Kernel, "/k" }},
		{"ramdisk becomes initrd", "ramdisk = '/r'", func(g *Guest) (any, any) { return g.Initrd, "/r" }},
		{"cmdline", "cmdline = 'console=ttyAMA0 quiet'", func(g *Guest) (any, any) { return g.Cmdline, "console=ttyAMA0 quiet" }},
		{"root and extra", "root = '/dev/vda1'\nextra = 'ro quiet'", func(g *Guest) (any, any) { return g.Cmdline, "root=/dev/vda1 ro quiet" }},
		{"root alone", "root = '/dev/vda1'", func(g *Guest) (any, any) { return g.Cmdline, "root=/dev/vda1" }},
		{"extra alone", "extra = 'quiet'", func(g *Guest) (any, any) { return g.Cmdline, "quiet" }},
		{"cmdline wins over root and extra", "cmdline = 'a'\nroot = '/dev/vda'\nextra = 'b'", func(g *Guest) (any, any) { return g.Cmdline, "a" }},
		{"memory in MiB", "memory = 512", func(g *Guest) (any, any) { return g.Memory, uint64(512 << 20) }},
		{"memory in hex", "memory = 0x100", func(g *Guest) (any, any) { return g.Memory, uint64(256 << 20) }},
		{"memory quoted", "memory = '128'", func(g *Guest) (any, any) { return g.Memory, uint64(128 << 20) }},
		{"odd memory rounded up to 2 MiB", "memory = 129", func(g *Guest) (any, any) { return g.Memory, uint64(130 << 20) }},
		{"maxmem alone", "maxmem = 256", func(g *Guest) (any, any) { return g.Memory, uint64(256 << 20) }},
		{"memory beside a larger maxmem", "memory = 256\nmaxmem = 512", func(g *Guest) (any, any) { return g.Memory, uint64(256 << 20) }},
		{"no memory: the manifest's default", "", func(g *Guest) (any, any) { return g.Memory, uint64(0) }},
		{"vcpus", "vcpus = 4", func(g *Guest) (any, any) { return g.CPUs, 4 }},
		{"maxvcpus alone", "maxvcpus = 3", func(g *Guest) (any, any) { return g.CPUs, 3 }},
		{"cpus range", "cpus = '2-3'", func(g *Guest) (any, any) { return g.HostCPUs, []int{2, 3} }},
		{"cpus list string", "cpus = '2,3'", func(g *Guest) (any, any) { return g.HostCPUs, []int{2, 3} }},
		{"cpus number", "cpus = 5", func(g *Guest) (any, any) { return g.HostCPUs, []int{5} }},
		{"cpus per vCPU", "cpus = [2, 3]", func(g *Guest) (any, any) { return g.HostCPUs, []int{2, 3} }},
		{"cpus per vCPU, shared", "cpus = ['2-3', '3']", func(g *Guest) (any, any) { return g.HostCPUs, []int{2, 3} }},
		{"cpus exclusion", "cpus = '0-3,5,^1'", func(g *Guest) (any, any) { return g.HostCPUs, []int{0, 2, 3, 5} }},
		{"cpus all floats", "cpus = 'all'", func(g *Guest) (any, any) { return len(g.HostCPUs), 0 }},
		{"cpus all but one floats", "cpus = 'all,^1'", func(g *Guest) (any, any) { return len(g.HostCPUs), 0 }},
		{"disk, named form", "disk = ['format=raw, vdev=xvda, access=rw, target=/img']", func(g *Guest) (any, any) { return g.Disks, []Disk{{Path: "/img", Note: "xl: xvda (guest: /dev/vda)"}} }},
		{"disk, target with commas", "disk = ['vdev=xvda, target=/a,b.img']", func(g *Guest) (any, any) { return g.Disks[0].Path, "/a,b.img" }},
		{"disk, positional", "disk = ['/img,raw,xvda,ro']", func(g *Guest) (any, any) {
			return g.Disks[0], Disk{Path: "/img", ReadOnly: true, Note: "xl: xvda (guest: /dev/vda)"}
		}},
		{"disk, positional with defaults", "disk = ['/img,,xvda']", func(g *Guest) (any, any) { return g.Disks[0].ReadOnly, false }},
		{"disk, legacy phy", "disk = ['phy:/dev/vg/lv,xvda,w']", func(g *Guest) (any, any) {
			return g.Disks[0], Disk{Path: "/dev/vg/lv", Note: "xl: xvda (guest: /dev/vda)"}
		}},
		{"disk, legacy file read-only", "disk = ['file:/img,xvdb,r']", func(g *Guest) (any, any) {
			return g.Disks[0], Disk{Path: "/img", ReadOnly: true, Note: "xl: xvdb (guest: /dev/vda)"}
		}},
		{"disk, legacy tap:aio", "disk = ['tap:aio:/img,xvda,w']", func(g *Guest) (any, any) { return g.Disks[0].Path, "/img" }},
		{"disk, no leading slash gets /dev", "disk = ['vg/lv,,xvda']", func(g *Guest) (any, any) { return g.Disks[0].Path, "/dev/vg/lv" }},
		{"disk, cdrom read-only", "disk = ['/x.iso,,hdc,cdrom']", func(g *Guest) (any, any) { return g.Disks[0].ReadOnly, true }},
		{"disk, qcow2 left out", "disk = ['/a.img,raw,xvda', '/b.qcow2,qcow2,xvdb']", func(g *Guest) (any, any) { return len(g.Disks), 1 }},
		{"disk, empty cdrom left out", "disk = [',hdc:cdrom,r']", func(g *Guest) (any, any) { return len(g.Disks), 0 }},
		{"vif mac", "vif = ['bridge=xenbr0,mac=00:16:3e:00:00:01']", func(g *Guest) (any, any) { return g.Nets[0].MAC, "00:16:3e:00:00:01" }},
		{"vif tap named after the guest", "vif = ['bridge=xenbr0', '']", func(g *Guest) (any, any) { return []string{g.Nets[0].TAP, g.Nets[1].TAP}, []string{"g-0", "g-1"} }},
		{"vifname names the tap", "vif = ['vifname=tapctl']", func(g *Guest) (any, any) { return g.Nets[0].TAP, "tapctl" }},
		{"restart: xl defaults", "", func(g *Guest) (any, any) { return g.Restart, "on-failure" }},
		{"restart: crash and reboot restart", "on_crash = 'restart'", func(g *Guest) (any, any) { return g.Restart, "on-failure" }},
		{"restart: always", "on_poweroff = 'restart'\non_crash = 'coredump-restart'", func(g *Guest) (any, any) { return g.Restart, "always" }},
		{"restart: never", "on_reboot = 'destroy'\non_crash = 'preserve'", func(g *Guest) (any, any) { return g.Restart, "never" }},
		{"restart: crash only", "on_reboot = 'destroy'\non_crash = 'rename-restart'", func(g *Guest) (any, any) { return g.Restart, "on-failure" }},
		{"type pvh", "type = 'pvh'", func(g *Guest) (any, any) { return g.Kernel, "/k" }},
		{"name made valid", "name = 'web.example'", func(g *Guest) (any, any) { return g.Name, "web-example" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := importXL(t, base+tt.extra+"\n")
			got, want := tt.check(res.Manifest.Guests[0])
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

// TestImportXLWarnings checks that what does not convert exactly is
// reported with its key and line.
func TestImportXLWarnings(t *testing.T) {
	tests := []struct {
		name  string
		extra string // from line 3
		want  []string
	}{
		{"hvm builder", "builder = 'hvm'", []string{"g.cfg:3:", "builder:", "no firmware"}},
		{"pv type", "type = 'pv'", []string{"g.cfg:3:", "type:", "virtio"}},
		{"pci passthrough", "pci = ['0000:01:00.0']", []string{"g.cfg:3:", "pci:", "not supported by import"}},
		{"iomem", "iomem = ['0x2090,1']", []string{"g.cfg:3:", "iomem:", "not supported by import"}},
		{"dtdev", "dtdev = ['/soc/can']", []string{"g.cfg:3:", "dtdev:", "not supported by import"}},
		{"irqs", "irqs = [142]", []string{"g.cfg:3:", "irqs:", "not supported by import"}},
		{"device_tree", "device_tree = '/p.dtb'", []string{"g.cfg:3:", "device_tree:", "not supported by import"}},
		{"no equivalent", "vfb = ['vnc=1']", []string{"g.cfg:3:", "vfb:", "no Tandem equivalent"}},
		{"unknown key", "memroy = 512", []string{"g.cfg:3:", "memroy:", "check its spelling"}},
		{"maxmem above memory", "memory = 256\nmaxmem = 512", []string{"g.cfg:4:", "maxmem:", "no ballooning"}},
		{"maxvcpus above vcpus", "vcpus = 1\nmaxvcpus = 4", []string{"g.cfg:4:", "maxvcpus:", "no vCPU hotplug"}},
		{"memory rounded", "memory = 129", []string{"g.cfg:3:", "memory:", "rounded up to 130M"}},
		{"pinning is dedicated", "cpus = '2'", []string{"g.cfg:3:", "cpus:", "dedicated"}},
		{"all but one", "cpus = 'all,^1'", []string{"g.cfg:3:", "cpus:", "cannot exclude"}},
		{"per-vCPU pinning", "cpus = ['2', '3']", []string{"g.cfg:3:", "cpus:", "same set"}},
		{"xvd in root", "root = '/dev/xvda1'", []string{"g.cfg:3:", "root:", "/dev/vda1"}},
		{"qcow2 disk", "disk = ['/a.qcow2,qcow2,xvda']", []string{"g.cfg:3:", "disk:", "qemu-img convert"}},
		{"bridge", "vif = ['bridge=xenbr0']", []string{"g.cfg:3:", "vif:", "master xenbr0"}},
		{"vif script", "vif = ['script=vif-nat']", []string{"g.cfg:3:", "vif:", "script="}},
		{"preserve", "on_crash = 'preserve'", []string{"g.cfg:3:", "on_crash:", "preserve"}},
		{"crash not restarted", "on_crash = 'destroy'", []string{"g.cfg:3:", "on_crash:", "on-failure"}},
		{"repeated key", "memory = 64\nmemory = 128", []string{"g.cfg:3:", "memory:", "line 4"}},
		{"relative kernel", "kernel = 'Image'", []string{"g.cfg:3:", "kernel:", "relative"}},
		{"root ignored for cmdline", "cmdline = 'a'\nroot = '/dev/vda'", []string{"g.cfg:4:", "root:", "ignored in favour of cmdline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := importXL(t, base+tt.extra+"\n")
			var all []string
			for _, w := range res.Warnings {
				all = append(all, w.String())
			}
			for _, w := range all {
				if containsAll(w, tt.want) {
					return
				}
			}
			t.Errorf("no warning mentions all of %q; warnings:\n%s", tt.want, strings.Join(all, "\n"))
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// TestImportXLQuiet checks that a file using only keys with exact Tandem
// equivalents converts without a warning.
func TestImportXLQuiet(t *testing.T) {
	src := base + "type = 'pvh'\nmemory = 256\nvcpus = 2\ncmdline = 'console=ttyAMA0'\n" +
		"disk = ['format=raw, vdev=xvda, access=ro, target=/img']\n" +
		"on_poweroff = 'destroy'\non_reboot = 'restart'\non_crash = 'restart'\n"
	res := importXL(t, src)
	for _, w := range res.Warnings {
		if !strings.Contains(w.Msg, "in list order") {
			t.Errorf("unexpected warning: %s", w)
		}
	}
}

// TestImportXLErrors corrupts a good guest file one key at a time: each
// error names the file, line and key, and says how to fix it.
func TestImportXLErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"bad quoting", base + "extra = 'console=ttyAMA0\n", []string{"g.cfg:3:", "not closed", "closing '"}},
		{"unknown builder", base + "builder = 'xen'\n", []string{"g.cfg:3:", "builder:", `"xen"`, "generic", "hvm"}},
		{"unknown type", base + "type = 'hvmx'\n", []string{"g.cfg:3:", "type:", "pvh"}},
		{"memory not a number", base + "memory = '512M'\n", []string{"g.cfg:3:", "memory:", "not a number", "in MiB", "memory = 512"}},
		{"memory zero", base + "memory = 0\n", []string{"g.cfg:3:", "memory:", "memory = 512"}},
		{"memory too small", base + "memory = 8\n", []string{"g.cfg:3:", "memory:", "at least 16M"}},
		{"maxmem below memory", base + "memory = 512\nmaxmem = 256\n", []string{"g.cfg:4:", "maxmem:", "maxmem >= memory"}},
		{"memory a list", base + "memory = [512]\n", []string{"g.cfg:3:", "memory:", "a list", `memory = "..."`}},
		{"vcpus not a number", base + "vcpus = 'two'\n", []string{"g.cfg:3:", "vcpus:", "not a number", "vcpus = 2"}},
		{"vcpus zero", base + "vcpus = 0\n", []string{"g.cfg:3:", "vcpus:", "1 to 64"}},
		{"maxvcpus below vcpus", base + "vcpus = 4\nmaxvcpus = 2\n", []string{"g.cfg:4:", "maxvcpus:", "raise maxvcpus"}},
		{"cpus overlapping", base + "cpus = '2-4,3'\n", []string{"g.cfg:3:", "cpus:", "core 3 is listed twice", "list each host core once"}},
		{"cpus overlapping ranges", base + "cpus = '0-2,2-3'\n", []string{"g.cfg:3:", "cpus:", "core 2 is listed twice"}},
		{"cpus backwards", base + "cpus = '3-1'\n", []string{"g.cfg:3:", "cpus:", "write 1-3"}},
		{"cpus not a core", base + "cpus = 'x'\n", []string{"g.cfg:3:", "cpus:", "not a core number"}},
		{"cpus excludes all", base + "cpus = '1,^1'\n", []string{"g.cfg:3:", "cpus:", "leaves no core"}},
		{"cpus numa nodes", base + "cpus = 'nodes:0'\n", []string{"g.cfg:3:", "cpus:", "list the host cores"}},
		{"cpus empty entry", base + "cpus = '1,,2'\n", []string{"g.cfg:3:", "cpus:", "single commas"}},
		{"no name", "kernel = '/k'\n", []string{"g.cfg:", "name:", "requires name"}},
		{"name without letters", "name = '..'\nkernel = '/k'\n", []string{"g.cfg:1:", "name:", "rename"}},
		{"no kernel", "name = 'g'\n", []string{"g.cfg:", "kernel:", `kernel = "/path/to/vmlinuz"`}},
		{"bootloader instead of kernel", "name = 'g'\nbootloader = 'pygrub'\n", []string{"kernel:", "pygrub", "copy the kernel"}},
		{"disk not a list", base + "disk = '/img,,xvda'\n", []string{"g.cfg:3:", "disk:", "want a list", "disk = ["}},
		{"disk without vdev", base + "disk = ['target=/img']\n", []string{"g.cfg:3:", "disk:", "entry 1", "no vdev", "vdev=xvda"}},
		{"disk bad access", base + "disk = ['/img,raw,xvda,rx']\n", []string{"g.cfg:3:", "disk:", "rx", "r, ro, w or rw"}},
		{"disk too many positionals", base + "disk = ['/img,raw,xvda,rw,extra']\n", []string{"g.cfg:3:", "disk:", "too many positional"}},
		{"disk unknown legacy prefix", base + "disk = ['zfs:/img,xvda,w']\n", []string{"g.cfg:3:", "disk:", `"zfs:"`, "phy:/dev/vg/lv,xvda,w"}},
		{"vif not key=value", base + "vif = ['xenbr0']\n", []string{"g.cfg:3:", "vif:", "KEY=VALUE", "bridge=xenbr0"}},
		{"vif bad mac", base + "vif = ['mac=00:16:3e:00:01']\n", []string{"g.cfg:3:", "vif:", "six hex bytes"}},
		{"vif multicast mac", base + "vif = ['mac=01:16:3e:00:00:01']\n", []string{"g.cfg:3:", "vif:", "multicast"}},
		{"vifname too long", base + "vif = ['vifname=a-very-long-tap-name']\n", []string{"g.cfg:3:", "vif:", "shorten"}},
		{"unknown action", base + "on_crash = 'reboot'\n", []string{"g.cfg:3:", "on_crash:", `"reboot"`, "destroy, restart"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ImportXL("g.cfg", []byte(tt.src), XLOptions{})
			if err == nil {
				t.Fatal("ImportXL() = nil, want an error")
			}
			if !errors.Is(err, ErrInput) {
				t.Errorf("ImportXL() = %v, want it to wrap ErrInput", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ImportXL() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestImportXLRoundTrip imports the testdata guest with its files made
// real, and loads the YAML with the system package's own manifest loader.
func TestImportXLRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("testdata/infotainment.cfg")
	if err != nil {
		t.Fatal(err)
	}
	// The testdata names paths on a Xen host; point them at stand-ins.
	cfg := strings.NewReplacer("/srv/xen/", dir+"/", "/dev/vg0/", dir+"/").Replace(string(src))
	for _, f := range []string{"Image", "initrd.img", "maps.img", "infotainment"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res, err := ImportXL("infotainment.cfg", []byte(cfg), XLOptions{Role: system.RoleInfotainment})
	if err != nil {
		t.Fatalf("ImportXL() = %v", err)
	}
	y, err := res.Manifest.YAML()
	if err != nil {
		t.Fatal(err)
	}
	m, err := system.ParseManifest(filepath.Join(dir, "system.yaml"), y)
	if err != nil {
		t.Fatalf("ParseManifest() = %v, want nil; YAML:\n%s", err, y)
	}
	if len(m.Guests) != 1 {
		t.Fatalf("len(Guests) = %d, want 1", len(m.Guests))
	}
	g := m.Guests[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"Name", g.Name, "infotainment"},
		{"Role", g.Role, system.RoleInfotainment},
		{"Kernel", g.Kernel, filepath.Join(dir, "Image")},
		{"Initrd", g.Initrd, filepath.Join(dir, "initrd.img")},
		{"Cmdline", g.Cmdline, "root=/dev/xvda1 console=hvc0 rw"},
		{"CPUs", g.CPUs, 2},
		{"Memory", g.Memory, uint64(1 << 30)},
		{"HostCPUs", g.HostCPUs, []int{2, 3}},
		{"Disks", g.Disks, []system.Disk{{Path: filepath.Join(dir, "infotainment")}, {Path: filepath.Join(dir, "maps.img"), ReadOnly: true}}},
		{"Nets[0].TAP", g.Nets[0].TAP, "infotainment-0"},
		{"Nets[0].MAC", g.Nets[0].MAC.String(), "00:16:3e:12:34:56"},
		{"Restart.Policy", g.Restart.Policy, system.RestartOnFailure},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

// TestImportXLTestdata checks that every xl file in testdata imports and
// that its YAML is decoded by the manifest loader up to the files it
// names, which only exist on the Xen host.
func TestImportXLTestdata(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.cfg")
	if len(files) == 0 {
		t.Fatal("no testdata/*.cfg")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			res, err := ImportXL(f, data, XLOptions{})
			if err != nil {
				t.Fatalf("ImportXL() = %v", err)
			}
			y, err := res.Manifest.YAML()
			if err != nil {
				t.Fatal(err)
			}
			_, err = system.ParseManifest("system.yaml", y)
			if err == nil || !strings.Contains(err.Error(), "kernel: /srv/xen/") || !strings.Contains(err.Error(), "no such file") {
				t.Errorf("ParseManifest() = %v, want only the missing kernel file reported", err)
			}
		})
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in    string
		all   bool
		cores []int
		err   string
	}{
		{"2", false, []int{2}, ""},
		{"2-3", false, []int{2, 3}, ""},
		{"2,3", false, []int{2, 3}, ""},
		{" 1 , 4-5 ", false, []int{1, 4, 5}, ""},
		{"0-3,5,^1", false, []int{0, 2, 3, 5}, ""},
		{"^1,0-3", false, []int{0, 2, 3}, ""},
		{"all", true, nil, ""},
		{"all,3", true, nil, ""},
		{"all,^7", true, nil, "exclusions"},
		{"1-1", false, []int{1}, ""},
		{"2-3,3", false, nil, "listed twice"},
		{"3-2", false, nil, "backwards"},
		{"-1", false, nil, "not a core number"},
		{"+1", false, nil, "not a core number"},
		{"99999", false, nil, "more than any host"},
		{"0-99999", false, nil, "more than any host"},
		{"^2", false, nil, "leaves no core"},
		{"node:1", false, nil, "NUMA"},
		{"", false, nil, "empty entry"},
	}
	for _, tt := range tests {
		l, err := parseCPUList(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseCPUList(%q) = %v, want an error mentioning %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || l.all != tt.all || !slices.Equal(l.cores, tt.cores) {
			t.Errorf("parseCPUList(%q) = %+v, %v, want all=%v cores=%v", tt.in, l, err, tt.all, tt.cores)
		}
	}
}

func TestParseDiskSpec(t *testing.T) {
	tests := []struct {
		in   string
		want diskSpec
	}{
		{"/dev/vg/guest-volume,,hda", diskSpec{target: "/dev/vg/guest-volume", vdev: "hda"}},
		{"/dev/vg/guest-volume,raw,hda,rw", diskSpec{target: "/dev/vg/guest-volume", format: "raw", vdev: "hda", access: "rw"}},
		{"format=raw, vdev=hda, access=rw, target=/dev/vg/guest-volume", diskSpec{target: "/dev/vg/guest-volume", format: "raw", vdev: "hda", access: "rw"}},
		{"raw:/dev/vg/guest-volume,hda,w", diskSpec{target: "/dev/vg/guest-volume", format: "raw", vdev: "hda", access: "w"}},
		{"/root/image.iso,,hdc,cdrom", diskSpec{target: "/root/image.iso", vdev: "hdc", devtype: "cdrom"}},
		{"/root/image.iso,raw,hdc,devtype=cdrom", diskSpec{target: "/root/image.iso", format: "raw", vdev: "hdc", devtype: "cdrom"}},
		{"raw:/root/image.iso,hdc:cdrom,ro", diskSpec{target: "/root/image.iso", format: "raw", vdev: "hdc", access: "ro", devtype: "cdrom"}},
		{"phy:/dev/vg/lv,xvda,w", diskSpec{target: "/dev/vg/lv", vdev: "xvda", access: "w"}},
		{"file:/img,xvdb,r", diskSpec{target: "/img", vdev: "xvdb", access: "r"}},
		{"vdev=xvda, /img", diskSpec{target: "/img", vdev: "xvda"}},
		{"nbd:host:1234,xvda,w", diskSpec{target: "host:1234", vdev: "xvda", access: "w", script: "block-nbd"}},
	}
	for _, tt := range tests {
		got, err := parseDiskSpec(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDiskSpec(%q) = %+v, %v, want %+v", tt.in, got, err, tt.want)
		}
	}
}

// TestImportXLQuoting checks that values YAML would read as numbers or
// booleans come back from the manifest loader as the strings they were.
func TestImportXLQuoting(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "k")
	if err := os.WriteFile(k, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := importXL(t, "name = '123'\nkernel = '"+k+"'\ncmdline = 'true'\n")
	y, err := res.Manifest.YAML()
	if err != nil {
		t.Fatal(err)
	}
	m, err := system.ParseManifest(filepath.Join(dir, "system.yaml"), y)
	if err != nil {
		t.Fatalf("ParseManifest() = %v; YAML:\n%s", err, y)
	}
	if g := m.Guests[0]; g.Name != "123" || g.Cmdline != "true" {
		t.Errorf("Name, Cmdline = %q, %q, want \"123\", \"true\"", g.Name, g.Cmdline)
	}
}
