package bsp

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/platforms"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// debianDTB returns the path of a DTB Debian ships, skipping (or in CI
// failing) the test when scripts/testdata.sh has not unpacked it.
func debianDTB(t *testing.T, arch, name string) string {
	t.Helper()
	p := filepath.Join(debianDTBs(arch), name)
	testenv.RequireFile(t, p, "run `make testdata` or scripts/testdata.sh "+arch)
	return p
}

type cl = platforms.Cluster

// k is a cluster of n cores of compatible c.
func k(c string, n int) platforms.Cluster { return platforms.Cluster{Compatible: c, Count: n} }

var (
	a7  = "arm,cortex-a7"
	a9  = "arm,cortex-a9"
	a15 = "arm,cortex-a15"
	a53 = "arm,cortex-a53"
	a57 = "arm,cortex-a57"
	a72 = "arm,cortex-a72"
)

// TestVerdictDebianBoards judges the DTBs of boards that broke the
// readers or that the verdict must get right, as Debian ships them.
func TestVerdictDebianBoards(t *testing.T) {
	tests := []struct {
		name, arch, dtb string
		want            Capability
		reason          string
		clusters        []platforms.Cluster
		gic             int      // GIC version; 0: none
		ppis            []uint32 // timer PPIs on the GIC; nil: none
		say             string   // in Verdict.String()
	}{
		// The timer uses interrupts-extended.
		{"RZ/G2M HiHope", "arm64", "renesas/r8a774a1-hihope-rzg2m.dtb", HostsKVM, "",
			[]cl{k(a57, 2), k(a53, 4)}, 2, []uint32{13, 14, 11, 10}, "hosts KVM"},
		// No GIC: the timer's interrupts go to the BCM2836 per-core controller.
		{"Raspberry Pi 3 B", "arm64", "broadcom/bcm2837-rpi-3-b.dtb", Cannot, ReasonNoGIC,
			[]cl{k(a53, 4)}, 0, nil, "no GIC: cannot host KVM"},
		{"Raspberry Pi 2 B", "armhf", "bcm2836-rpi-2-b.dtb", Cannot, ReasonNoGIC,
			[]cl{k(a7, 4)}, 0, nil, "brcm,bcm2836-l1-intc"},
		{"Raspberry Pi 4 B", "arm64", "broadcom/bcm2711-rpi-4-b.dtb", HostsKVM, "",
			[]cl{k(a72, 4)}, 2, []uint32{13, 14, 11, 10}, "hosts KVM"},
		// big.LITTLE: four Cortex-A53s, then two Cortex-A72s.
		{"RK3399 ROCK Pi 4B", "arm64", "rockchip/rk3399-rock-pi-4b.dtb", HostsKVM, "",
			[]cl{k(a53, 4), k(a72, 2)}, 3, []uint32{13, 14, 11, 10}, "4× arm,cortex-a53 + 2× arm,cortex-a72"},
		{"ZynqMP ZCU102", "arm64", "xilinx/zynqmp-zcu102-rev1.0.dtb", HostsKVM, "",
			[]cl{k(a53, 4)}, 2, []uint32{13, 14, 11, 10}, "GICv2"},
		{"TI J721E EVM", "arm64", "ti/k3-j721e-common-proc-board.dtb", HostsKVM, "",
			[]cl{k(a72, 2)}, 3, []uint32{13, 14, 11, 10}, "GICv3"},
		{"i.MX8MP EVK", "arm64", "freescale/imx8mp-evk.dtb", HostsKVM, "",
			[]cl{k(a53, 4)}, 3, []uint32{13, 14, 11, 10}, "GICv3"},
		{"Cubieboard2", "armhf", "sun7i-a20-cubieboard2.dtb", HostsKVM, "",
			[]cl{k(a7, 2)}, 2, []uint32{13, 14, 11, 10}, "5.6 or older"},
		{"Calxeda Highbank", "armhf", "highbank.dtb", GuestOnly, ReasonNoVirtCores,
			[]cl{k(a9, 4)}, 2, nil, "cannot host KVM"},
		// The maintenance interrupt is missing: fixable.
		{"OMAP5 uEVM", "armhf", "omap5-uevm.dtb", Cannot, ReasonNoMaintenance,
			[]cl{k(a15, 2)}, 2, []uint32{13, 14, 11, 10}, "fixable: add interrupts = <1 9 0x304>"},
		// A GIC-400 whose DTB leaves out GICH and GICV.
		{"HiSilicon Poplar", "arm64", "hisilicon/hi3798cv200-poplar.dtb", Cannot, ReasonNoGICVirt,
			[]cl{k(a53, 4)}, 2, []uint32{13, 14, 11, 10}, "fixable: arm,gic-400 always implements"},
		// One core under #address-cells = <0>: no reg.
		{"WonderMedia WM8750", "armhf", "wm8750-apc8750.dtb", GuestOnly, ReasonNoVirtCores,
			[]cl{k("arm,arm1176jzf", 1)}, 0, nil, "arm,arm1176jzf"},
		// A Cortex-M4 board: no /cpus, an NVIC.
		{"STM32F429 Discovery", "armhf", "stm32f429-disco.dtb", Cannot, ReasonNoGIC,
			nil, 0, nil, "arm,armv7m-nvic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := debianDTB(t, tt.arch, tt.dtb)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			v, f, err := JudgeDTB(data, p)
			if err != nil {
				t.Fatalf("JudgeDTB() = %v", err)
			}
			if v.Capability != tt.want || v.Reason != tt.reason || !strings.Contains(v.String(), tt.say) {
				t.Errorf("JudgeDTB() = %q (%s, %q), want %s, %q, saying %q", v, v.Capability, v.Reason, tt.want, tt.reason, tt.say)
			}
			if got := f.Clusters(); !slices.Equal(got, tt.clusters) {
				t.Errorf("Clusters() = %v, want %v", got, tt.clusters)
			}
			gic := 0
			if f.GIC != nil {
				gic = f.GIC.Version
			}
			if gic != tt.gic {
				t.Errorf("GIC version %d, want %d", gic, tt.gic)
			}
			var ppis []uint32
			if f.Timer != nil && f.Timer.OnGIC {
				ppis = f.Timer.PPIs
			}
			if !slices.Equal(ppis, tt.ppis) {
				t.Errorf("timer PPIs %v, want %v", ppis, tt.ppis)
			}
			if v.Capability == HostsKVM && !CheckDTB(nil, f).OK() {
				t.Errorf("CheckDTB(nil) fails for a board that hosts KVM: %v", failed(CheckDTB(nil, f)))
			}
		})
	}
}

// TestVerdictFamilies: every RZ/G2M (R-Car M3-W family) DTB, whose timer
// uses interrupts-extended, hosts KVM with the binding's PPIs, and every
// RK3399 DTB keeps its two Cortex-A72s.
func TestVerdictFamilies(t *testing.T) {
	for _, fam := range []struct {
		glob     string
		clusters []platforms.Cluster
	}{
		{"renesas/r8a774a1-*.dtb", []cl{k(a57, 2), k(a53, 4)}},
		{"rockchip/rk3399-*.dtb", []cl{k(a53, 4), k(a72, 2)}},
	} {
		t.Run(fam.glob, func(t *testing.T) {
			testenv.RequireFile(t, debianDTBs("arm64"), "run `make testdata` or scripts/testdata.sh arm64")
			files, _ := filepath.Glob(filepath.Join(debianDTBs("arm64"), fam.glob))
			if len(files) == 0 {
				t.Fatalf("no %s in %s", fam.glob, debianDTBs("arm64"))
			}
			for _, p := range files {
				f, _, err := hostdt.ReadFile(p)
				if err != nil {
					t.Errorf("ReadFile(%s) = %v", filepath.Base(p), err)
					continue
				}
				if v := Judge(f); v.Capability != HostsKVM {
					t.Errorf("%s: Judge() = %v, want %s", filepath.Base(p), v, HostsKVM)
				}
				if got := f.Clusters(); !slices.Equal(got, fam.clusters) {
					t.Errorf("%s: Clusters() = %v, want %v", filepath.Base(p), got, fam.clusters)
				}
				if f.Timer == nil || !slices.Equal(f.Timer.PPIs, []uint32{13, 14, 11, 10}) {
					t.Errorf("%s: timer %+v, want PPIs [13 14 11 10]", filepath.Base(p), f.Timer)
				}
			}
			t.Logf("%d DTBs", len(files))
		})
	}
}

// TestJudge covers each verdict on made-up facts, one field changed
// from a board that hosts KVM.
func TestJudge(t *testing.T) {
	good := func() *hostdt.Facts {
		return &hostdt.Facts{
			CPUs: []hostdt.CPU{{Compatible: a53}, {Compatible: a53}, {Compatible: a72}, {Compatible: a72}},
			GIC: &hostdt.GIC{Path: "/gic", Compatible: []string{"arm,gic-400"}, Version: 2, HasMaintenance: true, MaintenancePPI: 9,
				Regions: make([]platforms.Region, 4)},
			Timer: &hostdt.Timer{Path: "/timer", OnGIC: true, PPIs: []uint32{13, 14, 11, 10},
				Controller: &hostdt.Controller{Path: "/gic"}},
		}
	}
	tests := []struct {
		name   string
		mutate func(f *hostdt.Facts)
		want   Capability
		reason string
		fix    bool
	}{
		{"good", func(f *hostdt.Facts) {}, HostsKVM, "", false},
		{"GICv3", func(f *hostdt.Facts) { f.GIC.Version, f.GIC.Regions = 3, f.GIC.Regions[:2] }, HostsKVM, "", false},
		{"one cluster lacks the extensions", func(f *hostdt.Facts) { f.CPUs[3].Compatible = a9 }, GuestOnly, ReasonNoVirtCores, false},
		{"no GIC", func(f *hostdt.Facts) {
			f.GIC = nil
			f.Timer.OnGIC, f.Timer.PPIs, f.Timer.Controller = false, nil, &hostdt.Controller{Path: "/intc"}
		}, Cannot, ReasonNoGIC, false},
		{"no cpus", func(f *hostdt.Facts) { f.CPUs = nil }, Cannot, ReasonNoCPUs, false},
		{"unknown core", func(f *hostdt.Facts) { f.CPUs[0].Compatible = "acme,core" }, Cannot, ReasonUnknownCores, true},
		{"GICv2 without GICH/GICV", func(f *hostdt.Facts) { f.GIC.Regions = f.GIC.Regions[:2] }, Cannot, ReasonNoGICVirt, true},
		{"Qualcomm GIC without GICH/GICV", func(f *hostdt.Facts) {
			f.GIC.Regions, f.GIC.Compatible = f.GIC.Regions[:2], []string{"qcom,msm-qgic2"}
		}, Cannot, ReasonNoGICVirt, false},
		{"GICv3 without maintenance interrupt", func(f *hostdt.Facts) { f.GIC.Version, f.GIC.HasMaintenance = 3, false }, Cannot, ReasonNoMaintenance, true},
		{"no timer", func(f *hostdt.Facts) { f.Timer = nil }, Cannot, ReasonNoTimer, true},
		{"timer elsewhere", func(f *hostdt.Facts) {
			f.Timer.OnGIC, f.Timer.PPIs, f.Timer.Controller = false, nil, &hostdt.Controller{Path: "/intc"}
		}, Cannot, ReasonTimerNotOnGIC, false},
		{"timer without interrupts", func(f *hostdt.Facts) { f.Timer.OnGIC, f.Timer.PPIs, f.Timer.Controller = false, nil, nil }, Cannot, ReasonNoVirtualTimer, true},
		{"two timer PPIs", func(f *hostdt.Facts) { f.Timer.PPIs = f.Timer.PPIs[:2] }, Cannot, ReasonNoVirtualTimer, true},
		{"no hypervisor timer PPI", func(f *hostdt.Facts) { f.Timer.PPIs = f.Timer.PPIs[:3] }, HostsKVM, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			tt.mutate(f)
			v := Judge(f)
			if v.Capability != tt.want || v.Reason != tt.reason || (v.Fix != "") != tt.fix {
				t.Errorf("Judge() = %q (%s, %q, fix %q), want %s, %q, a fix: %v", v, v.Capability, v.Reason, v.Fix, tt.want, tt.reason, tt.fix)
			}
		})
	}
}

// TestImportBigLittle: an imported RK3399 board.yaml names both
// clusters, and the profile it decodes to matches the DTB (hostdt.Check).
func TestImportBigLittle(t *testing.T) {
	p := debianDTB(t, "arm64", "rockchip/rk3399-rock-pi-4b.dtb")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Import(data, p, "rock-pi-4b")
	if err != nil {
		t.Fatalf("Import() = %v", err)
	}
	b, err := platforms.Decode("board.yaml", g.Files[platforms.BoardFile])
	if err != nil {
		t.Fatalf("decoding the imported board.yaml: %v\n%s", err, g.Files[platforms.BoardFile])
	}
	want := platforms.CPU{Compatible: "arm,cortex-a53", Count: 6, Virtualization: true,
		Clusters: []platforms.Cluster{{Compatible: "arm,cortex-a53", Count: 4}, {Compatible: "arm,cortex-a72", Count: 2}}}
	if !reflect.DeepEqual(b.CPU, want) {
		t.Errorf("imported cpu = %+v, want %+v", b.CPU, want)
	}
	f, _, err := hostdt.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range hostdt.Mismatches(hostdt.Check(b, f)) {
		t.Errorf("the imported profile disagrees with its DTB: %s: DTB has %s, profile says %s", fd.Field, fd.Got, fd.Want)
	}
}

func TestJudgeDTBErrors(t *testing.T) {
	for _, data := range [][]byte{nil, []byte("not a device tree")} {
		if _, _, err := JudgeDTB(data, "x.dtb"); err == nil || !strings.Contains(err.Error(), "judging x.dtb") {
			t.Errorf("JudgeDTB(%q) = %v, want an error naming the file", data, err)
		}
	}
}

// FuzzJudgeDTB: whatever a DTB holds, reading its facts, judging it and
// checking it give a verdict or an error, never a panic. Seeded with the
// committed DTBs (the Debian ones are too large for the fuzzer to
// minimise; TestEveryDebianDTB covers them).
func FuzzJudgeDTB(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(repoRoot(), "dtb", "testdata", "*.dtb"))
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, facts, err := JudgeDTB(data, "f.dtb")
		if err != nil {
			return
		}
		_ = v.String()
		_ = CheckDTB(nil, facts)
	})
}
