package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/tandem-hv/tandem/vmm"
)

// bootEnv marks a `tandem run` that runBoots started for one boot of a
// guest: a reset ends it (status 2) and the parent starts the next.
const bootEnv = "TANDEM_RUN_BOOT"

// consoleFDEnv names the descriptor a boot's console is on, when the
// parent opened it (a pty, kept across boots).
const consoleFDEnv = "TANDEM_RUN_CONSOLE_FD"

// warnNoSandbox says, loudly, that the VMM runs unconfined.
func warnNoSandbox(w io.Writer) {
	fmt.Fprintln(w, "tandem: WARNING: --no-sandbox: this VMM runs its guest with no seccomp filter, no Landlock, no limits and its privileges kept; a guest that breaks out of its devices owns what the VMM can reach. For debugging only.")
}

// runBoots runs a guest that restarts on reset (--restart, restart: true)
// one boot per child process: each child is this `tandem run` again, with
// bootEnv set, sandboxed for its boot, and a reset ends it with status 2,
// upon which the next starts. Building the VM again inside a sandboxed
// process would need what the sandbox refuses (creating a VM, opening
// files), so the loop lives here, in a process that holds nothing of the
// guest's. The console stays the same across boots: stdio is inherited,
// a file is emptied once here and each boot appends to it, a pty is
// opened here and handed to each boot. SIGINT and SIGTERM stop the boot
// and the loop; SIGUSR1 reaches the boot (its vCPUs' state).
//
// boot is the command of one boot: this program and its arguments.
func runBoots(ctx context.Context, boot []string, console string, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	var extra []*os.File
	env := append(os.Environ(), bootEnv+"=1")
	switch {
	case strings.HasPrefix(console, "file:"):
		path := strings.TrimPrefix(console, "file:")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("--console %s: %w", console, err)
		}
		f.Close()
	case console == "pty":
		master, name, err := openPTY()
		if err != nil {
			return fmt.Errorf("--console pty: %w", err)
		}
		defer master.Close()
		fmt.Fprintf(stderr, "tandem: console on %s\n", name)
		extra = append(extra, master)
		env = append(env, consoleFDEnv+"=3")
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	for {
		cmd := exec.Command(boot[0], boot[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		cmd.Env, cmd.ExtraFiles = env, extra
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("starting the guest's boot: %w", err)
		}
		done := make(chan struct{})
		var stopped atomic.Bool
		go func() {
			for {
				select {
				case s := <-sigs:
					if s != syscall.SIGUSR1 {
						stopped.Store(true)
						s = syscall.SIGTERM
					}
					cmd.Process.Signal(s)
				case <-ctx.Done():
					stopped.Store(true)
					cmd.Process.Signal(syscall.SIGTERM)
					<-done
					return
				case <-done:
					return
				}
			}
		}()
		err := cmd.Wait()
		close(done)
		code := cmd.ProcessState.ExitCode()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return err
		}
		if code == int(vmm.ExitReset) && !stopped.Load() {
			continue
		}
		if code < 0 {
			return fmt.Errorf("the guest's boot ended: %v", cmd.ProcessState)
		}
		if code == 0 {
			return nil // powered off
		}
		// The boot said how the guest ended.
		return quietExit(code)
	}
}

// quietExit is an exit status whose reason was already printed.
type quietExit int

func (q quietExit) Error() string { return "" }
func (q quietExit) ExitCode() int { return int(q) }
