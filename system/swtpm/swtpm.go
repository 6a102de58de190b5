// Package swtpm runs a software TPM 2.0 (Debian's swtpm) as a child
// process serving a UNIX socket: the TPM of tests and of hosts without
// one, and the state behind a guest's virtual TPM.
package swtpm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Program is swtpm's name on PATH (Debian's swtpm package).
const Program = "swtpm"

// startTimeout bounds how long swtpm may take to serve its socket: it
// creates its state (a new TPM's primary seeds) on first start.
const startTimeout = 15 * time.Second

// Options say where one swtpm keeps its state and what it serves.
type Options struct {
	// StateDir holds the TPM's persistent state (NVRAM, seeds,
	// hierarchies); it survives the process, so a TPM started again on
	// it is the same TPM. Created if missing.
	StateDir string
	// Socket is the TPM command socket (raw TPM 2.0 commands, one
	// connection at a time). It may be left out when Ctrl is set: QEMU's
	// TPM emulator backend hands swtpm its command channel over the
	// control channel instead.
	Socket string
	// Ctrl, if set, is swtpm's control channel socket (power, locality,
	// reset; swtpm's ioctl protocol): what QEMU's tpm-emulator and
	// Tandem's virtual TPM device drive. Without it the TPM is started
	// up (TPM2_Startup(CLEAR)) by swtpm itself and needs no control.
	Ctrl string
	// Log, if set, receives swtpm's own messages.
	Log string
	// NoStartup leaves TPM2_Startup to the TPM's user, as a guest's
	// kernel sends it on a real machine; otherwise, without Ctrl, swtpm
	// starts the TPM up (TPM2_Startup(CLEAR)) itself.
	NoStartup bool
}

// TPM is a running swtpm.
type TPM struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // cmd.Wait's, once done is closed
	stderr *bytes.Buffer
	opts   Options
}

// Start runs swtpm with o and waits until its socket takes connections.
func Start(ctx context.Context, o Options) (*TPM, error) {
	prog, err := exec.LookPath(Program)
	if err != nil {
		return nil, fmt.Errorf("%s not found: install Debian's swtpm package (make deps)", Program)
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("swtpm state: %w", err)
	}
	for _, s := range []string{o.Socket, o.Ctrl} {
		if s == "" {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(s), 0o700); err != nil {
			return nil, fmt.Errorf("swtpm socket: %w", err)
		}
		os.Remove(s) // a socket left by a swtpm that was killed
	}
	if o.Socket == "" && o.Ctrl == "" {
		return nil, fmt.Errorf("swtpm: neither a command socket nor a control socket to serve")
	}
	args := []string{"socket", "--tpm2", "--tpmstate", "dir=" + o.StateDir + ",mode=0600"}
	if o.Socket != "" {
		args = append(args, "--server", "type=unixio,path="+o.Socket+",mode=0600")
	}
	if o.Ctrl != "" {
		args = append(args, "--ctrl", "type=unixio,path="+o.Ctrl+",mode=0600")
	} else if o.NoStartup {
		args = append(args, "--flags", "not-need-init")
	} else {
		args = append(args, "--flags", "not-need-init,startup-clear")
	}
	if o.Log != "" {
		args = append(args, "--log", "file="+o.Log)
	}
	cmd := exec.Command(prog, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// A TPM never outlives the process that started it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", Program, err)
	}
	t := &TPM{cmd: cmd, done: make(chan struct{}), stderr: &stderr, opts: o}
	go func() {
		t.err = cmd.Wait()
		close(t.done)
	}()
	if err := t.waitReady(ctx); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
}

// waitReady waits for the sockets to take connections, or swtpm to end.
func (t *TPM) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for _, s := range []string{t.opts.Socket, t.opts.Ctrl} {
		if s == "" {
			continue
		}
		for {
			// A connection closed at once is harmless: swtpm reads
			// its end and takes the next.
			if c, err := net.Dial("unix", s); err == nil {
				c.Close()
				break
			}
			select {
			case <-t.done:
				return fmt.Errorf("%s ended before serving %s: %v: %s", Program, s, t.err, strings.TrimSpace(t.stderr.String()))
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s did not serve %s within %v", Program, s, startTimeout)
			}
		}
	}
	return nil
}

// Socket is the TPM command socket.
func (t *TPM) Socket() string { return t.opts.Socket }

// Ctrl is the control channel socket ("" if none).
func (t *TPM) Ctrl() string { return t.opts.Ctrl }

// Done is closed when swtpm has ended.
func (t *TPM) Done() <-chan struct{} { return t.done }

// Stop ends swtpm: SIGTERM, which makes it write its volatile state
// out, then SIGKILL if it has not ended in two seconds.
func (t *TPM) Stop() error {
	select {
	case <-t.done:
		return nil
	default:
	}
	t.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-t.done:
	case <-time.After(2 * time.Second):
		t.cmd.Process.Kill()
		<-t.done
	}
	var exit *exec.ExitError
	if t.err != nil && !errors.As(t.err, &exit) {
		return t.err
	}
	return nil
}
