package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/qemuhost"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// measuredManifest is the demo's two guests, the control guest with
// measured: required and a kernel file of its own, which the script
// changes.
const measuredManifest = `guests:
  - name: control
    role: control
    kernel: control-vmlinuz
    initrd: control.img
    cmdline: console=ttyS0 quiet panic=-1 tandem.peer=4:5000
    memory: 192M
    measured: required
    vsock:
      cid: 3
      allow: ["infotainment:5000"]
    restart: {policy: always}
  - name: infotainment
    role: infotainment
    kernel: vmlinuz
    initrd: info.img
    cmdline: console=ttyS0 quiet panic=-1
    memory: 256M
    vsock:
      cid: 4
    restart: {policy: always, backoff: 200ms}
    after: [control]
`

// measuredScript runs the system on the host's TPM (its default,
// /dev/tpmrm0) until both guests run and the control guest reports,
// attests, stops it; then changes one byte of the control kernel and
// runs it again: the control guest must fail closed, the infotainment
// guest run, and attest name the kernel.
const measuredScript = `cd /s
ls /dev/tpm* | sed 's/^/E2E tpm-device /'
state() { /tandem ps 2>/dev/null | awk -v n="$1" '$1==n{print $3}'; }
/tandem system system.yaml &
SUP=$!
i=0
while [ $i -lt 240 ]; do
  if [ "$(state infotainment)" = running ] && /tandem logs control 2>/dev/null | grep -q 'TANDEM-CONTROL'; then break; fi
  sleep 1; i=$((i+1))
done
echo "E2E first-run wait=${i}s"
/tandem ps
/tandem measurements
/tandem attest --expected measurements.json
echo "E2E attest-as-built=$?"
kill $SUP
wait $SUP
kvm-shutdowns | sed 's/^/E2E first-run /'
echo "E2E first-run end"
printf 'X' | dd of=control-vmlinuz bs=1 seek=4096 conv=notrunc 2>/dev/null
/tandem system system.yaml &
SUP=$!
i=0
while [ $i -lt 120 ]; do
  if [ "$(state control)" = failed ] && [ "$(state infotainment)" = running ]; then break; fi
  sleep 1; i=$((i+1))
done
echo "E2E second-run wait=${i}s"
/tandem ps | sed 's/^/E2E ps /'
/tandem attest --expected measurements.json
echo "E2E attest-tampered=$?"
kill $SUP
wait $SUP
exit 0
`

// TestMeasuredBootEmulatedHost runs the measured chain end to end on an
// emulated x86 board whose TPM is swtpm, attached by QEMU as a TIS
// device that Debian's kernel drives (tpm_tis): tandem system measures
// both guests into /dev/tpmrm0 before starting them, tandem attest finds
// PCR 15 and the log as predicted from the same files outside the
// board, and after one byte of the control kernel changes, the control
// guest does not start, the infotainment guest does, and tandem attest
// names the kernel.
func TestMeasuredBootEmulatedHost(t *testing.T) {
	tandem, k := systemSetup(t)
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	sys := filepath.Join(workDir, "measured")
	os.MkdirAll(sys, 0o755)
	buildDemoInitramfs(t, filepath.Join(sys, "control.img"), "control", k)
	buildDemoInitramfs(t, filepath.Join(sys, "info.img"), "infotainment", k)
	img, err := os.ReadFile(k.Image)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"vmlinuz": img, "control-vmlinuz": img, "system.yaml": []byte(measuredManifest)} {
		if err := os.WriteFile(filepath.Join(sys, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The prediction tandem image build makes, from the same files.
	m, err := system.LoadManifest(filepath.Join(sys, "system.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	x, err := m.Predict()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.DefaultExpected(), x.Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	// A TPM for each boot of the host: one booted again after a panic
	// gets a fresh swtpm on the same state.
	tpmDir := t.TempDir()
	newTPM := func(attempt int) (string, func(), error) {
		tpm, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(tpmDir, "state"), Ctrl: filepath.Join(tpmDir, fmt.Sprintf("ctrl-%d.sock", attempt))})
		if err != nil {
			return "", nil, err
		}
		return tpm.Ctrl(), func() { tpm.Stop() }, nil
	}
	files := map[string]string{"/tandem": tandem}
	for _, f := range []string{"system.yaml", "vmlinuz", "control-vmlinuz", "control.img", "info.img", system.ExpectedMeasurements} {
		files["/s/"+f] = filepath.Join(sys, f)
	}
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Files: files, Script: measuredScript, Console: consoleLog{}, NewTPM: newTPM,
		Timeout: 10 * time.Minute, Silence: systemSilence,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	out := res.Output
	defer func() {
		if t.Failed() {
			t.Logf("last console lines:\n%s", res.Tail(80))
		}
	}()
	for _, want := range []struct{ what, re string }{
		{"the host has a TPM", `E2E tpm-device /dev/tpmrm0`},
		{"the guests were measured and the control guest booted", `control \| TANDEM-CONTROL`},
		{"the log lists the control kernel", `EV_IPL\s+[0-9a-f]{64}\s+tandem control kernel control-vmlinuz`},
		{"attest found PCR 15 as predicted", regexp.QuoteMeta(fmt.Sprintf("PCR 15 = %x: as expected", x.Value))},
		{"attest passed", `E2E attest-as-built=0`},
		{"the control guest failed closed, naming its kernel", `tandem: control: not started: measured: required: control kernel control-vmlinuz differs: sha256 [0-9a-f]{64}, expected ` + x.Components[0].Hex()},
		{"the control guest is failed", `E2E ps control\s+control\s+failed`},
		{"the infotainment guest runs", `E2E ps infotainment\s+infotainment\s+running`},
		{"attest named the kernel", `MISMATCH control kernel control-vmlinuz differs`},
		{"attest failed", `E2E attest-tampered=1`},
	} {
		if !regexp.MustCompile(want.re).MatchString(out) {
			t.Errorf("%s: no %q on the console", want.what, want.re)
		}
	}
	retries, err := measuredStarts(out)
	if err != nil {
		t.Error(err)
	}
	for _, l := range retries {
		t.Logf("retried: %s", l)
		testenv.Record(testenv.Event{Kind: "guest-retry", Test: t.Name(), Outcome: "retried", Detail: l})
	}
}

// measuredStarts checks how often measuredScript's console says the
// control guest's VMM started: once in the first run, and once more for
// a guest shutdown the emulated host's KVM traced in it (the software
// SVM's triple faults, docs/emulated-hosts.md), which the supervisor
// answers by its restart policy; never in the second run, whose kernel
// no longer matches its measurement. It returns an "E2E retry" line for
// each traced shutdown when the control guest was restarted.
func measuredStarts(out string) (retries []string, err error) {
	first, second, ok := strings.Cut(out, "E2E first-run end")
	if !ok {
		return nil, fmt.Errorf("no %q on the console: the first run did not end", "E2E first-run end")
	}
	var shutdowns []string
	for _, l := range strings.Split(first, "\n") {
		if i := strings.Index(l, "E2E first-run KVM-SHUTDOWN "); i >= 0 {
			shutdowns = append(shutdowns, strings.TrimSpace(l[i+len("E2E first-run "):]))
		}
	}
	starts := strings.Count(first, "tandem: control: started")
	if starts < 1 || starts > 1+min(len(shutdowns), guestTries-1) {
		return nil, fmt.Errorf("the control guest's VMM started %d times in the first run, want once (the host's KVM traced %d guest shutdowns)", starts, len(shutdowns))
	}
	if n := strings.Count(second, "tandem: control: started"); n != 0 {
		return nil, fmt.Errorf("the control guest's VMM started %d times after its kernel changed, want never", n)
	}
	if starts > 1 {
		for _, s := range shutdowns {
			retries = append(retries, "E2E retry control: restarted by its policy after a guest shutdown (triple fault) the host's KVM traced: "+s)
		}
	}
	return retries, nil
}

// vtpmManifest is one guest with a virtual TPM, restarted whenever it
// powers off; %s is its console.
const vtpmManifest = `guests:
  - name: secure
    kernel: vmlinuz
    initrd: vtpm.img
    cmdline: console=%s quiet panic=-1
    memory: 192M
    vtpm: true
    restart: {policy: always, backoff: 100ms}
`

// vtpmScript runs the system until the guest has booted three times.
const vtpmScript = `cd /s
/tandem system system.yaml &
SUP=$!
i=0
while [ $i -lt 300 ]; do
  if [ "$(/tandem logs secure 2>/dev/null | grep -c 'TANDEM-VTPM ')" -ge 3 ]; then break; fi
  sleep 1; i=$((i+1))
done
/tandem ps
kill $SUP
wait $SUP
ls state/secure/tpm | sed 's/^/E2E tpm-state /'
echo "E2E vtpm done"
exit 0
`

// vtpmHost is an emulated host the virtual-TPM test runs in.
type vtpmHost struct {
	arch    string // qemuhost's
	goarch  string // the guest program's
	console string // the guest's console device
	memory  string // the host's RAM; "" for qemuhost's default
	tandem  string // tandem built for the host
	kernel  Kernel // the guest's kernel, which drives the TIS
	// swtpm are the files that run swtpm in the host, as /usr/bin/swtpm.
	swtpm map[string]string
}

// TestVirtualTPM runs a stock Debian x86 guest with a virtual TPM under
// tandem system in the emulated host: its kernel's tpm_tis finds the TIS
// the DSDT describes, and the guest's go-tpm program extends and reads
// PCR 16 and keeps a boot count in NV. The guest powers off after each
// boot and the supervisor restarts it on a new swtpm over the same state:
// PCR 16 starts from zeros on every boot, as after a machine's reset,
// and reads back as extended; the boot count goes 1, 2, 3 and the SRK's
// name stays the same, so the TPM's state survived the restarts.
func TestVirtualTPM(t *testing.T) {
	tandem, k := systemSetup(t)
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	// The supervisor runs a swtpm for the guest: this machine's, with its
	// libraries, in the emulated host of the same architecture.
	files, err := qemuhost.Program(swtpm.Program)
	if err != nil {
		t.Fatal(err)
	}
	runVirtualTPM(t, vtpmHost{arch: "x86_64", goarch: "amd64", console: "ttyS0", tandem: tandem, kernel: k, swtpm: files})
}

// TestVirtualTPMArm64 is TestVirtualTPM on the emulated arm64 host: the
// guest is Debian's cloud-arm64 kernel, whose tpm_tis module (loaded
// from the guest's initramfs) binds the device tree's tcg,tpm-tis-mmio
// node, and the supervisor's swtpm is Debian's arm64 build.
func TestVirtualTPMArm64(t *testing.T) {
	qemuhost.RequireArch(t, "arm64")
	cache, err := qemuhost.CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(cache, "swtpm-arm64", "root")
	testenv.RequireFile(t, filepath.Join(root, "usr/bin/swtpm"), "scripts/testdata.sh swtpm-arm64")
	testenv.RequireFile(t, filepath.Join(cache, "arm64-cloud", "release"), "scripts/testdata.sh arm64-cloud")
	k, err := Arm64CloudKernel(cache)
	if err != nil {
		t.Fatal(err)
	}
	files, err := qemuhost.UnpackedProgram(root, "/usr/bin/swtpm")
	if err != nil {
		t.Fatal(err)
	}
	tandem, err := tandemArm64()
	if err != nil {
		t.Fatal(err)
	}
	runVirtualTPM(t, vtpmHost{arch: "arm64", goarch: "arm64", console: "ttyAMA0", memory: arm64HostMemory, tandem: tandem, kernel: k, swtpm: files})
}

// runVirtualTPM runs the virtual-TPM system in host h and checks the
// guest's three boots.
func runVirtualTPM(t *testing.T, h vtpmHost) {
	sys := filepath.Join(workDir, "vtpm-"+h.arch)
	os.MkdirAll(sys, 0o755)
	initrd := filepath.Join(sys, "vtpm.img")
	if err := buildDemoGuest(initrd, DemoGuestPkg("vtpm"), h.goarch, h.kernel, ".", VTPMModules); err != nil {
		t.Fatal(err)
	}
	man := filepath.Join(sys, "system.yaml")
	if err := os.WriteFile(man, []byte(fmt.Sprintf(vtpmManifest, h.console)), 0o644); err != nil {
		t.Fatal(err)
	}
	files := maps.Clone(h.swtpm)
	for dst, src := range map[string]string{"/tandem": h.tandem, "/s/vmlinuz": h.kernel.Image, "/s/vtpm.img": initrd, "/s/system.yaml": man} {
		files[dst] = src
	}
	res, err := qemuhost.Run(context.Background(), qemuhost.Options{
		Arch:    h.arch,
		Files:   files,
		Script:  vtpmScript,
		Memory:  h.memory,
		Console: consoleLog{},
		Timeout: 10 * time.Minute,
		Silence: systemSilence,
	})
	if err != nil {
		t.Fatalf("qemuhost.Run() = %v", err)
	}
	out := res.Output
	defer func() {
		if t.Failed() {
			t.Logf("last console lines:\n%s", res.Tail(60))
		}
	}()
	if !strings.Contains(out, "E2E vtpm done") {
		t.Fatalf("the script did not finish")
	}
	if m := regexp.MustCompile(`TANDEM-VTPM fail .*`).FindString(out); m != "" {
		t.Fatalf("the guest failed: %s", m)
	}
	lines := regexp.MustCompile(`secure \| TANDEM-VTPM boot=(\d+) pcr16-at-boot=([0-9a-f]+) pcr16=([0-9a-f]+) srk=([0-9a-f]+)`).FindAllStringSubmatch(out, -1)
	if len(lines) < 3 {
		t.Fatalf("%d TANDEM-VTPM lines, want 3:\n%s", len(lines), res.Tail(40))
	}
	d := sha256.Sum256([]byte("tandem vtpm"))
	extended := sha256.Sum256(append(make([]byte, 32), d[:]...))
	for i, l := range lines[:3] {
		t.Logf("boot %d: %s", i+1, l[0])
		if l[1] != fmt.Sprint(i+1) {
			t.Errorf("boot %d: the guest's boot count is %s", i+1, l[1])
		}
		if l[2] != strings.Repeat("0", 64) {
			t.Errorf("boot %d: PCR 16 at boot = %s, want zeros (a restart resets the TPM)", i+1, l[2])
		}
		if l[3] != hex.EncodeToString(extended[:]) {
			t.Errorf("boot %d: PCR 16 after the extend = %s, want %x", i+1, l[3], extended)
		}
		if l[4] != lines[0][4] {
			t.Errorf("boot %d: SRK name %s, first boot's %s: the TPM's seed changed", i+1, l[4], lines[0][4])
		}
	}
	if !strings.Contains(out, "E2E tpm-state tpm2-00.permall") {
		t.Errorf("no swtpm state under the state directory")
	}
}

func TestMeasuredStarts(t *testing.T) {
	const (
		started  = "tandem: control: started (pid 1)\n"
		shutdown = "E2E first-run KVM-SHUTDOWN vcpu=0 rip=0xffffffff81073744 sym=native_write_msr\n"
		end      = "E2E first-run end\n"
	)
	tests := []struct {
		name    string
		out     string
		retries int
		wantErr string
	}{
		{"started once, refused after the change", started + end + "tandem: control: not started: measured\n", 0, ""},
		{"restarted after a traced shutdown", started + started + shutdown + end, 1, ""},
		{"restarted with no traced shutdown", started + started + end, 0, "started 2 times in the first run"},
		{"restarted twice after one shutdown", started + started + started + shutdown + end, 0, "started 3 times in the first run"},
		{"never started", end, 0, "started 0 times in the first run"},
		{"started after the kernel changed", started + end + started, 0, "started 1 times after its kernel changed"},
		{"the first run never ended", started, 0, "the first run did not end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			retries, err := measuredStarts(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("measuredStarts() = %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("measuredStarts() = %v", err)
			}
			if len(retries) != tt.retries {
				t.Errorf("measuredStarts() retries = %q, want %d", retries, tt.retries)
			}
		})
	}
}
