package vmm

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A Timeline records where a VMM's time goes from the process's start to
// the guest's first instruction: one span per step (the runtime's and the
// packages' initialisation, reading the configuration, each step of
// Build, starting the vCPUs). `tandem run --timeline` prints it, and
// `make bench` draws it. Its methods do nothing on a nil *Timeline, so
// the steps record into one unconditionally.
type Timeline struct {
	// mu protects everything below: vCPU threads record too.
	mu sync.Mutex
	// origin is the process's start (its exec), or failing that when
	// NewTimeline was called.
	origin time.Time
	last   time.Time // the end of the latest span
	spans  []Span
	// entered is set once the first vCPU has entered the guest.
	entered bool
}

// A Span is one step of a Timeline, in time since the process started.
type Span struct {
	Name       string
	Start, End time.Duration
}

// NewTimeline starts a timeline at the process's start; its first span,
// "process start to main", covers the runtime's and every package's
// initialisation up to the call.
func NewTimeline() *Timeline {
	now := time.Now()
	t := &Timeline{origin: now, last: now}
	if age, err := processAge(); err == nil && age > 0 {
		t.origin = now.Add(-age)
		t.spans = append(t.spans, Span{Name: "process start to main", End: age})
	}
	return t
}

// Step records a span from the end of the previous one to now.
func (t *Timeline) Step(name string) {
	if t == nil {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.spans = append(t.spans, Span{Name: name, Start: t.last.Sub(t.origin), End: now.Sub(t.origin)})
	t.last = now
}

// guestEntered records the span up to the first KVM_RUN of any vCPU:
// the guest's first instruction. Later calls record nothing.
func (t *Timeline) guestEntered() {
	if t == nil {
		return
	}
	t.mu.Lock()
	done := t.entered
	t.entered = true
	t.mu.Unlock()
	if !done {
		t.Step("starting the vCPUs (to the first KVM_RUN)")
	}
}

// Spans returns the spans recorded so far, in order.
func (t *Timeline) Spans() []Span {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Span(nil), t.spans...)
}

// TimelinePrefix starts each line WriteTo prints, for tools that read
// them from a console among other output.
const TimelinePrefix = "TANDEM-TIMELINE "

// WriteTo prints one line per span: its start and length in
// milliseconds since the process started, and its name.
//
//	TANDEM-TIMELINE start-ms=12.3 ms=4.5 step=loading the kernel
func (t *Timeline) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	for _, s := range t.Spans() {
		fmt.Fprintf(&b, "%sstart-ms=%.1f ms=%.1f step=%s\n", TimelinePrefix, ms(s.Start), ms(s.End-s.Start), s.Name)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ParseTimelineLine reads back one line WriteTo printed.
func ParseTimelineLine(line string) (Span, bool) {
	_, rest, ok := strings.Cut(line, TimelinePrefix)
	if !ok {
		return Span{}, false
	}
	var start, dur float64
	var name string
	for _, f := range []struct {
		key string
		v   *float64
	}{{"start-ms=", &start}, {"ms=", &dur}} {
		v, r, ok := strings.Cut(strings.TrimPrefix(rest, f.key), " ")
		if !ok || !strings.HasPrefix(rest, f.key) {
			return Span{}, false
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return Span{}, false
		}
		*f.v, rest = x, r
	}
	name, ok = strings.CutPrefix(strings.TrimRight(rest, "\r"), "step=")
	if !ok {
		return Span{}, false
	}
	toDur := func(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }
	return Span{Name: name, Start: toDur(start), End: toDur(start + dur)}, true
}

// processAge is how long ago this process started (its exec), from
// /proc/self/stat's starttime (proc(5): field 22, in clock ticks since
// boot) and CLOCK_BOOTTIME, which that count follows. Linux reports it
// in USER_HZ ticks, 100 a second, so it is good to 10 ms.
func processAge() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, err
	}
	start, err := statStartTime(string(b))
	if err != nil {
		return 0, err
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, err
	}
	return time.Duration(ts.Nano()) - time.Duration(start)*time.Second/userHZ, nil
}

// userHZ is the unit of /proc's tick counts (USER_HZ).
const userHZ = 100

// statStartTime returns field 22 of a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may hold spaces and parentheses
// of its own, so fields are counted from its last ')'.
func statStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/self/stat: no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	const starttime = 22 - 3
	if len(f) <= starttime {
		return 0, fmt.Errorf("/proc/self/stat: %d fields after the command name, want more than %d", len(f), starttime)
	}
	return strconv.ParseUint(f[starttime], 10, 64)
}
