package system

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// outputQueue bounds the lines waiting for Out and Log: a console that
// floods, or an output that stalls (a paused terminal, a slow serial
// console), fills it, and then lines are dropped and counted.
const outputQueue = 4096

// outputFlush bounds how long Run waits, when it ends, for the queued
// lines to be written.
const outputFlush = 5 * time.Second

// outLine is one line for Out or Log, or, with flushed, a mark the
// writer closes flushed at.
type outLine struct {
	w       io.Writer
	b       []byte
	flushed chan struct{}
}

// output is the supervisor's only writer to Out and Log. The console pumps
// and the supervisor queue lines and go on at once; one goroutine writes
// them in order. Nothing a guest prints, and no output that stops taking
// it, can hold up another guest's console, and so its vCPUs (a VMM whose
// console pipe is full blocks in its UART write), or the supervisor's
// restarts.
type output struct {
	q       chan outLine
	dropped atomic.Uint64 // lines dropped since the last report
	log     io.Writer     // where drops are reported (Log)
}

func newOutput(log io.Writer) *output {
	o := &output{q: make(chan outLine, outputQueue), log: log}
	go o.write()
	return o
}

// put queues a line, or drops it if the queue is full.
func (o *output) put(w io.Writer, b []byte) {
	if w == nil {
		return
	}
	select {
	case o.q <- outLine{w: w, b: b}:
	default:
		o.dropped.Add(1)
	}
}

func (o *output) write() {
	for l := range o.q {
		if l.w != nil {
			l.w.Write(l.b)
		}
		// Once caught up, say what was lost.
		if len(o.q) == 0 || l.flushed != nil {
			if n := o.dropped.Swap(0); n > 0 && o.log != nil {
				fmt.Fprintf(o.log, "tandem: %d lines dropped: the output did not keep up with the guests' consoles\n", n)
			}
		}
		if l.flushed != nil {
			close(l.flushed)
		}
	}
}

// flush waits, at most outputFlush, until what is queued is written.
// Lines may still be queued after it: the queue is never closed.
func (o *output) flush() {
	flushed := make(chan struct{})
	deadline := time.After(outputFlush)
	select {
	case o.q <- outLine{flushed: flushed}:
	case <-deadline:
		return
	}
	select {
	case <-flushed:
	case <-deadline:
	}
}
