package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/baremetal"
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

// tandemArm64 cross-builds cmd/tandem for arm64, once per run.
func tandemArm64() (string, error) {
	return hostProgram("github.com/tandem-hv/tandem/cmd/tandem", "arm64")
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

// hostRuns are guest runs an emulated host makes besides its kernel
// matrix: the files they need (paths in the host to host files) and the
// runs, in order.
type hostRuns struct {
	files map[string]string
	runs  []guestRun
}

// then returns the runs of r followed by those of o, with the files of
// both.
func (r hostRuns) then(o hostRuns) hostRuns {
	files := maps.Clone(r.files)
	if files == nil {
		files = map[string]string{}
	}
	maps.Copy(files, o.files)
	return hostRuns{files: files, runs: append(slices.Clone(r.runs), o.runs...)}
}

// runArmMatrix boots one emulated arm64 host and runs, in it, tandem run
// with each kernel of gs in turn, then the runs of more: run gives the
// command line for a kernel and initramfs at their paths in the host. It
// returns the host's result, which section splits by kernel version and
// by the names of more's runs.
func runArmMatrix(t *testing.T, hostArch, tandem string, disk string, gs []matrixGuest, run func(kernel, initrd string) string, more hostRuns) *qemuhost.Result {
	t.Helper()
	files := map[string]string{"/tandem": tandem, "/guest/disk.img": disk}
	var runs []guestRun
	for _, mg := range gs {
		dir := "/guest/" + mg.version
		files[dir+"/vmlinuz"] = mg.kernel.Image
		files[dir+"/initrd"] = mg.initrd[GuestTestinit]
		runs = append(runs, guestRun{mg.version, run(dir+"/vmlinuz", dir+"/initrd")})
	}
	maps.Copy(files, more.files)
	runs = append(runs, more.runs...)
	if len(runs) == 0 {
		// Nothing to run: each subtest says what is missing.
		return &qemuhost.Result{ExitStatus: -1}
	}
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    hostArch,
		Files:   files,
		Script:  sequenceScript(arm64GuestTimeout, runs, dtbChecks),
		Memory:  arm64HostMemory,
		Console: consoleLog{},
		Timeout: hostBoot + time.Duration(len(runs)+1)*arm64GuestTimeout, // +1: one retry
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	t.Logf("host booted in %v; %d guest runs; whole run %v", res.Boot, len(runs), res.Total)
	noteRetries(t, res)
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
// host --pmu=false --sve=false take them away. In the same boot of each
// host it runs the arm64 bare-metal test guest (internal/baremetal) as an
// ELF executable and as a raw image, at the default address and at a
// --load-address (checkBareMetalArm64). After those, the GICv3 host boots
// Debian's unmodified U-Boot (u-boot-qemu's qemu_arm64 build) with
// --firmware and no kernel, and U-Boot boots the stock 6.1 kernel from
// the guest's disk (checkFirmwareGuest). Subtests are HOST/KERNEL
// (GICv2/6.12), HOST/baremetal/FORMAT (GICv3/baremetal/raw) and
// GICv3/u-boot-extlinux (extlinux.conf on a FAT partition) and
// GICv3/u-boot-efi-grub (Debian's GRUB on an EFI system partition). In
// the GICv3 host's boot the real-time control guest runs too: Debian's
// PREEMPT_RT kernel says so in uname -v, and a short cyclictest's summary
// parses (GICv3/PREEMPT_RT). In both hosts' boots a guest with Debian's
// perf runs `perf stat -e cycles true` with the host's flags: cycles
// counted on the GICv3 host, not counted with --pmu=false on the GICv2
// one (HOST/perf).
func TestTandemRunArm64(t *testing.T) {
	features := map[string]struct {
		flags string // more tandem run flags
		on    bool   // the guest has SVE and a PMU that counts
		gic   string // what the bare-metal guest finds: v3 or v2
	}{
		"GICv3": {"", true, "v3"},
		"GICv2": {"--pmu=false --sve=false", false, "v2"},
	}
	qemuhost.RequireArch(t, "arm64")
	g, tandem := buildArm64(t)
	gs := matrixGuests(t, "arm64", "arm64", []Guest{GuestTestinit})
	bm := bareMetalArm64Runs(t)
	fws := firmwareGuests(t, g.kernel, g.initrd[GuestTestinit])
	rt, rtErr := rtRun("arm64", arm64GuestCmdline)
	perfInitrd, perfErr := perfGuest(g.kernel)
	for _, host := range arm64Hosts {
		t.Run(host.name, func(t *testing.T) {
			ft := features[host.name]
			more := bm
			if perfErr == nil {
				more = more.then(perfRun(g.kernel, perfInitrd, ft.flags))
			}
			if host.name == "GICv3" {
				more = more.then(firmwareRuns(fws))
				if rtErr == nil {
					more = more.then(rt)
				}
			}
			res := runArmMatrix(t, host.arch, tandem, g.disk, gs, func(kernel, initrd string) string {
				return fmt.Sprintf("/tandem run --kernel %s --initrd %s --cmdline %q --cpus %d --memory %s --disk /guest/disk.img --console stdio --watchdog %v --vsock %d %s",
					kernel, initrd, arm64GuestCmdline, guestCPUs, guestMemory, arm64Watchdog, guestCID, ft.flags)
			}, more)
			for _, fg := range fws {
				if host.name != "GICv3" {
					break
				}
				t.Run(fg.name, func(t *testing.T) {
					checkFirmwareGuest(t, res, fg)
				})
			}
			t.Run("baremetal", func(t *testing.T) {
				for _, f := range bareMetalFormats {
					t.Run(f.name, func(t *testing.T) {
						checkBareMetalArm64(t, section(res, "baremetal-"+f.name), ft.gic, host.gic)
					})
				}
			})
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
			t.Run("perf", func(t *testing.T) { checkPerfGuest(t, res, perfErr, ft.on) })
			if host.name == "GICv3" {
				t.Run("PREEMPT_RT", func(t *testing.T) { checkRTGuest(t, res, "arm64", rtErr) })
			}
		})
	}
}

// perfGuest builds the perf guest's initramfs (BuildPerfGuest) for k, the
// stock arm64 kernel. The error says which test data is missing.
func perfGuest(k Kernel) (string, error) {
	cache, err := qemuhost.CacheDir()
	if err != nil {
		return "", err
	}
	initrd := filepath.Join(workDir, "initrd-arm64-perf")
	if err := BuildPerfGuest(initrd, cache, k); err != nil {
		return "", err
	}
	return initrd, nil
}

// perfRun is the perf guest's run (section "perf") with one vCPU and
// tandem run's flags of the host (the features switched off or not).
func perfRun(k Kernel, initrd, flags string) hostRuns {
	cmd := fmt.Sprintf("/tandem run --kernel /guest/perf/vmlinuz --initrd /guest/perf/initrd --cmdline %q --cpus 1 --memory %s --console stdio %s",
		arm64GuestCmdline, guestMemory, flags)
	return hostRuns{
		runs:  []guestRun{{"perf", cmd}},
		files: map[string]string{"/guest/perf/vmlinuz": k.Image, "/guest/perf/initrd": initrd},
	}
}

// checkPerfGuest checks the perf guest's run: Debian's perf ran `perf
// stat -e cycles true` and, with a PMU (on), counted cycles and exited 0;
// without one (--pmu=false), reported cycles not supported or failed.
func checkPerfGuest(t *testing.T, res *qemuhost.Result, buildErr error, on bool) {
	t.Helper()
	if buildErr != nil {
		cache, _ := qemuhost.CacheDir()
		testenv.RequireFile(t, filepath.Join(cache, Perf.Dir, "root", Perf.Bin), "run scripts/testdata.sh "+Perf.Dir)
		t.Fatalf("building the perf guest: %v", buildErr)
	}
	r := section(res, "perf")
	t.Logf("%s", arm64Timing(r))
	if r.ExitStatus != 0 {
		t.Errorf("tandem run of the perf guest exited %d, want 0:\n%s", r.ExitStatus, r.Tail(20))
	}
	st, err := ParsePerfStat(r.Output)
	if err != nil {
		t.Fatalf("ParsePerfStat() = %v\n%s", err, r.Tail(20))
	}
	t.Logf("perf stat -e cycles true in the guest, exit status %d:\n%s", st.Status, st.Report)
	if on {
		if !st.Counted || st.Cycles == 0 || st.Status != 0 {
			t.Errorf("perf stat = %+v, want cycles counted (> 0) and exit status 0", st)
		}
		return
	}
	if st.Counted {
		t.Errorf("perf stat counted %d cycles with --pmu=false, want <not supported> or an error", st.Cycles)
	}
	if st.Reason == "" {
		t.Errorf("perf stat = %+v, want a reason cycles were not counted", st)
	}
}

// bareMetalFormats are the ways the arm64 bare-metal guest is run: its
// ELF executable, entered at e_entry, and its raw image, at the default
// load address (RAM + 0x80000) and at one --load-address gives (the
// program runs at any 2 KiB aligned address: its vector table's
// alignment); args are tandem run's flags for the
// guest in dir.
var bareMetalFormats = []struct {
	name string
	args func(img baremetal.Arm64Images, dir string) string
}{
	{"ELF", func(img baremetal.Arm64Images, dir string) string {
		return "--kernel " + path.Join(dir, filepath.Base(img.ELF))
	}},
	{"raw", func(img baremetal.Arm64Images, dir string) string {
		return "--kernel " + path.Join(dir, filepath.Base(img.Raw)) + " --kernel-format raw"
	}},
	{"raw-load-address", func(img baremetal.Arm64Images, dir string) string {
		return "--kernel " + path.Join(dir, filepath.Base(img.Raw)) + " --kernel-format raw --load-address 0x40200000"
	}},
}

// bareMetalArm64Runs builds the arm64 bare-metal guest and returns its
// runs, one per bareMetalFormats entry (sections "baremetal-FORMAT"),
// with two vCPUs (it starts the second) and no command line. Where the
// cross binutils are missing it returns none: checkBareMetalArm64 then
// says which (and fails in CI).
func bareMetalArm64Runs(t *testing.T) hostRuns {
	t.Helper()
	dir := filepath.Join(workDir, "baremetal-arm64")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	img, err := baremetal.BuildArm64(dir)
	if errors.Is(err, exec.ErrNotFound) {
		t.Logf("no bare-metal runs: %v", err)
		return hostRuns{}
	}
	if err != nil {
		t.Fatal(err)
	}
	const inHost = "/guest/baremetal"
	more := hostRuns{files: map[string]string{
		path.Join(inHost, filepath.Base(img.ELF)): img.ELF,
		path.Join(inHost, filepath.Base(img.Raw)): img.Raw,
	}}
	for _, f := range bareMetalFormats {
		more.runs = append(more.runs, guestRun{"baremetal-" + f.name,
			fmt.Sprintf("/tandem run %s --cmdline '' --cpus 2 --memory 64M --console stdio", f.args(img, inHost))})
	}
	return more
}

// checkBareMetalArm64 checks a run of the arm64 bare-metal guest: every
// line it prints, in order and nothing else (the second CPU up through
// PSCI CPU_ON, the GIC it found, the virtual timer's interrupt taken
// through it: baremetal.Arm64Console), its PSCI SYSTEM_OFF ending
// tandem run with status 0, and the device tree it was given describing
// the host's kind of GIC (hostGIC).
func checkBareMetalArm64(t *testing.T, r *qemuhost.Result, gic, hostGIC string) {
	t.Helper()
	for _, tool := range []string{"as", "ld", "objcopy"} {
		testenv.RequireCommand(t, baremetal.Arm64Tool(tool), baremetal.Arm64Binutils)
	}
	t.Logf("%s", arm64Timing(r))
	if got, want := baremetal.Arm64Lines(r.Output), baremetal.Arm64Console(gic); !slices.Equal(got, want) {
		t.Errorf("bare-metal guest printed\n%s\nwant\n%s\nconsole:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), r.Output)
	}
	if r.ExitStatus != 0 {
		t.Errorf("tandem run exit status %d, want 0 (PSCI SYSTEM_OFF)", r.ExitStatus)
	}
	if !strings.Contains(r.Output, "E2E gic="+hostGIC) {
		t.Errorf("guest device tree does not describe a %s", hostGIC)
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
