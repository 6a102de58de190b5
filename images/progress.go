package images

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Progress reports an image build or flash: a bar redrawn in place when
// it writes to a terminal, one plain line per stage otherwise (logs, CI).
// A nil *Progress reports nothing.
type Progress struct {
	w     io.Writer
	term  bool
	mu    sync.Mutex // protects the fields below
	stage string
	done  int64
	total int64
	shown int // last percentage drawn
}

// NewProgress reports to w, drawing a bar when w is a terminal.
func NewProgress(w io.Writer) *Progress {
	p := &Progress{w: w, shown: -1}
	if f, ok := w.(*os.File); ok {
		if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			p.term = true
		}
	}
	return p
}

// Stage starts a stage of total bytes (0: no byte count).
func (p *Progress) Stage(name string, total int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	p.stage, p.done, p.total, p.shown = name, 0, total, -1
	if !p.term {
		if total > 0 {
			fmt.Fprintf(p.w, "%s (%s)\n", name, humanBytes(total))
		} else {
			fmt.Fprintf(p.w, "%s\n", name)
		}
		return
	}
	p.drawLocked()
}

// Add counts n bytes of the current stage done.
func (p *Progress) Add(n int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if p.term {
		p.drawLocked()
	}
}

// Done ends the last stage.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finishLocked()
	p.stage = ""
}

// Stop ends the current stage where it got to, without drawing it
// complete: the build or flash failed or was interrupted.
func (p *Progress) Stop() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.term && p.stage != "" {
		fmt.Fprintln(p.w)
	}
	p.stage = ""
}

func (p *Progress) finishLocked() {
	if p.term && p.stage != "" {
		p.done = p.total
		p.shown = -1
		p.drawLocked()
		fmt.Fprintln(p.w)
	}
}

const barWidth = 30

func (p *Progress) drawLocked() {
	if p.total <= 0 {
		if p.shown != 0 {
			fmt.Fprintf(p.w, "\r%s", p.stage)
			p.shown = 0
		}
		return
	}
	pct := int(p.done * 100 / p.total)
	if pct > 100 {
		pct = 100
	}
	if pct == p.shown {
		return
	}
	p.shown = pct
	fill := pct * barWidth / 100
	fmt.Fprintf(p.w, "\r[%s%s] %3d%% %s", strings.Repeat("=", fill), strings.Repeat(" ", barWidth-fill), pct, p.stage)
}

// Writer counts what passes through it.
func (p *Progress) Writer(w io.Writer) io.Writer {
	if p == nil {
		return w
	}
	return progressWriter{w, p}
}

type progressWriter struct {
	w io.Writer
	p *Progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.p.Add(int64(n))
	return n, err
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
