package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// Limits of the arm64 runs. Every MMIO exit of the nested guest costs
// about half a millisecond under software emulation, so the guest is
// quiet and the bounds are tight enough that both runs fit in about ten
// minutes on a 2-core machine.
const (
	arm64HostMemory   = "2G"
	arm64HostTimeout  = 5 * time.Minute
	arm64GuestTimeout = 200 * time.Second
	arm64GuestCmdline = "console=ttyAMA0 quiet panic=-1"
	// arm64Watchdog is the SP805's timeout; the guest opens it and
	// stops it again before it powers off.
	arm64Watchdog = 10 * time.Second
)

var (
	arm64Once sync.Once
	arm64Set  *guestSet
	arm64Bin  string
	arm64Err  error
)

// buildArm64 builds, once per run, the arm64 testinit guest, the disk and
// tandem cross-built for arm64.
func buildArm64(t *testing.T) (*guestSet, string) {
	t.Helper()
	arm64Once.Do(func() {
		cache, err := qemuhost.CacheDir()
		if err != nil {
			arm64Err = err
			return
		}
		k, err := Arm64Kernel(cache)
		if err != nil {
			arm64Err = err
			return
		}
		g := &guestSet{kernel: k, initrd: map[Guest]string{}, disk: filepath.Join(workDir, "disk-arm64.img")}
		f := filepath.Join(workDir, "initrd-arm64-testinit")
		if err := BuildGuestInitramfs(f, GuestTestinit, k, "arm64", "."); err != nil {
			arm64Err = fmt.Errorf("building the arm64 testinit guest: %w", err)
			return
		}
		g.initrd[GuestTestinit] = f
		if g.diskSum, err = WriteDisk(g.disk, diskSize); err != nil {
			arm64Err = err
			return
		}
		bin, err := tandemArm64()
		if err != nil {
			arm64Err = err
			return
		}
		arm64Set, arm64Bin = g, bin
	})
	if arm64Err != nil {
		t.Fatal(arm64Err)
	}
	return arm64Set, arm64Bin
}

var (
	tandemArm64Once sync.Once
	tandemArm64Bin  string
	tandemArm64Err  error
)

// tandemArm64 cross-builds cmd/tandem for arm64, once per run.
func tandemArm64() (string, error) {
	tandemArm64Once.Do(func() {
		bin := filepath.Join(workDir, "tandem-arm64")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/tandem-hv/tandem/cmd/tandem")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
		if out, err := cmd.CombinedOutput(); err != nil {
			tandemArm64Err = fmt.Errorf("building cmd/tandem for arm64: %v\n%s", err, out)
			return
		}
		tandemArm64Bin = bin
	})
	return tandemArm64Bin, tandemArm64Err
}

// arm64Script runs the guest bounded by arm64GuestTimeout, then writes
// the device tree the same guest gets with --dump-dtb and reports which
// GIC it describes, with the VMM's exit status and the time it took.
func arm64Script(run string) string {
	return boundedFn + fmt.Sprintf(`t0=$(cut -d' ' -f1 /proc/uptime)
bounded %d %s
status=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo
echo "E2E vmm-exit=$status guest-seconds=$(awk "BEGIN{print $t1-$t0}")"
%s
exit $status
`, int(arm64GuestTimeout/time.Second), run, dtbChecks(run))
}

// dtbChecks writes the device tree the guest of run gets with --dump-dtb
// and reports its size and which GIC it describes.
func dtbChecks(run string) string {
	return fmt.Sprintf(`%s --dump-dtb /tmp/guest.dtb >/dev/null 2>&1 && echo "E2E dtb-bytes=$(wc -c < /tmp/guest.dtb)"
echo "E2E gic=$(/tandem dtb dump /tmp/guest.dtb | grep -o 'arm,gic-v3\|arm,cortex-a15-gic' | head -n 1)"
`, run)
}

// arm64Hosts are the emulated arm64 hosts the ARM guests run on: one
// with a GICv3, one with a GICv2, whose guest gets a GICv2 (a Cortex-A15
// GIC with its virtual CPU interface).
var arm64Hosts = []struct {
	name, arch, gic string
}{
	{"GICv3", "arm64", "arm,gic-v3"},
	{"GICv2", qemuhost.Arm64GICv2, "arm,cortex-a15-gic"},
}

// runArmMatrix boots one emulated arm64 host and runs, in it, tandem run
// with each kernel of gs in turn: run gives the command line for a
// kernel and initramfs at their paths in the host. It returns the host's
// result, which section splits by kernel version. more are further
// guests to run after the matrix's, in the same boot.
func runArmMatrix(t *testing.T, hostArch, tandem string, disk string, gs []matrixGuest, run func(kernel, initrd string) string, more ...extraRun) *qemuhost.Result {
	t.Helper()
	files := map[string]string{"/tandem": tandem, "/guest/disk.img": disk}
	var runs []guestRun
	for _, mg := range gs {
		dir := "/guest/" + mg.version
		files[dir+"/vmlinuz"] = mg.kernel.Image
		files[dir+"/initrd"] = mg.initrd[GuestTestinit]
		runs = append(runs, guestRun{mg.version, run(dir+"/vmlinuz", dir+"/initrd")})
	}
	for _, m := range more {
		maps.Copy(files, m.files)
		runs = append(runs, m.run)
	}
	if len(runs) == 0 {
		// No kernel in the cache: each subtest says which is missing.
		return &qemuhost.Result{ExitStatus: -1}
	}
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    hostArch,
		Files:   files,
		Script:  sequenceScript(arm64GuestTimeout, runs, dtbChecks),
		Memory:  arm64HostMemory,
		Console: consoleLog{},
		Timeout: hostBoot + time.Duration(len(runs))*arm64GuestTimeout,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	t.Logf("host booted in %v; %d guest runs; whole run %v", res.Boot, len(runs), res.Total)
	return res
}

// TestTandemRunArm64 boots Debian's stock arm64 kernels, 6.1 and 6.12,
// with Tandem inside an emulated arm64 host (QEMU's virt board with
// EL2), once with a GICv3 host and once with a GICv2 one, both kernels
// in one boot of each, and checks what each guest saw: the kernel it was
// given, two CPUs (the second brought up by PSCI CPU_ON), the disk's
// exact content, its SP805 watchdog driven by sp805_wdt, its vsock
// device answering, and a PSCI SYSTEM_OFF that ends tandem with status
// 0. The host's CPU (QEMU's max) has SVE and a PMUv3, which KVM offers:
// on the GICv3 host the guest gets both by default (SVE in
// /proc/cpuinfo, perf's armv8_pmuv3 PMU counting cycles), on the GICv2
// host --pmu=false --sve=false take them away. Subtests are HOST/KERNEL
// (GICv2/6.12). In the GICv3 host's boot the real-time control guest
// runs too: Debian's PREEMPT_RT kernel says so in uname -v, and a short
// cyclictest's summary parses (GICv3/PREEMPT_RT).
func TestTandemRunArm64(t *testing.T) {
	features := map[string]struct {
		flags string // more tandem run flags
		on    bool   // the guest has SVE and a PMU that counts
	}{
		"GICv3": {"", true},
		"GICv2": {"--pmu=false --sve=false", false},
	}
	qemuhost.RequireArch(t, "arm64")
	g, tandem := buildArm64(t)
	gs := matrixGuests(t, "arm64", "arm64", []Guest{GuestTestinit})
	rt, rtErr := rtRun()
	for _, host := range arm64Hosts {
		t.Run(host.name, func(t *testing.T) {
			ft := features[host.name]
			var more []extraRun
			if host.name == "GICv3" && rtErr == nil {
				more = append(more, rt)
			}
			res := runArmMatrix(t, host.arch, tandem, g.disk, gs, func(kernel, initrd string) string {
				return fmt.Sprintf("/tandem run --kernel %s --initrd %s --cmdline %q --cpus %d --memory %s --disk /guest/disk.img --console stdio --watchdog %v --vsock %d %s",
					kernel, initrd, arm64GuestCmdline, guestCPUs, guestMemory, arm64Watchdog, guestCID, ft.flags)
			}, more...)
			for _, gk := range guestKernels {
				t.Run(gk.version, func(t *testing.T) {
					recordCell(t, "arm64/"+host.name+" testinit", gk.version)
					requireKernel(t, gs, gk, "arm64")
					r := section(res, gk.version)
					facts := ParseFacts(r.Output)
					t.Logf("%s; guest uptime at done %ss", arm64Timing(r), facts.Find("done")["uptime"])
					if !strings.Contains(r.Output, "E2E dtb-bytes=") {
						t.Errorf("tandem run --dump-dtb wrote no device tree")
					}
					if !strings.Contains(r.Output, "E2E gic="+host.gic) {
						t.Errorf("guest device tree does not describe a %s", host.gic)
					}
					checkKernel(t, r, gk.version)
					checkGuest(t, r, g)
					checkVsock(t, r)
					// The SP805's driver bound to the device tree's node,
					// logged its registration and took the node's
					// timeout-sec.
					want := map[string]string{"watchdog": "sp805-wdt", "timeout": fmt.Sprintf("%ds", int(arm64Watchdog/time.Second)), "registered": "yes"}
					if f := facts.Find("watchdog"); !maps.Equal(f, want) {
						t.Errorf("guest watchdog marker = %v, want %v", f, want)
					}
					checkCPUFeatures(t, facts.Find("cpu-features"), ft.on)
				})
			}
			if host.name == "GICv3" {
				t.Run("PREEMPT_RT", func(t *testing.T) { checkRTGuest(t, res, rtErr) })
			}
		})
	}
}

// extraRun is a guest run a host's script adds to its matrix's, with
// the files it needs in the host.
type extraRun struct {
	run   guestRun
	files map[string]string
}

// rtLoops is how many 1 ms wake-ups the test's cyclictest times: enough
// for a histogram, few enough for the emulated board. Its numbers are
// judged in make bench only.
const rtLoops = 1000

// rtRun is the real-time control guest's run: Debian's PREEMPT_RT arm64
// kernel with cyclictest (BuildCyclictestGuest), on one vCPU. The error
// says which test data is missing.
func rtRun() (extraRun, error) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return extraRun{}, err
	}
	k, err := RTKernel(cache)
	if err != nil {
		return extraRun{}, err
	}
	initrd := filepath.Join(workDir, "initrd-arm64-rt")
	if err := BuildCyclictestGuest(initrd, cache, k); err != nil {
		return extraRun{}, err
	}
	cmd := fmt.Sprintf("/tandem run --kernel /guest/rt/vmlinuz --initrd /guest/rt/initrd --cmdline %q --cpus 1 --memory %s --console stdio",
		arm64GuestCmdline+fmt.Sprintf(" tandem.rt-loops=%d", rtLoops), guestMemory)
	return extraRun{
		run:   guestRun{"rt", cmd},
		files: map[string]string{"/guest/rt/vmlinuz": k.Image, "/guest/rt/initrd": initrd},
	}, nil
}

// checkRTGuest checks the real-time guest's run: its kernel says
// PREEMPT_RT in uname -v, and cyclictest timed every wake-up asked for
// and ended well, with a summary that parses.
func checkRTGuest(t *testing.T, res *qemuhost.Result, buildErr error) {
	t.Helper()
	if buildErr != nil {
		cache, _ := qemuhost.CacheDir()
		testenv.RequireFile(t, filepath.Join(cache, "arm64-rt", "release"), "run scripts/testdata.sh arm64-rt")
		testenv.RequireFile(t, filepath.Join(cache, Cyclictest.Dir, "root", Cyclictest.Bin), "run scripts/testdata.sh "+Cyclictest.Dir)
		t.Fatalf("building the real-time guest: %v", buildErr)
	}
	r := section(res, "rt")
	t.Logf("%s", arm64Timing(r))
	if r.ExitStatus != 0 {
		t.Errorf("tandem run of the real-time guest exited %d, want 0:\n%s", r.ExitStatus, r.Tail(20))
	}
	if !strings.Contains(r.Output, CyclictestMarker+"uname-v ") || !strings.Contains(r.Output, "preempt-rt=yes") {
		t.Errorf("the real-time guest's uname -v does not say PREEMPT_RT:\n%s", r.Tail(20))
	}
	if !strings.Contains(r.Output, CyclictestMarker+"done status=0") {
		t.Errorf("cyclictest did not end with status 0:\n%s", r.Tail(20))
	}
	ct, err := ParseCyclictest(r.Output)
	if err != nil {
		t.Fatalf("ParseCyclictest() = %v", err)
	}
	t.Logf("cyclictest in the PREEMPT_RT guest, %d wake-ups: %+v", rtLoops, ct)
	if ct.Samples != rtLoops {
		t.Errorf("cyclictest samples = %d, want %d", ct.Samples, rtLoops)
	}
}

// checkCPUFeatures checks the guest's cpu-features marker: with the
// features, SVE listed in /proc/cpuinfo, an armv8_pmuv3 PMU and a cycles
// count above zero; without, none of them.
func checkCPUFeatures(t *testing.T, f map[string]string, want bool) {
	t.Helper()
	if f == nil {
		t.Errorf("no cpu-features marker from the guest")
		return
	}
	t.Logf("guest CPU features: %v", f)
	cycles, err := strconv.ParseUint(f["cycles"], 10, 64)
	if want {
		if f["sve"] != "yes" || !strings.HasPrefix(f["pmu"], "armv8_pmuv3") || err != nil || cycles == 0 {
			t.Errorf("guest cpu-features = %v, want sve=yes, an armv8_pmuv3 PMU and cycles counted", f)
		}
		return
	}
	if f["sve"] != "no" || f["pmu"] != "none" || err == nil {
		t.Errorf("guest cpu-features = %v, want sve=no pmu=none and no cycles counter (--pmu=false --sve=false)", f)
	}
}

func arm64Timing(res *qemuhost.Result) string {
	var out []string
	for _, l := range strings.Split(res.Output, "\n") {
		if i := strings.Index(l, "E2E "); i >= 0 {
			out = append(out, strings.TrimSpace(l[i+4:]))
		}
	}
	return strings.Join(out, " ")
}
