package system

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system/measure"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// measuredManifest is a control guest that requires its measurements to
// match and an infotainment guest that starts after it, each with a
// kernel file of its own.
const measuredManifest = `guests:
  - name: control
    role: control
    kernel: control.vmlinuz
    initrd: control.cpio.gz
    cmdline: console=ttyAMA0 quiet
    measured: required
    restart: {policy: always, backoff: 10ms}
  - name: infotainment
    kernel: vmlinuz
    initrd: info.cpio.gz
    vsock: {cid: 4}
    restart: {policy: always, backoff: 10ms}
    after: [control]
`

// measuredDir is guestDir with control's own kernel.
func measuredDir(t *testing.T) string {
	dir := guestDir(t)
	k, err := os.ReadFile(filepath.Join(dir, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "control.vmlinuz"), k, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestComponentsFollowTheirInputs edits one input of a guest at a time
// and checks which of its components' digests change: each its own, and
// the manifest entry with any edit of the entry.
func TestComponentsFollowTheirInputs(t *testing.T) {
	dir := measuredDir(t)
	load := func(t *testing.T, manifest string) []measure.Component {
		t.Helper()
		m, err := LoadManifest(writeManifest(t, dir, []byte(manifest)))
		if err != nil {
			t.Fatal(err)
		}
		cs, err := m.Guest("control").Components()
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	base := load(t, measuredManifest)
	var kinds []string
	for _, c := range base {
		kinds = append(kinds, c.Kind+" "+c.Name)
	}
	if want := []string{"kernel control.vmlinuz", "initrd control.cpio.gz", "hardware ", "cmdline ", "manifest "}; !slices.Equal(kinds, want) {
		t.Fatalf("control's components = %q, want %q", kinds, want)
	}
	tests := []struct {
		name    string
		edit    func(t *testing.T) string // returns the manifest
		changed []string                  // kinds whose digests change
	}{
		{"kernel file", func(t *testing.T) string {
			appendByte(t, filepath.Join(dir, "control.vmlinuz"))
			return measuredManifest
		}, []string{measure.KindKernel}},
		{"command line", func(*testing.T) string {
			return strings.Replace(measuredManifest, "quiet", "loglevel=3", 1)
		}, []string{measure.KindCmdline, measure.KindManifest}},
		{"memory", func(*testing.T) string {
			return strings.Replace(measuredManifest, "    measured: required\n", "    measured: required\n    memory: 256M\n", 1)
		}, []string{measure.KindHardware, measure.KindManifest}},
		{"restart policy", func(*testing.T) string {
			return strings.Replace(measuredManifest, "backoff: 10ms}\n  - name: info", "backoff: 20ms}\n  - name: info", 1)
		}, []string{measure.KindManifest}},
		{"another guest", func(*testing.T) string {
			return strings.Replace(measuredManifest, "cid: 4", "cid: 5", 1)
		}, nil},
		{"indentation only", func(*testing.T) string {
			return strings.ReplaceAll(measuredManifest, "\n  ", "\n    ")
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := load(t, measuredManifest)
			after := load(t, tt.edit(t))
			var changed []string
			for i := range after {
				if after[i].Digest != before[i].Digest {
					changed = append(changed, after[i].Kind)
				}
			}
			if !slices.Equal(changed, tt.changed) {
				t.Errorf("changed components = %q, want %q", changed, tt.changed)
			}
		})
	}
}

func appendByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
}

// measuredRun is a supervisor over stand-in VMMs (see fakeVMM) that
// measures into a TPM; ps returns tandem ps's rows by guest name.
type measuredRun struct {
	s    *Supervisor
	cons *lockedBuffer
	log  *lockedBuffer
	sock string
	stop func()
}

func startMeasured(t *testing.T, dir, tpm string) *measuredRun {
	t.Helper()
	t.Setenv(fakeVMMEnv, "1")
	m, err := LoadManifest(filepath.Join(dir, "system.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := &measuredRun{cons: &lockedBuffer{}, log: &lockedBuffer{}, sock: filepath.Join(dir, "control.sock")}
	r.s = &Supervisor{M: m, VMM: []string{os.Args[0]}, RunDir: filepath.Join(dir, "run"), ControlSocket: r.sock,
		Out: r.cons, Log: r.log, TPM: tpm}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	done := make(chan error, 1)
	go func() { done <- r.s.Run(ctx) }()
	r.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the supervisor did not stop")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// out is the guests' console so far.
func (r *measuredRun) out() string { return r.cons.String() }

// lockedBuffer is a console the test reads while the supervisor writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (r *measuredRun) ps() map[string]string {
	var b bytes.Buffer
	if err := Control(r.sock, "ps", nil, &b); err != nil {
		return nil
	}
	rows := map[string]string{}
	for _, l := range strings.Split(b.String(), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows[f[0]] = l
		}
	}
	return rows
}

// waitStates waits until each named guest's ps row holds its state.
func (r *measuredRun) waitStates(t *testing.T, want map[string]string) map[string]string {
	t.Helper()
	var rows map[string]string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		rows = r.ps()
		ok := rows != nil
		for g, st := range want {
			ok = ok && strings.Contains(rows[g], " "+st+" ")
		}
		if ok {
			return rows
		}
	}
	t.Fatalf("tandem ps never showed %v: %q\nsupervisor log:\n%s", want, rows, r.log)
	return nil
}

func startTPM(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	dir := t.TempDir()
	tpm, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "tpm.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Stop() })
	return tpm.Socket()
}

func readPCR(t *testing.T, sock string) [32]byte {
	t.Helper()
	tpm, err := measure.OpenTPM(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	v, err := tpm.Read(measure.PCR)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readLog(t *testing.T, r *measuredRun) []measure.Component {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.s.RunDir, MeasurementLog))
	if err != nil {
		t.Fatal(err)
	}
	events, err := measure.ParseLog(b)
	if err != nil {
		t.Fatal(err)
	}
	return measure.Components(events)
}

// predict writes the manifest's expected measurements beside it, as the
// image builder does.
func predict(t *testing.T, dir string) *measure.Expected {
	t.Helper()
	m, err := LoadManifest(filepath.Join(dir, "system.yaml"))
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
	return x
}

// TestMeasuredBootMatchesPrediction runs the supervisor on swtpm: once
// both guests run, PCR 15 holds, byte for byte, the value predicted
// from the manifest, and the log lists the predicted components. A
// restart of a guest whose files did not change extends nothing.
func TestMeasuredBootMatchesPrediction(t *testing.T) {
	dir := measuredDir(t)
	writeManifest(t, dir, []byte(measuredManifest))
	x := predict(t, dir)
	tpm := startTPM(t)
	r := startMeasured(t, dir, tpm)
	r.waitStates(t, map[string]string{"control": StateRunning, "infotainment": StateRunning})
	if got := readPCR(t, tpm); got != x.Value {
		t.Errorf("PCR %d = %x, predicted %x", measure.PCR, got, x.Value)
	}
	if diffs := x.Compare(readLog(t, r)); len(diffs) > 0 {
		t.Errorf("the log departs from the prediction: %v", diffs)
	}
	if err := Control(r.sock, "restart infotainment", nil, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(r.ps()["infotainment"], " running ") || !strings.Contains(r.ps()["infotainment"], " 1 "); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("infotainment did not come back after tandem restart: %q", r.ps())
		}
	}
	if got := readPCR(t, tpm); got != x.Value {
		t.Errorf("after restarting infotainment unchanged: PCR %d = %x, want it unchanged at %x", measure.PCR, got, x.Value)
	}
}

// TestMeasuredBootRefuses checks the policy: a control guest with
// measured: required does not start when a component differs from its
// expected digest, or there is no TPM, or no expectation, and says why,
// naming the component; the infotainment guest, which starts after it,
// starts all the same.
func TestMeasuredBootRefuses(t *testing.T) {
	tests := []struct {
		name  string
		noTPM bool
		setup func(t *testing.T, dir string)
		// why is in control's ps row and in the supervisor's log.
		why, log string
	}{
		{
			name: "kernel changed after the prediction",
			setup: func(t *testing.T, dir string) {
				predict(t, dir)
				appendByte(t, filepath.Join(dir, "control.vmlinuz"))
			},
			why: "not started: measured: required: control kernel control.vmlinuz differs: sha256 ",
		},
		{
			name:  "no TPM",
			noTPM: true,
			setup: func(t *testing.T, dir string) { predict(t, dir) },
			why:   "not started: measured: required: not measured (no TPM at ",
			log:   "measurement skipped; guests with measured: required will not start (control)",
		},
		{
			name:  "no expected measurements",
			setup: func(t *testing.T, dir string) {},
			why:   "not started: measured: required: no expected measurements to compare with (reading expected measurements: open " + "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := measuredDir(t)
			writeManifest(t, dir, []byte(measuredManifest))
			tt.setup(t, dir)
			tpm := filepath.Join(dir, "no-tpm")
			if !tt.noTPM {
				tpm = startTPM(t)
			}
			r := startMeasured(t, dir, tpm)
			rows := r.waitStates(t, map[string]string{"control": StateFailed, "infotainment": StateRunning})
			if !strings.Contains(rows["control"], tt.why) {
				t.Errorf("control's ps row = %q, want %q", rows["control"], tt.why)
			}
			// The state can be seen before the line reaches the log.
			logged := func() bool {
				return strings.Contains(r.log.String(), "tandem: control: "+tt.why) && strings.Contains(r.log.String(), tt.log)
			}
			for deadline := time.Now().Add(5 * time.Second); !logged() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			}
			if !logged() {
				t.Errorf("supervisor log lacks %q or %q:\n%s", tt.why, tt.log, r.log)
			}
			if strings.Contains(r.log.String(), "control: started") {
				t.Errorf("control's VMM was started:\n%s", r.log)
			}
			if tt.noTPM {
				return
			}
			// What was extended is in the log, which accounts for the PCR.
			if got, want := readPCR(t, tpm), measure.Replay(measure.Events(readLog(t, r)), measure.PCR); got != want {
				t.Errorf("PCR %d = %x, the log replays to %x", measure.PCR, got, want)
			}
		})
	}
}

// TestVTPMRefusedForAArch32Guests checks that a manifest giving a 32-bit
// ARM guest a virtual TPM is refused by the host checks, at its vtpm
// line, on any host.
func TestVTPMRefusedForAArch32Guests(t *testing.T) {
	dir := guestDir(t)
	if err := os.WriteFile(filepath.Join(dir, "zImage"), fakekernel.ZImage(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(writeManifest(t, dir, []byte("guests:\n  - name: g\n    kernel: zImage\n    vtpm: true\n")))
	if err != nil {
		t.Fatal(err)
	}
	want := `system.yaml:4: guest "g": vtpm: a virtual TPM is offered to x86_64 and arm64 guests only`
	if err := m.CheckHost(Host{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckHost() = %v, want %q", err, want)
	}
}

// TestVTPMNeedsSWTPM checks that a host without swtpm is told so, at the
// guest's vtpm line, before anything starts.
func TestVTPMNeedsSWTPM(t *testing.T) {
	dir := guestDir(t)
	if err := os.WriteFile(filepath.Join(dir, "bzImage"), fakekernel.BzImage(), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := LoadManifest(writeManifest(t, dir, []byte("guests:\n  - name: g\n    kernel: bzImage\n    vtpm: true\n")))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	want := `system.yaml:4: guest "g": vtpm: swtpm is not on this host's PATH: install Debian's swtpm package`
	if err := m.CheckHost(Host{}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckHost() = %v, want %q", err, want)
	}
}

// TestVTPMPerRun runs a guest with vtpm: true under the supervisor (its
// VMM a stand-in, see fakeVMM): the VMM is given the command socket of a
// swtpm that answers, whose state is kept under the state directory, and
// a restart gives the next VMM a TPM again.
func TestVTPMPerRun(t *testing.T) {
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	dir := guestDir(t)
	writeManifest(t, dir, []byte("guests:\n  - name: secure\n    kernel: vmlinuz\n    vtpm: true\n    restart: {policy: always, backoff: 10ms}\n"))
	r := startMeasured(t, dir, "")
	answered := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); strings.Count(r.out(), "secure is up") < n; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("VMM %d never came up; console:\n%s\nlog:\n%s", n, r.out(), r.log)
			}
		}
		if got := strings.Count(r.out(), "secure: TPM answered: <nil>"); got != n {
			t.Fatalf("%d VMMs got an answering TPM, want %d; console:\n%s", got, n, r.out())
		}
	}
	answered(1)
	if err := Control(r.sock, "restart secure", nil, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	answered(2)
	if _, err := os.Stat(filepath.Join(dir, "state", "secure", "tpm", "tpm2-00.permall")); err != nil {
		t.Errorf("no TPM state under the state directory: %v", err)
	}
}

// TestMeasuredRecordedStartsAnyway changes the infotainment guest's
// kernel after the prediction: it is measured: recorded, so it starts, and
// the supervisor says which component differs; the control guest, whose
// components match, starts too.
func TestMeasuredRecordedStartsAnyway(t *testing.T) {
	dir := measuredDir(t)
	writeManifest(t, dir, []byte(measuredManifest))
	predict(t, dir)
	appendByte(t, filepath.Join(dir, "vmlinuz"))
	r := startMeasured(t, dir, startTPM(t))
	r.waitStates(t, map[string]string{"control": StateRunning, "infotainment": StateRunning})
	want := "tandem: measured boot: infotainment: infotainment kernel vmlinuz differs: sha256 "
	if !strings.Contains(r.log.String(), want) || !strings.Contains(r.log.String(), "; started anyway (measured: recorded)") {
		t.Errorf("supervisor log lacks %q:\n%s", want, r.log)
	}
}

// TestMeasureWithoutTPMReadsNothing checks that with no TPM the
// supervisor does not hash a guest's files before starting it: nothing
// would be extended or attested. The guest's kernel is gone after the
// manifest was loaded, so a read would show as a measuring error; a
// guest with measured: required is refused for want of the TPM instead.
func TestMeasureWithoutTPMReadsNothing(t *testing.T) {
	tests := []struct {
		name, measured string
		wantErr        string // "" for none
	}{
		{name: "measured: optional", measured: ""},
		{name: "measured: required", measured: "\n    measured: required", wantErr: "measured: required: not measured (no TPM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := guestDir(t)
			m, err := LoadManifest(writeManifest(t, dir, []byte("guests:\n  - name: control\n    kernel: vmlinuz"+tt.measured+"\n")))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "vmlinuz")); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			s := &Supervisor{M: m, Log: &log, RunDir: t.TempDir(), TPM: filepath.Join(dir, "no-tpm")}
			ms := s.newMeasurer()
			err = ms.measure(m.Guest("control"))
			s.output().flush()
			if got := fmt.Sprint(err); tt.wantErr == "" && err != nil || tt.wantErr != "" && !strings.Contains(got, tt.wantErr) {
				t.Errorf("measure() = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(log.String(), "measuring") || strings.Contains(fmt.Sprint(err), "measuring") {
				t.Errorf("the guest's files were read with no TPM; log:\n%s", log.String())
			}
		})
	}
}
