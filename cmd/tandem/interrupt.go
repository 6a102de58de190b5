package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// interruptedError ends a command that SIGINT or SIGTERM stopped (or
// whose context was cancelled): what it says of the outputs comes from
// the command.
type interruptedError struct {
	cmd  string
	sig  os.Signal // nil: the context was cancelled, not signalled
	note string
}

func (e *interruptedError) Error() string {
	by := ""
	switch e.sig {
	case os.Interrupt:
		by = " by SIGINT"
	case syscall.SIGTERM:
		by = " by SIGTERM"
	}
	if e.note == "" {
		return e.cmd + ": interrupted" + by
	}
	return e.cmd + ": interrupted" + by + ": " + e.note
}

// ExitCode is the shell's for a process a signal ended, 128 plus the
// signal's number, so that scripts tell an interrupt from a failure.
func (e *interruptedError) ExitCode() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return 1
}

// interruptible runs a long command's work, f, with a context that
// SIGINT and SIGTERM cancel instead of ending the process on the spot,
// so that f stops its children and removes its temporary files on the
// way out. Signals stay caught until f returns: a second Ctrl-C does not
// cut the clean-up short. When f fails after a cancel, the error is an
// interruptedError carrying note (what became of the outputs); when f
// finishes anyway (the signal came after its last step), its outputs are
// complete and it succeeds.
func interruptible(cmd *cobra.Command, name, note string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithCancelCause(cmd.Context())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			cancel(&interruptedError{cmd: name, sig: s, note: note})
		case <-ctx.Done():
		}
	}()
	err := f(ctx)
	if err != nil && ctx.Err() == nil && diedOfSignal(err) {
		// A Ctrl-C reaches the children in the terminal's process group
		// too: one that died of it can end f before the signal is seen
		// here.
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	if err == nil || ctx.Err() == nil {
		return err
	}
	var in *interruptedError
	if errors.As(context.Cause(ctx), &in) {
		return in
	}
	return &interruptedError{cmd: name, note: note}
}

// diedOfSignal reports whether err comes from a child that SIGINT or
// SIGTERM ended.
func diedOfSignal(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && (ws.Signal() == syscall.SIGINT || ws.Signal() == syscall.SIGTERM)
}

// notWritten is the note of a command interrupted before its output was
// complete.
func notWritten(out string) string {
	return fmt.Sprintf("%s not written, temporary files removed", out)
}
