package images

import (
	"context"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// groupCommand is exec.CommandContext for a program that runs programs
// of its own (apt-get its download methods, dpkg-deb tar): it runs in a
// process group of its own, and cancelling ctx sends the whole group
// SIGINT, as a Ctrl-C would, then kills the program if it has not ended
// within 10 seconds. Killing the program alone would leave its children
// running, writing into directories being removed.
func groupCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// ctxWriter fails its writes once ctx is done, so that a long copy
// through it (an image's data partition, a flash, the block map's
// hashes) ends soon after an interrupt instead of running to the end.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(b)
}

// progressWriterAt reports bytes written to a progress and, like
// ctxWriter, fails once ctx is done.
type progressWriterAt struct {
	ctx context.Context
	w   io.WriterAt
	pr  *Progress
}

func (c progressWriterAt) WriteAt(b []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.WriteAt(b, off)
	c.pr.Add(int64(n))
	return n, err
}
