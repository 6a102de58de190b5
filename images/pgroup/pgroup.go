// Package pgroup runs programs that run programs of their own (go build
// its compiler and linker, apt-get its download methods, dpkg-deb tar) so
// that cancelling a context stops all of them, as a Ctrl-C in a terminal
// would, and none is left running, writing into directories the caller is
// about to remove.
package pgroup

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"time"
)

// StopDelay is how long a program has, once interrupted, to end before
// it is killed.
const StopDelay = 10 * time.Second

// Cmd is an exec.Cmd run in a process group of its own.
type Cmd struct {
	*exec.Cmd
	ctx context.Context
}

// Command is exec.CommandContext for name, run in a process group of its
// own. Cancelling ctx sends the whole group SIGINT (signalled alone, a
// program such as go exits and leaves its children running); the program
// is killed if it has not ended within StopDelay. Set Dir, Env, Stdout
// and the like on the embedded exec.Cmd.
func Command(ctx context.Context, name string, args ...string) *Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = StopDelay
	return &Cmd{Cmd: cmd, ctx: ctx}
}

// Run runs the command. When ctx was cancelled, it then kills what is
// left of the process group, a child started just as the group was
// signalled, which its parent may not wait for, or one that ignores
// SIGINT, and waits (a second at most) until none is left.
func (c *Cmd) Run() error {
	err := c.Cmd.Run()
	if c.ctx.Err() != nil && c.Process != nil {
		stopGroup(c.Process.Pid)
	}
	return err
}

// CombinedOutput runs the command as Run does and returns its standard
// output and standard error together.
func (c *Cmd) CombinedOutput() ([]byte, error) {
	var b bufferWriter
	c.Stdout, c.Stderr = &b, &b
	err := c.Run()
	return b, err
}

type bufferWriter []byte

func (b *bufferWriter) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

// stopGroup kills process group pgid and waits until it is empty: a
// group outlives its leader while any member runs, and its number is not
// reused until then.
func stopGroup(pgid int) {
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
			return
		}
	}
}
