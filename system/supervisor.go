package system

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tandem-hv/tandem/hv/devices/tpm"
	"github.com/tandem-hv/tandem/system/procstat"
	"github.com/tandem-hv/tandem/system/swtpm"
	"github.com/tandem-hv/tandem/vmm"
)

// DefaultControlSocket is where `tandem system` serves ps, logs, console,
// stop and restart unless the manifest or a flag says otherwise.
const DefaultControlSocket = "/run/tandem/control.sock"

// DefaultRunDir holds the per-guest vsock sockets.
const DefaultRunDir = "/run/tandem"

// Guest states, as `tandem ps` shows them.
const (
	StateWaiting  = "waiting"  // for the guests it starts after
	StateRunning  = "running"  // its VMM is up
	StateBackoff  = "backoff"  // ended, restarting after a delay
	StateStopping = "stopping" // tandem stop asked its VMM to end; it has not yet
	StateStopped  = "stopped"  // ended and not restarted (policy, or tandem stop)
	StateFailed   = "failed"   // ended and not restarted: over its restart limit, or vmm.ExitFatal (ps says why)
	logRingBytes  = 64 << 10   // per guest, for tandem logs
	ephemeralBase = 49152      // host-side ports of forwarded connections
)

// Supervisor runs the guests of a manifest, one `tandem vmm` each.
type Supervisor struct {
	M *Manifest
	// VMM is the command that runs one guest; the supervisor appends
	// --guest, --vsock-out and --vsock-in. Typically
	// [os.Executable(), "vmm", "--manifest", m.Path].
	VMM []string
	// RunDir holds the vsock sockets; ControlSocket the control socket.
	RunDir, ControlSocket string
	// Out receives every guest's console, each line prefixed with the
	// guest's name; Log the supervisor's own messages.
	Out, Log io.Writer
	// TPM is the TPM guests are measured into (measure.OpenTPM: a
	// character device or a software TPM's socket); empty: none, and
	// guests are not measured. Expected is the file of expected measurements;
	// empty means Manifest.DefaultExpected.
	TPM, Expected string
	// StateDir keeps what guests keep across restarts: each virtual
	// TPM's state, under NAME/tpm. Empty means Manifest.DefaultStateDir.
	StateDir string

	outOnce sync.Once
	out     *output    // the only writer to Out and Log
	saidMu  sync.Mutex // protects lastSaid
	// lastSaid is when each repeated message was last logged (logEvery).
	lastSaid map[string]time.Time
	meas     *measurer
	guests   []*guestProc
	byName   map[string]*guestProc
	byCID    map[uint32]*guestProc
	nextEp   atomic.Uint32
	cores    partition
}

// guestProc is one guest's VMM over its restarts.
type guestProc struct {
	s    *Supervisor
	g    *Guest
	priv Privileges // who its VMM runs as

	// mu guards the fields below it.
	mu       sync.Mutex
	state    string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	started  time.Time
	restarts int
	lastExit string
	stopReq  bool          // tandem stop: do not restart
	kick     chan struct{} // tandem restart / start: skip the back-off
	ring     []byte        // recent console output
	consoles map[chan []byte]bool
	// lastWords is the last whole line the running VMM printed on its
	// standard error: why it ended, when it ends with an error.
	lastWords string

	up     chan struct{} // closed once the VMM first started (for after:)
	upOnce sync.Once

	// refused is why the measurement made at the supervisor's start
	// keeps the guest from starting, or nil; later starts measure again.
	refused error
	// vnc is the guest's VNC socket (display.vnc), or nil.
	vnc fileListener
}

// output returns the writer of Out and Log, starting it on first use.
func (s *Supervisor) output() *output {
	s.outOnce.Do(func() { s.out = newOutput(s.Log) })
	return s.out
}

func (s *Supervisor) logf(format string, args ...any) {
	s.output().put(s.Log, fmt.Appendf(nil, "tandem: "+format+"\n", args...))
}

// logEvery logs a message that may repeat (a guest retrying a refused
// connection many times a second) at most once per interval.
func (s *Supervisor) logEvery(interval time.Duration, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.saidMu.Lock()
	defer s.saidMu.Unlock()
	if s.lastSaid == nil {
		s.lastSaid = map[string]time.Time{}
	}
	now := time.Now()
	if t, ok := s.lastSaid[msg]; ok && now.Sub(t) < interval {
		return
	}
	s.lastSaid[msg] = now
	s.output().put(s.Log, fmt.Appendf(nil, "tandem: %s\n", msg))
}

// Run starts every guest in dependency order and supervises them until
// ctx is done; then it stops them all and returns.
func (s *Supervisor) Run(ctx context.Context) error {
	defer s.output().flush()
	if s.RunDir == "" {
		s.RunDir = DefaultRunDir
	}
	if s.ControlSocket == "" {
		s.ControlSocket = s.M.ControlSocket
	}
	if s.ControlSocket == "" {
		s.ControlSocket = DefaultControlSocket
	}
	if s.StateDir == "" {
		s.StateDir = s.M.DefaultStateDir()
	}
	if err := os.MkdirAll(s.RunDir, 0o700); err != nil {
		return fmt.Errorf("run directory: %w", err)
	}
	order, err := s.M.StartOrder()
	if err != nil {
		return err
	}
	allowed, err := currentAffinity()
	if err != nil {
		return fmt.Errorf("reading the supervisor's cores: %w", err)
	}
	s.cores = newPartition(allowed, s.M)
	if hk := s.cores.housekeeping; len(hk) > 0 {
		if err := confineProcess(hk); err != nil {
			return err
		}
		s.logf("dedicated cores run their guests' vCPUs alone; the supervisor, the VMMs' other threads and the other guests share cores %s", cpuList(hk))
		s.isolateHost()
	}
	for _, g := range order {
		if g.BoardDisplay {
			s.releaseBoardConsole(vtconsoleDir, g.Name)
		}
	}
	s.byName, s.byCID = map[string]*guestProc{}, map[uint32]*guestProc{}
	saidRoot := false
	for _, g := range order {
		priv, err := s.M.Privileges(g)
		if err != nil {
			return err
		}
		if priv.Root == noUserReason && !saidRoot {
			s.logf("VMMs run as root: %s (tandem system --check says who each runs as, with what)", noUserReason)
			saidRoot = true
		}
		// A VMM of its own user reaches its sockets in the run
		// directory, which it may enter but not list.
		if priv.Cred != nil {
			if err := os.Chmod(s.RunDir, 0o711); err != nil {
				return fmt.Errorf("run directory: %w", err)
			}
		}
		gp := &guestProc{s: s, g: g, priv: priv, state: StateWaiting, kick: make(chan struct{}, 1), consoles: map[chan []byte]bool{}, up: make(chan struct{})}
		s.guests = append(s.guests, gp)
		s.byName[g.Name] = gp
		if g.Vsock != nil {
			s.byCID[g.Vsock.CID] = gp
		}
	}
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	listen := func(path string) (net.Listener, error) {
		os.MkdirAll(filepath.Dir(path), 0o700)
		os.Remove(path)
		l, err := net.Listen("unix", path)
		if err == nil {
			listeners = append(listeners, l)
		}
		return l, err
	}
	cl, err := listen(s.ControlSocket)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	go s.serveControl(cl)
	vl, err := s.listenVNC()
	listeners = append(listeners, vl...)
	if err != nil {
		return err
	}
	for _, gp := range s.guests {
		if gp.g.Vsock == nil {
			continue
		}
		l, err := listen(gp.outSocket())
		if err != nil {
			return fmt.Errorf("guest %s: vsock socket: %w", gp.g.Name, err)
		}
		if err := gp.shareOutSocket(); err != nil {
			return fmt.Errorf("guest %s: vsock socket: %w", gp.g.Name, err)
		}
		go s.serveVsockOut(l, gp)
		for _, f := range gp.g.Vsock.Forward {
			l, err := listen(f.Socket)
			if err != nil {
				return fmt.Errorf("guest %s: forward %s: %w", gp.g.Name, f.Socket, err)
			}
			go s.serveForward(l, gp, f.Port)
		}
	}
	// Every guest is measured before the first VMM starts, in start
	// order, so the PCR's value does not depend on how fast each guest
	// comes up and an image builder can predict it.
	s.meas = s.newMeasurer()
	for _, gp := range s.guests {
		gp.refused = s.meas.measure(gp.g)
	}
	var wg sync.WaitGroup
	for _, gp := range s.guests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gp.supervise(ctx)
		}()
	}
	wg.Wait()
	return nil
}

func (gp *guestProc) outSocket() string {
	return filepath.Join(gp.s.RunDir, gp.g.Name+".vsock")
}

// shareOutSocket lets a VMM that does not run as root connect to its out
// socket: the socket is its user's (Run lets it into the run directory).
// Which guest speaks on a connection is still known from the socket, and
// the connecting process must be that guest's VMM (vmmPeer): VMMs that
// share a user cannot speak for each other.
func (gp *guestProc) shareOutSocket() error {
	c := gp.priv.Cred
	if c == nil {
		return nil
	}
	return os.Chown(gp.outSocket(), int(c.Uid), int(c.Gid))
}
func (gp *guestProc) inSocket() string { return filepath.Join(gp.s.RunDir, gp.g.Name+".in") }

// listenIn makes the socket that takes connections into the guest, for
// its VMM to inherit. It is the supervisor's, with the mode its umask
// gives: only the supervisor connects to it.
func (gp *guestProc) listenIn() (*os.File, error) {
	os.Remove(gp.inSocket())
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: gp.inSocket(), Net: "unix"})
	if err != nil {
		return nil, err
	}
	// Closing this process's listener must leave the socket to the VMM.
	l.SetUnlinkOnClose(false)
	defer l.Close()
	return l.File()
}

// startTPM starts the guest's software TPM for one run of its VMM, on
// the state its earlier runs left, and does to it what a PC's firmware
// does before the kernel runs (firmwareInit). A new process for each run
// is a power cycle of the TPM: PCRs start from zeros, as after a real
// machine's reset, while what the TPM keeps in non-volatile memory
// (seeds, keys made persistent, NV indices) survives.
func (gp *guestProc) startTPM(ctx context.Context) (*swtpm.TPM, error) {
	s := gp.s
	t, err := swtpm.Start(ctx, swtpm.Options{
		StateDir:  filepath.Join(s.StateDir, gp.g.Name, "tpm"),
		Socket:    filepath.Join(s.RunDir, gp.g.Name+".tpm"),
		Log:       filepath.Join(s.RunDir, gp.g.Name+".tpm.log"),
		NoStartup: true,
	})
	if err != nil {
		return nil, err
	}
	if err := firmwareInit(tpm.SocketBackend{Path: t.Socket()}); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
}

// Commands a PC's firmware sends its TPM before the OS runs (TPM 2.0
// Library, Part 3): TPM2_Startup(TPM_SU_CLEAR) (§9.3) and
// TPM2_SelfTest(fullTest = YES) (§10.2).
var (
	tpmStartupClear = []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0}
	tpmSelfTestFull = []byte{0x80, 0x01, 0, 0, 0, 11, 0, 0, 0x01, 0x43, 1}
)

// firmwareInit starts the TPM up and tests it, as firmware would: a
// guest has none. Left to the guest's kernel, the start-up, the self-test
// and, on a TPM whose state is new, the making of its seeds (swtpm does
// it on the first command: 40 ms here natively, against 0.1 ms after)
// fall into the driver's first commands, under its timeouts (750 ms for
// TPM2_GetCapability, 2 s for TPM2_SelfTest): in the emulated x86 host
// they timed out, and in two runs of four the guest found no TPM on its
// first boot.
func firmwareInit(b tpm.SocketBackend) error {
	for _, c := range []struct {
		name string
		cmd  []byte
	}{{"TPM2_Startup", tpmStartupClear}, {"TPM2_SelfTest", tpmSelfTestFull}} {
		rsp, err := b.Execute(c.cmd)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if rc := binary.BigEndian.Uint32(rsp[6:]); rc != 0 {
			return fmt.Errorf("%s: TPM response code %#x", c.name, rc)
		}
	}
	return nil
}

// supervise is one guest's life: wait for its dependencies, run its VMM,
// restart it by policy, until ctx is done.
func (gp *guestProc) supervise(ctx context.Context) {
	for _, a := range gp.g.After {
		select {
		case <-gp.s.byName[a].up:
		case <-ctx.Done():
			return
		}
	}
	consecutive := 0
	for first := true; ; first = false {
		refused := gp.refused
		if !first {
			refused = gp.s.meas.measure(gp.g)
		}
		if refused != nil {
			if !gp.refuse(ctx, refused) {
				return
			}
			consecutive = 0
			continue
		}
		began := time.Now()
		exit, err := gp.runOnce(ctx)
		if ctx.Err() != nil {
			gp.setState(StateStopped, "supervisor stopping")
			return
		}
		ran := time.Since(began)
		gp.mu.Lock()
		stop := gp.stopReq
		gp.mu.Unlock()
		why := describeExit(exit, err)
		fatal := exit == int(vmm.ExitFatal)
		if fatal {
			why = "cannot run: " + gp.fatalReason()
		}
		if ran >= gp.g.Restart.StableAfter {
			consecutive = 0
		}
		switch gp.g.Restart.decide(exit, stop, consecutive) {
		case leaveFailed:
			if fatal {
				gp.s.logf("%s: %s; not restarted, as no restart can cure it: fix it, then tandem start %s", gp.g.Name, why, gp.g.Name)
			} else {
				gp.s.logf("%s: %s; %d restarts in a row, the limit: left stopped", gp.g.Name, why, consecutive)
			}
			gp.setState(StateFailed, why)
		case leaveStopped:
			if !stop {
				gp.s.logf("%s: %s; policy %s: not restarted", gp.g.Name, why, gp.g.Restart.Policy)
			}
			gp.setState(StateStopped, why)
		case restartGuest:
			delay := gp.g.Restart.Backoff << min(consecutive, 20)
			if delay > gp.g.Restart.MaxBackoff {
				delay = gp.g.Restart.MaxBackoff
			}
			consecutive++
			gp.setState(StateBackoff, why)
			gp.s.logf("%s: %s; restarting in %v", gp.g.Name, why, delay)
			select {
			case <-time.After(delay):
			case <-gp.kick:
			case <-ctx.Done():
				return
			}
			gp.mu.Lock()
			stop = gp.stopReq
			if !stop {
				gp.restarts++
			}
			gp.mu.Unlock()
			if !stop {
				continue
			}
			// tandem stop during the back-off.
			gp.setState(StateStopped, why)
		}
		// Left stopped: wait for tandem start or restart.
		select {
		case <-gp.kick:
			gp.mu.Lock()
			gp.stopReq = false
			gp.mu.Unlock()
			consecutive = 0
		case <-ctx.Done():
			return
		}
	}
}

// refuse leaves a guest its measurement keeps from starting failed, and
// waits for tandem start or restart; false when the supervisor stops
// first. The guests that start after it are not held back: a control
// guest that fails closed must not take the others down with it.
func (gp *guestProc) refuse(ctx context.Context, why error) bool {
	msg := "not started: " + why.Error()
	gp.setState(StateFailed, msg)
	gp.s.logf("%s: %s; fix it, then tandem start %s", gp.g.Name, msg, gp.g.Name)
	gp.upOnce.Do(func() { close(gp.up) })
	select {
	case <-gp.kick:
		gp.mu.Lock()
		gp.stopReq = false
		gp.mu.Unlock()
		return true
	case <-ctx.Done():
		gp.setState(StateStopped, "supervisor stopping")
		return false
	}
}

// afterExit is what the supervisor does once a guest's VMM has ended.
type afterExit int

const (
	restartGuest afterExit = iota // after the back-off
	leaveStopped                  // by policy, or as tandem stop asked
	leaveFailed                   // no restart can help, or the limit is reached
)

// decide says what follows a VMM's end with status exit (a vmm.Exit, or
// -1 when it was killed or did not start), when tandem stop asked for it
// (stop) and after consecutive restarts in a row. An error no restart
// cures (vmm.ExitFatal: the configuration or the host) leaves the guest
// failed whatever the policy: restarting it would only repeat the error,
// with back-off, forever. Back-off is for the guest's own ends.
func (r Restart) decide(exit int, stop bool, consecutive int) afterExit {
	switch {
	case stop:
		return leaveStopped
	case exit == int(vmm.ExitFatal):
		return leaveFailed
	}
	restart := r.Policy == RestartAlways || r.Policy == RestartOnFailure && exit != int(vmm.ExitPowerOff)
	switch {
	case !restart:
		return leaveStopped
	case r.Limit > 0 && consecutive >= r.Limit:
		return leaveFailed
	}
	return restartGuest
}

// fatalReason is why the VMM could not run the guest: its last line
// (the error `tandem vmm` prints), without the program's and the
// guest's names in front.
func (gp *guestProc) fatalReason() string {
	gp.mu.Lock()
	w := gp.lastWords
	gp.mu.Unlock()
	w = strings.TrimPrefix(w, "tandem: ")
	w = strings.TrimPrefix(w, "guest "+gp.g.Name+": ")
	if w == "" {
		return "its configuration or the host is at fault (tandem logs " + gp.g.Name + " shows the VMM's output)"
	}
	return w
}

func describeExit(code int, err error) string {
	if err != nil && code < 0 {
		return err.Error()
	}
	if vmm.Exit(code) == vmm.ExitWatchdog {
		return "watchdog expired"
	}
	return "VMM exited: " + vmm.Exit(code).String()
}

func (gp *guestProc) setState(st, why string) {
	gp.mu.Lock()
	gp.state, gp.lastExit = st, why
	gp.mu.Unlock()
}

// runOnce starts the VMM and waits for it; the exit status is the
// guest's vmm.Exit, or -1 when it died of a signal or did not start.
func (gp *guestProc) runOnce(ctx context.Context) (int, error) {
	s := gp.s
	args := append(append([]string(nil), s.VMM[1:]...), "--guest", gp.g.Name)
	if gp.g.VTPM {
		tpm, err := gp.startTPM(ctx)
		if err != nil {
			// No restart brings swtpm or its state back: the guest is
			// left failed, as after the VMM's vmm.ExitFatal.
			gp.mu.Lock()
			gp.lastWords = fmt.Sprintf("its virtual TPM: %v", err)
			gp.mu.Unlock()
			return int(vmm.ExitFatal), nil
		}
		defer tpm.Stop()
		// swtpm makes its socket its own user's, 0600: the VMM's user
		// must own it to connect (the guest's commands go over it).
		if c := gp.priv.Cred; c != nil {
			if err := os.Chown(tpm.Socket(), int(c.Uid), int(c.Gid)); err != nil {
				return -1, fmt.Errorf("guest %s: its virtual TPM's socket: %w", gp.g.Name, err)
			}
		}
		args = append(args, "--vtpm", tpm.Socket())
	}
	cmd := exec.Command(s.VMM[0], args...)
	// A VMM never outlives its supervisor. It runs as gp.priv says.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: gp.priv.Cred}
	for _, c := range gp.priv.Caps {
		cmd.SysProcAttr.AmbientCaps = append(cmd.SysProcAttr.AmbientCaps, c.Value)
	}
	out, err := openVMMPipes()
	if err != nil {
		return -1, err
	}
	cmd.Stdout, cmd.Stderr = out.consoleW, out.ownW
	stdin, err := cmd.StdinPipe()
	if err != nil {
		out.close()
		return -1, err
	}
	var in *os.File
	if gp.g.Vsock != nil {
		if in, err = gp.listenIn(); err != nil {
			out.close()
			return -1, fmt.Errorf("guest %s: vsock: %w", gp.g.Name, err)
		}
		// The path goes once the VMM, which holds the socket, ends.
		defer os.Remove(gp.inSocket())
		cmd.ExtraFiles = []*os.File{in}
		cmd.Args = append(cmd.Args, "--vsock-out", gp.outSocket(), "--vsock-in-fd", "3")
	}
	var fb *os.File
	if gp.g.BoardDisplay {
		// The supervisor opens the board's display: the VMM's user
		// need not be able to, and no other VMM gets it.
		if fb, err = os.OpenFile(vmm.BoardFramebuffer, os.O_WRONLY, 0); err != nil {
			out.close()
			if in != nil {
				in.Close()
			}
			return -1, fmt.Errorf("guest %s: display.board: the board's display: %w (the host kernel needs its display driver: the board's host-modules)", gp.g.Name, err)
		}
		cmd.ExtraFiles = append(cmd.ExtraFiles, fb)
		cmd.Args = append(cmd.Args, "--board-display-fd", strconv.Itoa(2+len(cmd.ExtraFiles)))
	}
	display, displayArgs, removeDisplay, err := gp.displayFiles(3 + len(cmd.ExtraFiles))
	if err != nil {
		out.close()
		if in != nil {
			in.Close()
		}
		if fb != nil {
			fb.Close()
		}
		return -1, err
	}
	defer removeDisplay()
	cmd.ExtraFiles = append(cmd.ExtraFiles, display...)
	cmd.Args = append(cmd.Args, displayArgs...)
	err = startOn(s.cores.cores(gp.g), cmd.Start)
	if in != nil {
		in.Close() // the VMM's now
	}
	if fb != nil {
		fb.Close()
	}
	for _, f := range display {
		f.Close()
	}
	if err != nil {
		out.close()
		return -1, fmt.Errorf("starting the VMM: %w", err)
	}
	out.closeWriters()
	gp.mu.Lock()
	gp.cmd, gp.stdin, gp.state, gp.started, gp.lastWords = cmd, stdin, StateRunning, time.Now(), ""
	gp.mu.Unlock()
	gp.upOnce.Do(func() { close(gp.up) })
	s.logf("%s: started (pid %d)", gp.g.Name, cmd.Process.Pid)
	consoleDone := make(chan struct{})
	go func() {
		var pumps sync.WaitGroup
		pumps.Add(2)
		go func() { gp.pumpConsole(out.console, false); pumps.Done() }()
		go func() { gp.pumpConsole(out.own, true); pumps.Done() }()
		pumps.Wait()
		close(consoleDone)
	}()
	waitDone := make(chan struct{})
	go gp.watch(ctx, cmd, waitDone)
	waitErr := cmd.Wait()
	close(waitDone)
	// Console output can outlive the VMM in a grandchild holding the
	// pipe; do not wait for it forever.
	select {
	case <-consoleDone:
	case <-time.After(time.Second):
		out.closeReaders()
	}
	gp.mu.Lock()
	gp.cmd, gp.stdin = nil, nil
	gp.mu.Unlock()
	// A VMM that exited non-zero or died of a signal is an
	// *exec.ExitError, told apart by the exit status below. Any other
	// error with no ProcessState means the wait itself failed and how the
	// VMM ended is unknown; with one, the VMM was reaped and the error
	// came after (copying its I/O): it is logged and the status stands.
	var exitErr *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &exitErr) {
		if cmd.ProcessState == nil {
			return -1, fmt.Errorf("waiting for the VMM: %w", waitErr)
		}
		s.logf("%s: waiting for the VMM: %v", gp.g.Name, waitErr)
	}
	code := cmd.ProcessState.ExitCode()
	if code < 0 {
		return -1, fmt.Errorf("VMM killed (%v)", cmd.ProcessState)
	}
	return code, nil
}

// watch stops the VMM when the supervisor stops. A hung guest is the
// watchdog device's to catch, inside the VMM: console or vsock silence
// says nothing (a healthy control loop may be quiet, a hung application
// may still print), so the supervisor does not judge it.
func (gp *guestProc) watch(ctx context.Context, cmd *exec.Cmd, done chan struct{}) {
	select {
	case <-done:
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
		}
	}
}

// vmmPipes carry a VMM's standard output, the guest's console, and its
// standard error, the VMM's own lines (warnings, why the guest ended, an
// error), to the supervisor apart: each is read a whole line at a time,
// so a line of the VMM's never lands inside a line the guest has not
// ended, and the VMM's last words are its own.
type vmmPipes struct {
	console, consoleW, own, ownW *os.File
}

func openVMMPipes() (*vmmPipes, error) {
	var p vmmPipes
	var err error
	if p.console, p.consoleW, err = os.Pipe(); err != nil {
		return nil, err
	}
	if p.own, p.ownW, err = os.Pipe(); err != nil {
		p.console.Close()
		p.consoleW.Close()
		return nil, err
	}
	return &p, nil
}

// closeWriters closes the supervisor's copies of the write ends, which
// the started VMM holds now.
func (p *vmmPipes) closeWriters() {
	p.consoleW.Close()
	p.ownW.Close()
}

// closeReaders closes the supervisor's read ends, which ends the pumps.
func (p *vmmPipes) closeReaders() {
	p.console.Close()
	p.own.Close()
}

// close closes all four ends, when no VMM started.
func (p *vmmPipes) close() {
	p.closeWriters()
	p.closeReaders()
}

// pumpConsole copies one of the VMM's outputs to Out, a line at a time
// with the guest's name in front, and to the log ring and attached
// consoles; the VMM's own (own) also give its last words.
func (gp *guestProc) pumpConsole(r io.ReadCloser, own bool) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			gp.record(line)
			if text := strings.TrimSpace(string(line)); own && text != "" && line[len(line)-1] == '\n' {
				gp.mu.Lock()
				gp.lastWords = text
				gp.mu.Unlock()
			}
			if gp.s.Out != nil {
				text := strings.TrimRight(string(line), "\r\n")
				gp.s.output().put(gp.s.Out, fmt.Appendf(nil, "%s | %s\n", gp.g.Name, text))
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// record keeps output in the ring and hands it to attached consoles.
func (gp *guestProc) record(b []byte) {
	gp.mu.Lock()
	defer gp.mu.Unlock()
	gp.ring = append(gp.ring, b...)
	if over := len(gp.ring) - logRingBytes; over > 0 {
		gp.ring = gp.ring[:copy(gp.ring, gp.ring[over:])]
	}
	for ch := range gp.consoles {
		select {
		case ch <- append([]byte(nil), b...):
		default: // a slow console loses output rather than stall the guest
		}
	}
}

// logs is a copy of the ring; with ch, ch is attached as a console in
// the same step, so it gets what comes after the copy. The copy is written
// to a client without the lock: a client that stops reading must not stop
// record, and with it the pump and the guest's console writes.
func (gp *guestProc) logs(ch chan []byte) []byte {
	gp.mu.Lock()
	defer gp.mu.Unlock()
	if ch != nil {
		gp.consoles[ch] = true
	}
	return append([]byte(nil), gp.ring...)
}

// signal sends sig to the running VMM, if any.
// pid is the VMM's process ID, 0 when it is not running.
func (gp *guestProc) pid() int {
	gp.mu.Lock()
	defer gp.mu.Unlock()
	if gp.cmd == nil || gp.cmd.Process == nil {
		return 0
	}
	return gp.cmd.Process.Pid
}

func (gp *guestProc) signal(sig syscall.Signal) bool {
	gp.mu.Lock()
	defer gp.mu.Unlock()
	if gp.cmd == nil || gp.cmd.Process == nil {
		return false
	}
	gp.cmd.Process.Signal(sig)
	return true
}

// Status is one row of `tandem ps`.
type Status struct {
	Name, Role, State string
	PID               int
	Uptime            time.Duration
	Restarts          int
	CPUTime           time.Duration // user + system, of the VMM process
	RSS               uint64        // bytes
	LastExit          string
}

// Status returns the state of every guest, in start order.
func (s *Supervisor) Status() []Status {
	var out []Status
	for _, gp := range s.guests {
		gp.mu.Lock()
		st := Status{Name: gp.g.Name, Role: gp.g.Role, State: gp.state, Restarts: gp.restarts, LastExit: gp.lastExit}
		if gp.cmd != nil && gp.cmd.Process != nil {
			st.PID = gp.cmd.Process.Pid
			st.Uptime = time.Since(gp.started)
		}
		gp.mu.Unlock()
		if st.PID != 0 {
			st.CPUTime, st.RSS = procUsage(st.PID)
		}
		out = append(out, st)
	}
	return out
}

// procUsage reads a process's CPU time (utime + stime of /proc/PID/stat)
// and its resident memory (VmRSS of /proc/PID/status).
func procUsage(pid int) (time.Duration, uint64) {
	var cpu time.Duration
	if s, ok := procstat.Read(fmt.Sprintf("/proc/%d/stat", pid)); ok {
		cpu = s.CPU()
	}
	var rss uint64
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				rss = kb << 10
			}
		}
	}
	return cpu, rss
}

// FormatStatus prints Status rows as `tandem ps` shows them: a guest's
// last end, last, says why a failed or stopped guest is not running.
func FormatStatus(rows []Status) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %-13s %-8s %7s %10s %8s %9s %8s  %s\n", "NAME", "ROLE", "STATE", "PID", "UPTIME", "RESTARTS", "CPU", "RSS", "LAST END")
	for _, r := range rows {
		// "-" for what is empty keeps every row's columns in place.
		role, last := r.Role, r.LastExit
		if role == "" {
			role = "-"
		}
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(&b, "%-14s %-13s %-8s %7d %10s %8d %9s %7dM  %s\n", r.Name, role, r.State, r.PID,
			r.Uptime.Round(time.Second), r.Restarts, r.CPUTime.Round(10*time.Millisecond), r.RSS>>20, last)
	}
	return b.String()
}
