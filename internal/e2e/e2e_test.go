package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
)

// Sizes and limits of the end-to-end runs. An emulated host boots in
// seconds; a stock guest inside it, under nested KVM, in tens of seconds.
const (
	guestCPUs   = 2
	guestMemory = "256M"
	diskSize    = 4 << 20
	// hostTimeout bounds one emulated host run; guestTimeout the VMM
	// inside it, so a hung guest is reported as such while the host can
	// still print its markers.
	hostTimeout  = 4 * time.Minute
	guestTimeout = 150 * time.Second
	// hostBoot is what a host's timeout allows for its boot, beside
	// guestTimeout for each guest run of its script.
	hostBoot = 90 * time.Second
	// guestCmdline is quiet: every console byte is an exit of a nested
	// guest, and slow.
	guestCmdline = "console=ttyS0 quiet panic=-1"
)

// workDir holds what the tests build, shared by all tests of one run and
// removed at its end.
var workDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "tandem-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = d
	code := m.Run()
	printMatrixAtExit()
	os.RemoveAll(d)
	os.Exit(code)
}

// guestSet is the guest kernel, both initramfs images and the disk.
type guestSet struct {
	kernel  Kernel
	initrd  map[Guest]string
	disk    string
	diskSum string
}

var (
	guestsOnce sync.Once
	guests     *guestSet
	guestsErr  error
)

// buildGuests builds the guest images once per test run.
func buildGuests(t *testing.T) *guestSet {
	t.Helper()
	guestsOnce.Do(func() {
		cache, err := qemuhost.CacheDir()
		if err != nil {
			guestsErr = err
			return
		}
		k, err := X86Kernel(cache)
		if err != nil {
			guestsErr = err
			return
		}
		g := &guestSet{kernel: k, initrd: map[Guest]string{}, disk: filepath.Join(workDir, "disk.img")}
		for _, kind := range []Guest{GuestTestinit, GuestBusybox} {
			f := filepath.Join(workDir, "initrd-"+string(kind))
			if err := BuildGuestInitramfs(f, kind, k, "amd64", "."); err != nil {
				guestsErr = fmt.Errorf("building the %s guest: %w", kind, err)
				return
			}
			g.initrd[kind] = f
		}
		if g.diskSum, err = WriteDisk(g.disk, diskSize); err != nil {
			guestsErr = err
			return
		}
		guests = g
	})
	if guestsErr != nil {
		t.Fatal(guestsErr)
	}
	return guests
}

// consoleLog streams the emulated host's console to stderr with -v.
type consoleLog struct{}

func (consoleLog) Write(p []byte) (int, error) {
	if testing.Verbose() {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// boundedFn defines the host shell function bounded, which scripts use
// instead of busybox's timeout: bounded SECONDS COMMAND... runs the
// command and, if it is still running after SECONDS, says where each of
// its threads waits in the host kernel (/proc/PID/task/TID/stack), sends
// it SIGUSR1 (a tandem VMM prints each vCPU's state and registers: see
// vmm.DumpState), then SIGTERM (a VMM stops its guest and gives passed
// devices back), and SIGKILL 10 s later. Its status is the command's, or
// 124 (timeout's) when it was ended. A guest that hangs then says where
// it hangs, and which part of the VMM waits. The command's standard error
// and output also go to /tmp/bounded-stderr and /tmp/bounded-stdout,
// where the caller reads what the VMM and the guest's console said
// (retriedRun).
const boundedFn = `bounded() {
	limit=$1; shift
	rm -f /tmp/bounded-expired /tmp/bounded-stderr /tmp/bounded-stdout /tmp/bounded-fifo /tmp/bounded-ofifo
	mkfifo /tmp/bounded-fifo /tmp/bounded-ofifo
	tee /tmp/bounded-stderr </tmp/bounded-fifo >&2 &
	tee=$!
	tee /tmp/bounded-stdout </tmp/bounded-ofifo &
	otee=$!
	# A background command's stdin would be /dev/null: it keeps the
	# console, as under timeout.
	exec 3<&0
	"$@" <&3 >/tmp/bounded-ofifo 2>/tmp/bounded-fifo &
	pid=$!
	( sleep $limit
	  kill -0 $pid 2>/dev/null || exit 0
	  : >/tmp/bounded-expired
	  echo
	  echo "E2E bounded: $1 still running after ${limit}s; its threads:"
	  for t in /proc/$pid/task/*; do
	    echo "E2E thread $(cat $t/comm) tid=${t##*/} state=$(cut -d')' -f2 $t/stat | cut -d' ' -f2) wchan=$(cat $t/wchan 2>/dev/null)"
	    head -n 8 $t/stack 2>/dev/null | sed 's/^/E2E   /'
	  done
	  kill -USR1 $pid
	  sleep 2
	  kill -TERM $pid
	  sleep 10
	  kill -KILL $pid 2>/dev/null ) &
	watcher=$!
	wait $pid
	status=$?
	kill $watcher 2>/dev/null
	wait $watcher 2>/dev/null
	# Each tee ends once every writer has closed its fifo; a child the
	# command left behind could hold one open, so they are waited for 5 s.
	i=0
	while { kill -0 $tee || kill -0 $otee; } 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
	kill $tee $otee 2>/dev/null
	wait $tee $otee 2>/dev/null
	exec 3<&-
	[ -e /tmp/bounded-expired ] && status=124
	return $status
}
`

// timedScript wraps a command that boots the guest: it bounds it with
// guestTimeout and prints how long it took on the host's clock.
func timedScript(cmd string) string {
	return boundedFn + fmt.Sprintf(`t0=$(cut -d' ' -f1 /proc/uptime)
bounded %d %s
status=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo
echo "E2E vmm-exit=$status guest-seconds=$(awk "BEGIN{print $t1-$t0}")"
exit $status
`, int(guestTimeout/time.Second), cmd)
}

// checkGuest asserts the markers every test guest must print.
func checkGuest(t *testing.T, res *qemuhost.Result, g *guestSet) {
	t.Helper()
	facts := ParseFacts(res.Output)
	if fails := facts.Failures(); len(fails) > 0 {
		t.Errorf("guest reported failures: %q", fails)
	}
	if f := facts.Find("cpus"); f == nil || f["cpus"] != fmt.Sprint(guestCPUs) {
		t.Errorf("guest cpus marker = %v, want cpus=%d", f, guestCPUs)
	}
	if f := facts.Find("disk"); f == nil || f["disk"] != "/dev/vda" || f["sha256"] != g.diskSum || f["size"] != fmt.Sprint(diskSize) {
		t.Errorf("guest disk marker = %v, want disk=/dev/vda size=%d sha256=%s", f, diskSize, g.diskSum)
	}
	if facts.Find("done") == nil {
		t.Errorf("guest never printed TANDEM-TEST done")
	}
	if res.ExitStatus != 0 {
		t.Errorf("VMM exit status = %d, want 0 (guest powered off)", res.ExitStatus)
	}
	if t.Failed() {
		t.Logf("last console lines:\n%s", res.Tail(40))
	}
}

// checkNet asserts the guest found its virtio-net NIC and brought it up.
func checkNet(t *testing.T, res *qemuhost.Result) {
	t.Helper()
	if f := ParseFacts(res.Output).Find("net"); f == nil || f["net"] != "eth0" || f["mac"] == "" {
		t.Errorf("guest net marker = %v, want net=eth0 up with a MAC (virtio-net on a host TAP)", f)
	}
}

func guestTiming(res *qemuhost.Result) string {
	for _, l := range strings.Split(res.Output, "\n") {
		if i := strings.Index(l, "E2E vmm-exit="); i >= 0 {
			return strings.TrimSpace(l[i:])
		}
	}
	return "no timing marker"
}

// buildTandem builds cmd/tandem statically for the emulated host and
// reports whether it has a run command yet.
func buildTandem(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(workDir, "tandem")
	if _, err := os.Stat(bin); err != nil {
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/tandem-hv/tandem/cmd/tandem")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building cmd/tandem: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command(bin, "run", "--help").CombinedOutput(); err != nil {
		t.Skipf("skipping: cmd/tandem has no working run command yet (tandem run --help: %v: %s)", err, strings.TrimSpace(string(out)))
	}
	return bin
}

var guestKinds = []struct {
	name  string
	guest Guest
}{
	{"testinit", GuestTestinit},
	{"busybox", GuestBusybox},
}

// TestTandemRun boots Debian's stock cloud kernels, 6.1 and 6.12, with
// Tandem inside one emulated KVM host, with each test guest, and checks
// what each guest saw: the kernel it was given, two CPUs, the disk's
// exact content, its NIC up, its vsock device answering (testinit), and
// a clean power-off. Subtests are GUEST/KERNEL (busybox/6.12). In the
// same host boot the real-time control guest runs too: Debian's
// PREEMPT_RT amd64 kernel says so in uname -v, and a short cyclictest's
// summary parses (PREEMPT_RT).
func TestTandemRun(t *testing.T) {
	qemuhost.Require(t)
	tandem := buildTandem(t)
	g := buildGuests(t)
	gs := matrixGuests(t, "x86", "amd64", []Guest{GuestTestinit, GuestBusybox})
	files := map[string]string{"/tandem": tandem, "/guest/disk.img": g.disk}
	var runs []guestRun
	for _, mg := range gs {
		files["/guest/"+mg.version+"/vmlinuz"] = mg.kernel.Image
		for _, kind := range guestKinds {
			dir := "/guest/" + mg.version
			files[dir+"/initrd-"+kind.name] = mg.initrd[kind.guest]
			runs = append(runs, guestRun{kind.name + "/" + mg.version, fmt.Sprintf(
				"/tandem run --kernel %s/vmlinuz --initrd %s/initrd-%s --cmdline %q --cpus %d --memory %s --disk /guest/disk.img --net tap0 --vsock %d --console stdio",
				dir, dir, kind.name, guestCmdline, guestCPUs, guestMemory, guestCID)})
		}
	}
	rt, rtErr := rtRun("amd64", guestCmdline)
	if rtErr == nil {
		maps.Copy(files, rt.files)
		runs = append(runs, rt.runs...)
	}
	// Without a kernel in the cache no host boots: each subtest says
	// which is missing.
	res := &qemuhost.Result{ExitStatus: -1}
	if len(runs) > 0 {
		var err error
		res, err = qemuhost.Run(context.Background(), qemuhost.Options{
			Files: files,
			// The VMM attaches to an existing TAP; it creates none.
			Script:  "tunctl -t tap0 >/dev/null\n" + sequenceScript(guestTimeout, runs, nil),
			Console: consoleLog{},
			Timeout: hostBoot + time.Duration(len(runs)+1)*guestTimeout, // +1: one retry
		})
		if err != nil {
			t.Fatalf("qemuhost.Run() = %v", err)
		}
		t.Logf("host booted in %v; %d guest runs; whole run %v", res.Boot, len(runs), res.Total)
		noteRetries(t, res)
	}
	for _, kind := range guestKinds {
		t.Run(kind.name, func(t *testing.T) {
			for _, gk := range guestKernels {
				t.Run(gk.version, func(t *testing.T) {
					recordCell(t, "x86_64 "+kind.name, gk.version)
					requireKernel(t, gs, gk, "x86")
					r := section(res, kind.name+"/"+gk.version)
					t.Logf("%s; guest uptime at done %ss", guestTiming(r), ParseFacts(r.Output).Find("done")["uptime"])
					checkKernel(t, r, gk.version)
					checkGuest(t, r, g)
					checkNet(t, r)
					if kind.guest == GuestTestinit {
						checkVsock(t, r)
					}
				})
			}
		})
	}
	t.Run("PREEMPT_RT", func(t *testing.T) { checkRTGuest(t, res, "amd64", rtErr) })
}

// TestGuestsUnderQEMU boots the same guests with QEMU as the VMM inside
// the emulated host (microvm: ACPI-described virtio-mmio, as Tandem
// does). It shows the guest images and the markers work before Tandem is
// involved, and gives the time a peer VMM needs under nested KVM.
func TestGuestsUnderQEMU(t *testing.T) {
	if os.Getenv("TANDEM_E2E_PEER") == "" {
		// make bench boots the same guest under QEMU microvm every run;
		// here it would only double the nested runs of `make test`.
		t.Skip("skipping: the QEMU reference run is opt-in (TANDEM_E2E_PEER=1); make bench runs it")
	}
	qemuhost.Require(t)
	qemu, files, err := QEMUFiles()
	if err != nil {
		t.Skipf("skipping: cannot carry QEMU into the emulated host: %v", err)
	}
	g := buildGuests(t)
	for _, tt := range guestKinds {
		t.Run(tt.name, func(t *testing.T) {
			fs := map[string]string{
				"/guest/vmlinuz":  g.kernel.Image,
				"/guest/initrd":   g.initrd[tt.guest],
				"/guest/disk.img": g.disk,
			}
			for k, v := range files {
				fs[k] = v
			}
			cmd := fmt.Sprintf("%s -M microvm -accel kvm -cpu host -smp %d -m %s -nodefaults -no-user-config -display none -serial stdio -no-reboot "+
				"-kernel /guest/vmlinuz -initrd /guest/initrd -append %q "+
				"-drive id=disk,file=/guest/disk.img,format=raw,if=none,readonly=on -device virtio-blk-device,drive=disk",
				qemu, guestCPUs, guestMemory, guestCmdline)
			res, err := qemuhost.Run(context.Background(), qemuhost.Options{
				Files:   fs,
				Script:  timedScript(cmd),
				Console: consoleLog{},
				Timeout: hostTimeout,
			})
			if err != nil {
				t.Fatalf("qemuhost.Run() = %v", err)
			}
			t.Logf("host booted in %v; %s; guest uptime at done %ss; whole run %v", res.Boot, guestTiming(res), ParseFacts(res.Output).Find("done")["uptime"], res.Total)
			checkGuest(t, res, g)
		})
	}
}

func TestParseFacts(t *testing.T) {
	console := "[    1.0] random kernel line\r\n" +
		"\r\nTANDEM-TEST kernel=6.1.0-50-cloud-amd64\r\n" +
		"TANDEM-TEST cpus=2\n" +
		"junk TANDEM-TEST disk=/dev/vda size=4096 sha256=abc\n" +
		"TANDEM-TEST fail disk /dev/vdb: read error\n" +
		"TANDEM-TEST done uptime=1.50\n"
	facts := ParseFacts(console)
	if got, want := len(facts), 5; got != want {
		t.Fatalf("ParseFacts() = %d facts %v, want %d", got, facts, want)
	}
	tests := []struct {
		key, field, want string
	}{
		{"kernel", "kernel", "6.1.0-50-cloud-amd64"},
		{"cpus", "cpus", "2"},
		{"disk", "sha256", "abc"},
		{"disk", "size", "4096"},
		{"fail", "fail", "disk /dev/vdb: read error"},
		{"done", "uptime", "1.50"},
	}
	for _, tt := range tests {
		f := facts.Find(tt.key)
		if f == nil || f[tt.field] != tt.want {
			t.Errorf("Find(%q)[%q] = %v, want %q", tt.key, tt.field, f, tt.want)
		}
	}
	if got := facts.Failures(); len(got) != 1 {
		t.Errorf("Failures() = %q, want one", got)
	}
	if f := facts.Find("net"); f != nil {
		t.Errorf("Find(net) = %v, want nil", f)
	}
}

func TestWriteDisk(t *testing.T) {
	dir := t.TempDir()
	a, err := WriteDisk(filepath.Join(dir, "a"), 8192)
	if err != nil {
		t.Fatalf("WriteDisk() = %v", err)
	}
	b, _ := WriteDisk(filepath.Join(dir, "b"), 8192)
	c, _ := WriteDisk(filepath.Join(dir, "c"), 8704)
	if a != b || a == c {
		t.Errorf("WriteDisk sums = %s, %s, %s: want equal for equal sizes, different otherwise", a, b, c)
	}
	for _, n := range []int{0, 100, -512} {
		if _, err := WriteDisk(filepath.Join(dir, "bad"), n); err == nil {
			t.Errorf("WriteDisk(size %d) = nil error, want one", n)
		}
	}
}

// TestGuestInitramfs checks the guest images hold an /init and the
// virtio modules with everything they need.
func TestGuestInitramfs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds guest images")
	}
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := X86Kernel(cache); err != nil {
		t.Skipf("skipping: %v", err)
	}
	g := buildGuests(t)
	for _, tt := range guestKinds {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command("sh", "-c", "gzip -dc < "+g.initrd[tt.guest]+" | cpio -t --quiet").Output()
			if err != nil {
				t.Skipf("skipping: gzip or cpio unavailable: %v", err)
			}
			names := strings.Fields(string(out))
			sort.Strings(names)
			has := func(suffix string) bool {
				for _, n := range names {
					if strings.HasSuffix(n, suffix) {
						return true
					}
				}
				return false
			}
			for _, want := range []string{"init", "dev/console", "/modules.dep", "/virtio_mmio.ko", "/virtio_blk.ko", "/virtio.ko", "/virtio_ring.ko"} {
				if !has(want) {
					t.Errorf("initramfs lacks %s; has %q", want, names)
				}
			}
		})
	}
}
