package images

import (
	"context"
	"io"
)

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
