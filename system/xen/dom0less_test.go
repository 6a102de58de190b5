package xen

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/dtb"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTestdataDTBs checks that each committed .dtb is what dtc makes of
// its .dts, so the sources stay the truth.
func TestTestdataDTBs(t *testing.T) {
	dtc := testenv.RequireCommand(t, "dtc", "device-tree-compiler")
	srcs, _ := filepath.Glob("testdata/*.dts")
	if len(srcs) == 0 {
		t.Fatal("no testdata/*.dts")
	}
	for _, src := range srcs {
		out, err := exec.Command(dtc, "-q", "-I", "dts", "-O", "dtb", "-o", "-", src).Output()
		if err != nil {
			t.Fatalf("dtc %s: %v", src, err)
		}
		dtbPath := strings.TrimSuffix(src, ".dts") + ".dtb"
		if have, _ := os.ReadFile(dtbPath); !bytes.Equal(have, out) {
			t.Errorf("%s is not dtc's output for %s: run dtc -q -I dts -O dtb -o %s %s", dtbPath, src, dtbPath, src)
		}
	}
}

// TestImportDom0less checks each converted field of the two testdata
// trees, one per case.
func TestImportDom0less(t *testing.T) {
	opt := Dom0lessOptions{Kernels: map[string]string{"domU1": "/k1"}, Initrds: map[string]string{"domU2": "/r2"}}
	res, err := ImportDom0less("dom0less.dtb", readTestdata(t, "dom0less.dtb"), opt)
	if err != nil {
		t.Fatalf("ImportDom0less() = %v", err)
	}
	feat, err := ImportDom0less("f.dtb", readTestdata(t, "dom0less-features.dtb"), Dom0lessOptions{})
	if err != nil {
		t.Fatalf("ImportDom0less(features) = %v", err)
	}
	g := res.Manifest.Guests
	f := feat.Manifest.Guests
	tests := []struct {
		name      string
		got, want any
	}{
		{"one guest per domain", len(g), 2},
		{"names from nodes", []string{g[0].Name, g[1].Name}, []string{"domU1", "domU2"}},
		{"memory in KiB, 64-bit", []uint64{g[0].Memory, g[1].Memory}, []uint64{128 << 20, 64 << 20}},
		{"cpus", []int{g[0].CPUs, g[1].CPUs}, []int{2, 1}},
		{"bootargs", g[0].Cmdline, "console=ttyAMA0 init=/bin/sh"},
		{"kernel from --kernel", g[0].Kernel, "/k1"},
		{"initrd from --initrd", g[1].Initrd, "/r2"},
		{"kernel placeholder", g[1].Kernel, "FILL-IN/domU2-kernel"},
		{"initrd placeholder", g[0].Initrd, "FILL-IN/domU1-initrd"},
		{"hard affinities joined", g[0].HostCPUs, []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"no xen,vcpu: floating", len(g[1].HostCPUs), 0},
		{"one-cell reg in the domain", f[0].Initrd, "FILL-IN/domU1-initrd"},
		{"memory <0 0x20000> with one-cell parent", f[0].Memory, uint64(128 << 20)},
		{"node name with a dash", f[1].Name, "rt-domain"},
		{"kernel from xen,uefi-binary", f[1].Kernel, "Image-rt"},
		{"xen,static-mem locks memory", f[1].LockMemory, true},
		{"single hard affinity", f[1].HostCPUs, []int{8}},
		{"no ramdisk module, no initrd", f[1].Initrd, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
}

// TestImportDom0lessWarnings checks that what does not carry over is
// reported with its node and property.
func TestImportDom0lessWarnings(t *testing.T) {
	res, err := ImportDom0less("f.dtb", readTestdata(t, "dom0less-features.dtb"), Dom0lessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, w := range res.Warnings {
		all = append(all, w.String())
	}
	for _, want := range [][]string{
		{"f.dtb: warning: /chosen/module@80000:", "dom0"},
		{"/chosen/domU1/module@30000000: reg:", "FILL-IN/domU1-initrd", "--initrd domU1=PATH"},
		{"/chosen/rt-domain: xen,static-mem:", "lock-memory"},
		{"/chosen/rt-domain: direct-map:", "1:1"},
		{"/chosen/rt-domain: xen,enhanced:", "no Xen PV interfaces"},
		{"/chosen/rt-domain: llc-colors:", "no Tandem equivalent"},
		{"/chosen/rt-domain/module@6000000:", "passthrough", "not supported by import"},
		{"/chosen/rt-domain/module@5000000: xen,uefi-binary:", "EFI system partition"},
		{"/chosen/rt-domain: hard-affinity:", "dedicated"},
	} {
		found := false
		for _, w := range all {
			if containsAll(w, want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no warning mentions all of %q; warnings:\n%s", want, strings.Join(all, "\n"))
		}
	}
}

// TestImportDom0lessRoundTrip loads the imported manifest with the system
// package's loader, with the files given by --kernel and --initrd.
func TestImportDom0lessRoundTrip(t *testing.T) {
	dir := t.TempDir()
	opt := Dom0lessOptions{Kernels: map[string]string{}, Initrds: map[string]string{}}
	for _, d := range []string{"domU1", "domU2"} {
		for _, kind := range []string{"Image", "initrd"} {
			p := filepath.Join(dir, kind+"-"+d)
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		opt.Kernels[d] = "Image-" + d // relative: from the manifest's directory
		opt.Initrds[d] = filepath.Join(dir, "initrd-"+d)
	}
	res, err := ImportDom0less("dom0less.dtb", readTestdata(t, "dom0less.dtb"), opt)
	if err != nil {
		t.Fatal(err)
	}
	y, err := res.Manifest.YAML()
	if err != nil {
		t.Fatal(err)
	}
	m, err := system.ParseManifest(filepath.Join(dir, "system.yaml"), y)
	if err != nil {
		t.Fatalf("ParseManifest() = %v; YAML:\n%s", err, y)
	}
	type view struct {
		Name, Kernel, Initrd, Cmdline string
		CPUs                          int
		Memory                        uint64
		HostCPUs                      []int
		Policy                        string
	}
	var got []view
	for _, g := range m.Guests {
		got = append(got, view{g.Name, g.Kernel, g.Initrd, g.Cmdline, g.CPUs, g.Memory, g.HostCPUs, g.Restart.Policy})
	}
	want := []view{
		{"domU1", filepath.Join(dir, "Image-domU1"), filepath.Join(dir, "initrd-domU1"), "console=ttyAMA0 init=/bin/sh", 2, 128 << 20, []int{0, 1, 2, 3, 4, 5, 6, 7}, system.RestartNever},
		{"domU2", filepath.Join(dir, "Image-domU2"), filepath.Join(dir, "initrd-domU2"), "console=ttyAMA0 init=/bin/sh", 1, 64 << 20, nil, system.RestartNever},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("guests = %+v\nwant %+v", got, want)
	}
}

// TestImportDom0lessPlaceholder checks that a manifest with placeholders
// is still YAML the loader reads, and that it then names the line and
// field to fill in.
func TestImportDom0lessPlaceholder(t *testing.T) {
	res, err := ImportDom0less("dom0less.dtb", readTestdata(t, "dom0less.dtb"), Dom0lessOptions{})
	if err != nil {
		t.Fatal(err)
	}
	y, err := res.Manifest.YAML()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, err = system.ParseManifest(filepath.Join(dir, "system.yaml"), y)
	want := regexp.MustCompile(`system\.yaml:\d+: guest "domU1": kernel: .*FILL-IN/domU1-kernel: no such file`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("ParseManifest() = %v, want an error matching %s", err, want)
	}
}

// TestImportDom0lessErrors corrupts the good tree one node or property
// at a time: each error names the file, the node, the property and the
// fix.
func TestImportDom0lessErrors(t *testing.T) {
	good := readTestdata(t, "dom0less.dtb")
	node := func(tr *dtb.Tree, path string) *dtb.Node {
		n, err := tr.Lookup(path)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name   string
		mutate func(tr *dtb.Tree)
		raw    func(b []byte) []byte // instead of mutate: corrupt the blob
		opt    Dom0lessOptions
		want   []string
	}{
		{name: "malformed DTB: bad magic", raw: func(b []byte) []byte { b[0] ^= 0xff; return b }, want: []string{"h.dtb:", "not a readable device tree", "magic", "dtc -I dts -O dtb"}},
		{name: "malformed DTB: truncated", raw: func(b []byte) []byte { return b[:len(b)/2] }, want: []string{"h.dtb:", "not a readable device tree", "larger than blob"}},
		{name: "malformed DTB: text", raw: func([]byte) []byte { return []byte("/dts-v1/;\n/ { };\n") }, want: []string{"h.dtb:", "not a readable device tree", "dtc"}},
		{name: "missing /chosen", mutate: func(tr *dtb.Tree) { node(tr, "/chosen").Delete() }, want: []string{"h.dtb: /chosen:", "missing", "booting.txt"}},
		{name: "no xen,domain nodes", mutate: func(tr *dtb.Tree) {
			node(tr, "/chosen/domU1").Delete()
			node(tr, "/chosen/domU2").Delete()
		}, want: []string{"h.dtb: /chosen:", "no xen,domain nodes under /chosen", `compatible = "xen,domain"`}},
		{name: "memory missing", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").DeleteProp("memory") }, want: []string{"/chosen/domU2: memory:", "missing", "<0 KIB>"}},
		{name: "memory one cell", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").SetU32("memory", 0x10000) }, want: []string{"/chosen/domU2: memory:", "4 bytes (<0x10000>)", "64-bit", "memory = <0 KIB>"}},
		{name: "memory not a number", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").SetString("memory", "64M") }, want: []string{"/chosen/domU2: memory:", "4 bytes", "memory = <0 KIB>"}},
		{name: "memory zero", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").SetU64("memory", 0) }, want: []string{"/chosen/domU2: memory:", "0 KiB", "<0 0x20000>"}},
		{name: "memory too small", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").SetU64("memory", 1024) }, want: []string{"/chosen/domU2: memory:", "at least 16M"}},
		{name: "cpus missing", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").DeleteProp("cpus") }, want: []string{"/chosen/domU2: cpus:", "missing", "cpus = <N>"}},
		{name: "cpus two cells", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").SetU64("cpus", 1) }, want: []string{"/chosen/domU2: cpus:", "one cell"}},
		{name: "cpus zero", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").SetU32("cpus", 0) }, want: []string{"/chosen/domU2: cpus:", "1 to 64"}},
		{name: "cpus overlapping between domains", mutate: func(tr *dtb.Tree) {
			v := node(tr, "/chosen/domU2").AddNode("vcpu0")
			v.SetString("compatible", "xen,vcpu").SetU32("id", 0).SetString("hard-affinity", "5")
		}, want: []string{"/chosen/domU2: hard-affinity:", "core 5", "domU1", "give each domain its own cores"}},
		{name: "hard-affinity overlapping itself", mutate: func(tr *dtb.Tree) {
			node(tr, "/chosen/domU1/vcpu0").SetString("hard-affinity", "0-3,2")
		}, want: []string{"/chosen/domU1/vcpu0: hard-affinity:", "core 2 is listed twice"}},
		{name: "hard-affinity with all", mutate: func(tr *dtb.Tree) {
			node(tr, "/chosen/domU1/vcpu0").SetString("hard-affinity", "all")
		}, want: []string{"/chosen/domU1/vcpu0: hard-affinity:", `"0-3"`}},
		{name: "vcpu id beyond cpus", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU1/vcpu1").SetU32("id", 2) }, want: []string{"/chosen/domU1/vcpu1: id:", "ids run 0 to 1"}},
		{name: "vcpu id twice", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU1/vcpu1").SetU32("id", 0) }, want: []string{"/chosen/domU1/vcpu1: id:", "vcpu0 has the same id"}},
		{name: "vcpu without id", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU1/vcpu1").DeleteProp("id") }, want: []string{"/chosen/domU1/vcpu1: id:", "missing", "id = <N>"}},
		{name: "no kernel module", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2/module@4c000000").Delete() }, want: []string{"/chosen/domU2:", "no kernel module", "multiboot,kernel", "--kernel domU2=PATH"}},
		{name: "two kernel modules", mutate: func(tr *dtb.Tree) {
			node(tr, "/chosen/domU2/module@4d000000").SetStrings("compatible", "multiboot,kernel", "multiboot,module")
		}, want: []string{"/chosen/domU2/module@4d000000: compatible:", "second kernel", "keep one"}},
		{name: "bootargs not a string", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2/module@4c000000").SetU32("bootargs", 1) }, want: []string{"/chosen/domU2/module@4c000000: bootargs:", "bootargs = \""}},
		{name: "bootargs not UTF-8", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2/module@4c000000").SetString("bootargs", "console=\xaf") }, want: []string{"/chosen/domU2/module@4c000000: bootargs:", "UTF-8"}},
		{name: "xen,uefi-binary empty", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2/module@4c000000").SetString("xen,uefi-binary", "") }, want: []string{"/chosen/domU2/module@4c000000: xen,uefi-binary:", "not a file name"}},
		{name: "reg not matching the cells", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2/module@4c000000").SetU32s("reg", 1, 2) }, want: []string{"/chosen/domU2/module@4c000000: reg:", "#address-cells and #size-cells"}},
		{name: "unknown domain in --kernel", opt: Dom0lessOptions{Kernels: map[string]string{"domU3": "/k"}}, want: []string{"h.dtb: --kernel:", `no domain "domU3"`, "domU1, domU2"}},
		{name: "two nodes, one guest name", mutate: func(tr *dtb.Tree) { node(tr, "/chosen/domU2").Name = "domU1." }, want: []string{"/chosen/domU1.:", `becomes guest "domU1", as /chosen/domU1 does`, "rename"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := append([]byte{}, good...)
			if tt.raw != nil {
				b = tt.raw(b)
			}
			if tt.mutate != nil {
				tr, err := dtb.Parse(b)
				if err != nil {
					t.Fatal(err)
				}
				tt.mutate(tr)
				if b, err = tr.Bytes(); err != nil {
					t.Fatal(err)
				}
			}
			res, err := ImportDom0less("h.dtb", b, tt.opt)
			if err == nil {
				var ws []string
				for _, w := range res.Warnings {
					ws = append(ws, w.String())
				}
				t.Fatalf("ImportDom0less() = nil, want an error; warnings:\n%s", strings.Join(ws, "\n"))
			}
			if !errors.Is(err, ErrInput) {
				t.Errorf("ImportDom0less() = %v, want it to wrap ErrInput", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ImportDom0less() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
}

// TestImportDom0lessBoardDTB runs the importer on real board DTBs, which
// have no dom0less domains.
func TestImportDom0lessBoardDTB(t *testing.T) {
	cache := os.Getenv("TANDEM_CACHE")
	if cache == "" {
		cache = filepath.Join("..", "..", "build", "cache")
	}
	for _, f := range []string{"boards/qemu/virt-arm64.dtb", "boards/armhf/sun7i-a20-cubieboard2.dtb"} {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p := filepath.Join(cache, f)
			testenv.RequireFile(t, p, "scripts/testdata.sh downloads it")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ImportDom0less(p, b, Dom0lessOptions{})
			if err == nil || !strings.Contains(err.Error(), p+": /chosen: no xen,domain nodes under /chosen") {
				t.Errorf("ImportDom0less() = %v, want %s: /chosen: no xen,domain nodes under /chosen", err, p)
			}
		})
	}
}
