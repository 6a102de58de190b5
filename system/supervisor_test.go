package system

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/devices/tpm"
	"github.com/tandem-hv/tandem/vmm"
)

// fakeVMMEnv makes the test binary a stand-in for `tandem vmm` (see
// TestMain): the guest named "broken" fails as a VMM does on a host
// without KVM, with its one-line error and the status vmm.ExitFatal; any
// other guest runs until SIGTERM and exits vmm.ExitStopped, having sent
// a command to the TPM --vtpm names, if any, and said how it went.
const fakeVMMEnv = "TANDEM_TEST_FAKE_VMM"

// fakeVMMError is the broken guest's last words.
const fakeVMMError = "tandem: guest broken: creating the VM: no /dev/kvm: load the kvm module (kvm-intel, kvm-amd, or a host kernel with KVM built in)"

func TestMain(m *testing.M) {
	if os.Getenv(fakeVMMEnv) == "1" {
		os.Exit(fakeVMM(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeVMM(args []string) int {
	var guest string
	for i, a := range args {
		if a == "--guest" && i+1 < len(args) {
			guest = args[i+1]
		}
	}
	if guest == "broken" {
		fmt.Println("a console line before the end")
		fmt.Fprintln(os.Stderr, fakeVMMError)
		return int(vmm.ExitFatal)
	}
	for i, a := range args {
		if a == "--vtpm" && i+1 < len(args) {
			// TPM2_GetRandom of 8 bytes (TPM 2.0 Part 3, §16.1).
			_, err := tpm.SocketBackend{Path: args[i+1], Timeout: 5 * time.Second}.Execute([]byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, 0, 8})
			fmt.Printf("%s: TPM answered: %v\n", guest, err)
		}
	}
	serveFakeDisplay(guest, args)
	if guest == "echo" {
		// What is typed on its console comes back as a line.
		go func() {
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				fmt.Printf("echo got: %q\n", sc.Text())
			}
		}()
	}
	switch guest {
	case "midline":
		// Its VMM warns while the guest is half-way through a line.
		fmt.Print("half a guest line, ")
		time.Sleep(100 * time.Millisecond)
		fmt.Fprintln(os.Stderr, "tandem: warning: midline: a warning")
		time.Sleep(100 * time.Millisecond)
		fmt.Println("and its end")
		fmt.Fprintln(os.Stderr, "tandem: guest midline: its own last words")
		fmt.Println("a guest line after them")
		return int(vmm.ExitFatal)
	case "quits":
		// Its guest powers off at once: the restart policy decides.
		fmt.Printf("%s is up\n", guest)
		return int(vmm.ExitPowerOff)
	case "stubborn":
		// A VMM stuck past SIGTERM: only SIGKILL ends it.
		signal.Ignore(syscall.SIGTERM)
		fmt.Printf("%s is up\n", guest)
		select {}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	fmt.Printf("%s is up\n", guest)
	<-stop
	return int(vmm.ExitStopped)
}

// TestDecide pins what follows each end of a VMM: an error no restart
// cures fails the guest whatever its policy; back-off is for the
// guest's own ends.
func TestDecide(t *testing.T) {
	always := Restart{Policy: RestartAlways}
	onFailure := Restart{Policy: RestartOnFailure, Limit: 3}
	never := Restart{Policy: RestartNever}
	tests := []struct {
		name        string
		r           Restart
		exit        int
		stop        bool
		consecutive int
		want        afterExit
	}{
		{"fatal under always", always, int(vmm.ExitFatal), false, 0, leaveFailed},
		{"fatal under on-failure", onFailure, int(vmm.ExitFatal), false, 0, leaveFailed},
		{"fatal under never", never, int(vmm.ExitFatal), false, 0, leaveFailed},
		{"fatal after tandem stop", always, int(vmm.ExitFatal), true, 0, leaveStopped},
		{"crash under always", always, int(vmm.ExitCrash), false, 7, restartGuest},
		{"VMM error under always", always, int(vmm.ExitError), false, 0, restartGuest},
		{"killed under on-failure", onFailure, -1, false, 0, restartGuest},
		{"watchdog under on-failure", onFailure, int(vmm.ExitWatchdog), false, 2, restartGuest},
		{"crash over the limit", onFailure, int(vmm.ExitCrash), false, 3, leaveFailed},
		{"power-off under on-failure", onFailure, int(vmm.ExitPowerOff), false, 0, leaveStopped},
		{"power-off under always", always, int(vmm.ExitPowerOff), false, 0, restartGuest},
		{"crash under never", never, int(vmm.ExitCrash), false, 0, leaveStopped},
		{"crash after tandem stop", always, int(vmm.ExitStopped), true, 0, leaveStopped},
	}
	for _, tt := range tests {
		if got := tt.r.decide(tt.exit, tt.stop, tt.consecutive); got != tt.want {
			t.Errorf("%s: decide(%d, %v, %d) = %d, want %d", tt.name, tt.exit, tt.stop, tt.consecutive, got, tt.want)
		}
	}
}

// TestFatalNotRestarted runs a supervisor over two stand-in VMMs (see
// fakeVMM), without KVM: the guest whose VMM exits vmm.ExitFatal is
// started once, left failed with its VMM's reason in ps, and logged
// once with the fix; the other guest keeps running.
func TestFatalNotRestarted(t *testing.T) {
	t.Setenv(fakeVMMEnv, "1")
	dir := guestDir(t)
	manifest := `guests:
  - name: broken
    kernel: vmlinuz
    restart: {policy: always, backoff: 10ms}
  - name: steady
    kernel: vmlinuz
    restart: {policy: always, backoff: 10ms}
`
	m, err := LoadManifest(writeManifest(t, dir, []byte(manifest)))
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	sock := filepath.Join(dir, "control.sock")
	s := &Supervisor{M: m, VMM: []string{os.Args[0]}, RunDir: filepath.Join(dir, "run"), ControlSocket: sock, Out: &out, Log: &log}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	// ps returns the rows of tandem ps by guest name.
	ps := func() map[string]string {
		var b bytes.Buffer
		if err := Control(sock, "ps", nil, &b); err != nil {
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
	settled := func(rows map[string]string) bool {
		return strings.Contains(rows["broken"], " failed ") && strings.Contains(rows["steady"], " running ")
	}
	var rows map[string]string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rows = ps(); settled(rows) {
			break
		}
	}
	if !settled(rows) {
		t.Fatalf("tandem ps never showed broken failed and steady running: %q", rows)
	}
	// Twenty back-offs later, still: no restart.
	time.Sleep(200 * time.Millisecond)
	rows = ps()
	if !settled(rows) {
		t.Errorf("tandem ps = %q, want broken still failed and steady running", rows)
	}
	broken := strings.Fields(rows["broken"])
	if len(broken) < 6 || broken[5] != "0" {
		t.Errorf("tandem ps row %q, want RESTARTS 0", rows["broken"])
	}
	if want := "cannot run: creating the VM: no /dev/kvm: load the kvm module"; !strings.Contains(rows["broken"], want) {
		t.Errorf("tandem ps row %q, want the reason %q", rows["broken"], want)
	}
	// kill ends steady's VMM as a crash would: its policy restarts it.
	var killed bytes.Buffer
	if err := Control(sock, "kill steady", nil, &killed); err != nil || !strings.HasPrefix(killed.String(), "killed steady's VMM (pid ") {
		t.Errorf("kill steady = %q, %v; want the VMM killed", killed.String(), err)
	}
	restarted := func(rows map[string]string) bool {
		f := strings.Fields(rows["steady"])
		return len(f) > 5 && f[2] == "running" && f[5] == "1"
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if rows = ps(); restarted(rows) {
			break
		}
	}
	if !restarted(rows) {
		t.Errorf("tandem ps row %q after kill steady; want it running again after 1 restart", rows["steady"])
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the supervisor did not stop")
	}
	var fatalLines []string
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.HasPrefix(l, "tandem: broken: ") && !strings.Contains(l, "started (pid") {
			fatalLines = append(fatalLines, l)
		}
	}
	want := "tandem: broken: cannot run: creating the VM: no /dev/kvm: load the kvm module (kvm-intel, kvm-amd, or a host kernel with KVM built in); not restarted, as no restart can cure it: fix it, then tandem start broken"
	if len(fatalLines) != 1 || fatalLines[0] != want {
		t.Errorf("supervisor log about broken = %q, want exactly %q; whole log:\n%s", fatalLines, want, log.String())
	}
	if n := strings.Count(log.String(), "broken: started"); n != 1 {
		t.Errorf("broken's VMM started %d times, want once; log:\n%s", n, log.String())
	}
	if !strings.Contains(out.String(), "steady | steady is up") {
		t.Errorf("console = %q, want steady's line", out.String())
	}
}

// TestVMMLinesApart runs a stand-in VMM (fakeVMM's midline) that warns
// while its guest is half-way through a console line: the supervisor's
// output has the warning and the guest's line each whole, and the reason
// it gives for the VMM's end is the VMM's own last line, not a line the
// guest printed after it.
func TestVMMLinesApart(t *testing.T) {
	t.Setenv(fakeVMMEnv, "1")
	s, sock, out, log := runFakeSystem(t, guestDir(t), "guests:\n  - name: midline\n    kernel: vmlinuz\n", 20*time.Second)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var b bytes.Buffer
		if Control(sock, "ps", nil, &b) == nil && strings.Contains(b.String(), " failed ") {
			break
		}
	}
	s.output().flush()
	lines := strings.Split(out.String(), "\n")
	for _, want := range []string{
		"midline | half a guest line, and its end",
		"midline | tandem: warning: midline: a warning",
		"midline | a guest line after them",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("the supervisor's output lacks the whole line %q:\n%s", want, out.String())
		}
	}
	if want := "midline: cannot run: its own last words"; !strings.Contains(log.String(), want) {
		t.Errorf("the supervisor's log lacks %q:\n%s", want, log.String())
	}
}

// TestControlKillThreadsInput drives the supervisor's control socket
// with fake VMMs (fakeVMM): input types on a guest's console, and what
// it typed comes back on the guest's console; threads lists the VMM's
// threads; kill ends the VMM with SIGKILL, and the restart policy starts
// a new one; each command on a guest that does not exist is an error.
func TestControlKillThreadsInput(t *testing.T) {
	t.Setenv(fakeVMMEnv, "1")
	dir := guestDir(t)
	s, sock, out, log := runFakeSystem(t, dir, "guests:\n  - name: echo\n    kernel: vmlinuz\n    restart: {policy: always, backoff: 10ms}\n", 30*time.Second)
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("never: %s; console %q, log %q", what, out.String(), log.String())
	}
	logs := func() string {
		var b bytes.Buffer
		Control(sock, "logs echo", nil, &b)
		return b.String()
	}
	waitFor("echo is up", func() bool { return strings.Contains(logs(), "echo is up") })

	answer, err := Input(sock, "echo", []byte("hello \"there\"\n"))
	if err != nil || answer != "sent 14 bytes to echo's console" {
		t.Errorf("Input() = %q, %v; want 14 bytes sent", answer, err)
	}
	waitFor("the typed line comes back", func() bool { return strings.Contains(logs(), `echo got: "hello \"there\""`) })

	var threads bytes.Buffer
	if err := Control(sock, "threads echo", nil, &threads); err != nil {
		t.Fatal(err)
	}
	if l := strings.Split(strings.TrimSpace(threads.String()), "\n"); len(l) < 2 || !strings.HasPrefix(l[0], "TID") || !strings.Contains(l[1], " other ") {
		t.Errorf("threads echo = %q, want a header and the VMM's threads at policy other", threads.String())
	}

	pid := s.Status()[0].PID
	var killed bytes.Buffer
	if err := Control(sock, "kill echo", nil, &killed); err != nil || killed.String() != fmt.Sprintf("killed echo's VMM (pid %d)\n", pid) {
		t.Errorf("kill echo = %q, %v", killed.String(), err)
	}
	waitFor("a new VMM after the kill", func() bool {
		st := s.Status()[0]
		return st.State == StateRunning && st.PID != 0 && st.PID != pid && st.Restarts == 1
	})
	if !strings.Contains(log.String(), "echo: VMM killed") {
		t.Errorf("the supervisor's log does not say the VMM was killed: %q", log.String())
	}

	for _, cmd := range []string{"kill nobody", "threads nobody"} {
		if err := Control(sock, cmd, nil, io.Discard); err == nil || !strings.Contains(err.Error(), `no guest "nobody"`) {
			t.Errorf("%s = %v, want no guest", cmd, err)
		}
	}
	if _, err := Input(sock, "nobody", []byte("x")); err == nil || !strings.Contains(err.Error(), `no guest "nobody"`) {
		t.Errorf("Input(nobody) = %v, want no guest", err)
	}
}

// TestControlStop checks that tandem stop answers once the guest is
// stopped, whatever its VMM was doing: a VMM that ends on SIGTERM, one
// that ignores it (killed after the grace), and a guest waiting out its
// restart back-off (not started again); each then shows as stopped, with
// no VMM, and tandem start brings it back.
func TestControlStop(t *testing.T) {
	t.Setenv(fakeVMMEnv, "1")
	for _, tt := range []struct {
		name, guest, restart string
		// from is the state stop finds the guest in.
		from, answer string
	}{
		{"ends on SIGTERM", "echo", "{policy: always}", StateRunning, "stopped echo\n"},
		{"ignores SIGTERM", "stubborn", "{policy: always}", StateRunning, "stopped stubborn: its VMM (pid PID) did not end within 300ms of SIGTERM and was killed\n"},
		{"in its back-off", "quits", "{policy: always, backoff: 1h}", StateBackoff, "stopped quits (it was waiting to restart)\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := guestDir(t)
			s, sock, out, log := runFakeSystem(t, dir, fmt.Sprintf("guests:\n  - name: %s\n    kernel: vmlinuz\n    restart: %s\n", tt.guest, tt.restart), 30*time.Second)
			// s.Status reads what Run sets up: wait for its control
			// socket, which it serves after.
			for deadline := time.Now().Add(10 * time.Second); Control(sock, "ps", nil, io.Discard) != nil; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the supervisor's control socket never answered; log %q", log.String())
				}
			}
			waitFor := func(what string, ok func(Status) bool) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if st := s.Status(); len(st) == 1 && ok(st[0]) {
						return
					}
				}
				t.Fatalf("never: %s; status %+v, console %q, log %q", what, s.Status(), out.String(), log.String())
			}
			waitFor(tt.guest+" is "+tt.from, func(st Status) bool {
				return st.State == tt.from && (tt.from != StateRunning || strings.Contains(out.String(), tt.guest+" is up"))
			})
			pid := s.Status()[0].PID
			answer := s.byName[tt.guest].stop(300 * time.Millisecond)
			if want := strings.ReplaceAll(tt.answer, "PID", fmt.Sprint(pid)); answer != want {
				t.Errorf("stop = %q, want %q", answer, want)
			}
			if st := s.Status()[0]; st.State != StateStopped || st.PID != 0 {
				t.Errorf("status right after stop = %+v, want stopped with no VMM", st)
			}
			time.Sleep(100 * time.Millisecond)
			if st := s.Status()[0]; st.State != StateStopped {
				t.Errorf("status 100 ms after stop = %+v, want still stopped", st)
			}
			// A new VMM after start: the supervisor logs each start (a
			// guest that powers off at once, as quits does, is gone
			// again before its PID could be seen).
			starts := strings.Count(log.String(), tt.guest+": started (pid ")
			var started bytes.Buffer
			if err := Control(sock, "start "+tt.guest, nil, &started); err != nil {
				t.Fatal(err)
			}
			waitFor("a new VMM after start", func(Status) bool {
				return strings.Count(log.String(), tt.guest+": started (pid ") > starts
			})
		})
	}
}

// runFakeSystem runs a supervisor of fake VMMs (fakeVMM) on manifest in
// dir until the test ends, for timeout at most: it returns the
// supervisor, its control socket, and its console and log.
func runFakeSystem(t *testing.T, dir, manifest string, timeout time.Duration) (s *Supervisor, sock string, out, log *syncBuffer) {
	t.Helper()
	m, err := LoadManifest(writeManifest(t, dir, []byte(manifest)))
	if err != nil {
		t.Fatal(err)
	}
	out, log = &syncBuffer{}, &syncBuffer{}
	sock = filepath.Join(dir, "control.sock")
	s = &Supervisor{M: m, VMM: []string{os.Args[0]}, RunDir: filepath.Join(dir, "run"), ControlSocket: sock, Out: out, Log: log}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, sock, out, log
}

// syncBuffer is a bytes.Buffer the supervisor's goroutines and the test
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
