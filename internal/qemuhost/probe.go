package qemuhost

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tandem-hv/tandem/system/procstat"
)

// A host whose console fell silent is asked where it is before it is
// killed, so that a freeze seen once on a CI machine says what froze:
//
//   - QEMU's threads, each with its state and CPU use over a short
//     while: emulated CPUs that run flat out are a host spinning, all
//     threads asleep a QEMU that stopped;
//   - the host kernel, through serial breaks and sysrq: each CPU's
//     backtrace (l), or nothing if its CPUs take no interrupts, and where
//     each user-space thread waits (t): a VMM or supervisor stuck while
//     the host idles;
//   - QEMU's monitor, through info registers -a: where each emulated CPU
//     is and whether it is halted.
//
// The serial port is QEMU's stdio multiplexed with its monitor (-serial
// mon:stdio), so both are reached by writing to QEMU's standard input.
const (
	muxBreak   = "\x01b" // Ctrl-A b: a break on the serial line
	muxMonitor = "\x01c" // Ctrl-A c: to the monitor (and back)
	// probeSample is how long QEMU's threads are watched.
	probeSample = 2 * time.Second
	// sysrqWait is how long the kernel's backtraces may take: all CPUs'
	// NMI handlers print in turn on a slow emulated serial port.
	sysrqWait = 6 * time.Second
	// tasksWait is how long sysrq t's dump of every task may take.
	tasksWait = 10 * time.Second
	// monitorWait is how long the monitor may take to answer.
	monitorWait = 3 * time.Second
	// answerQuiet ends a wait early: an answer has begun and the console
	// has then been quiet this long, so the answer is complete. The
	// waits above bound a host that answers slowly or not at all.
	answerQuiet = 1500 * time.Millisecond
	// probeFrames bounds the frames kept of each backtrace.
	probeFrames = 8
	// probeLines bounds the report.
	probeLines = 60
)

// probeFrozen runs the probe against QEMU process pid, writing to its
// standard input in, and returns its report. The console keeps
// collecting what the host and the monitor answer.
func probeFrozen(ctx context.Context, in io.Writer, pid int, con *console) string {
	var b strings.Builder
	fmt.Fprintf(&b, "probe of the silent host:\n")
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "\tthis machine's load average: %s\n", strings.Join(strings.Fields(string(la))[:3], " "))
	}
	fmt.Fprintf(&b, "\tQEMU's threads over %v: %s\n", probeSample, threadUse(ctx, pid, probeSample))

	// Console log level 9 first: sysrq t prints at KERN_INFO, which the
	// host's loglevel=5 would hold back.
	sysrq := func(key string) {
		io.WriteString(in, muxBreak)
		sleep(ctx, 300*time.Millisecond)
		io.WriteString(in, key)
	}
	sysrq("9")
	sleep(ctx, 500*time.Millisecond)
	mark := con.size()
	sysrq("l")
	awaitAnswer(ctx, con, mark, sysrqWait)
	kernel := kernelBacktraces(con.since(mark))
	if len(kernel) == 0 {
		fmt.Fprintf(&b, "\thost kernel: no answer to sysrq l within %v (its CPUs take no interrupts, or QEMU stopped)\n", sysrqWait)
	} else {
		fmt.Fprintf(&b, "\thost kernel, sysrq l:\n\t\t%s\n", strings.Join(kernel, "\n\t\t"))
		mark = con.size()
		sysrq("t")
		awaitAnswer(ctx, con, mark, tasksWait)
		if tasks := taskStacks(con.since(mark)); len(tasks) > 0 {
			fmt.Fprintf(&b, "\thost kernel, sysrq t, user-space threads:\n\t\t%s\n", strings.Join(tasks, "\n\t\t"))
		} else {
			fmt.Fprintf(&b, "\thost kernel: no answer to sysrq t within %v\n", tasksWait)
		}
	}

	mark = con.size()
	io.WriteString(in, muxMonitor+"info registers -a\r")
	awaitAnswer(ctx, con, mark, monitorWait)
	io.WriteString(in, muxMonitor)
	regs := registerLines(con.since(mark))
	if len(regs) == 0 {
		fmt.Fprintf(&b, "\tQEMU monitor: no answer to info registers within %v\n", monitorWait)
	} else {
		fmt.Fprintf(&b, "\tQEMU monitor, info registers -a:\n\t\t%s\n", strings.Join(regs, "\n\t\t"))
	}
	return strings.TrimRight(b.String(), "\n")
}

// awaitAnswer waits until the console has grown past mark and then been
// quiet for answerQuiet, or until max has passed.
func awaitAnswer(ctx context.Context, con *console, mark int, max time.Duration) {
	const poll = 100 * time.Millisecond
	deadline := time.Now().Add(max)
	size, quietSince := con.size(), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, poll)
		switch n := con.size(); {
		case n != size:
			size, quietSince = n, time.Now()
		case n > mark && time.Since(quietSince) >= answerQuiet:
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// kernelBacktraces picks the lines that say where each CPU is out of a
// kernel's sysrq l answer: the NMI backtrace headers, the task, and each
// interrupted context's instruction pointer with its first reliable
// frames (the frames of the NMI and sysrq code before it are left out).
func kernelBacktraces(out string) []string {
	var keep []string
	frames := -1 // no RIP yet in this backtrace
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.TrimRight(l, "\r"))
		switch {
		case len(keep) >= probeLines:
			return keep
		case strings.Contains(l, "sysrq:") || strings.Contains(l, "NMI backtrace for cpu") ||
			strings.Contains(l, "CPU: ") && strings.Contains(l, " PID: "):
			frames = -1
			keep = append(keep, l)
		case strings.Contains(l, "RIP: 00") || strings.Contains(l, " pc : "):
			frames = 0
			keep = append(keep, l)
		case frames >= 0 && frames < probeFrames && strings.Contains(l, "+0x") && !strings.Contains(l, " ? "):
			frames++
			keep = append(keep, l)
		}
	}
	return keep
}

// taskStacks picks the user-space threads (not kernel threads, whose
// parent is kthreadd, pid 2, or none) out of a kernel's sysrq t answer:
// each one's "task:" line (name, state, pid) and the first reliable
// frames of its stack. Threads whose stacks are the same are given once,
// with how many there were.
func taskStacks(out string) []string {
	type task struct {
		head   string
		frames []string
	}
	var tasks []*task
	var cur *task
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.TrimRight(l, "\r"))
		if i := strings.Index(l, "task:"); i >= 0 {
			cur = nil
			if f := strings.Fields(l[i:]); !slices.Contains(f, "ppid:0") && !slices.Contains(f, "ppid:2") {
				cur = &task{head: strings.Join(f, " ")}
				tasks = append(tasks, cur)
			}
			continue
		}
		if cur != nil && len(cur.frames) < probeFrames && strings.Contains(l, "+0x") && !strings.Contains(l, " ? ") {
			name, _, _ := strings.Cut(frame(l), "+0x")
			if !slices.Contains(schedulingFrames, name) {
				cur.frames = append(cur.frames, name)
			}
		}
	}
	// One group per distinct stack, in order of first appearance.
	type group struct {
		first *task
		stack string
		n     int
	}
	var groups []*group
	byStack := map[string]*group{}
	for _, t := range tasks {
		stack := strings.Join(t.frames, " < ")
		g := byStack[stack]
		if g == nil {
			g = &group{first: t, stack: stack}
			byStack[stack] = g
			groups = append(groups, g)
		}
		g.n++
	}
	var keep []string
	for _, g := range groups {
		head := g.first.head
		if g.n > 1 {
			head = fmt.Sprintf("%s (and %d more with this stack)", head, g.n-1)
		}
		keep = append(keep, head)
		if g.stack != "" {
			keep = append(keep, "  "+g.stack)
		}
		if len(keep) >= probeLines {
			break
		}
	}
	return keep
}

// schedulingFrames are left out of taskStacks' stacks: every sleeping
// thread has them.
var schedulingFrames = []string{"__schedule", "schedule", "do_syscall_64", "entry_SYSCALL_64_after_hwframe"}

// registerLines picks each CPU's header and instruction pointer out of
// QEMU's info registers -a: "CPU#0", "RIP=… CPL=0 … HLT=1" (x86) or
// " PC=…" (arm64).
func registerLines(out string) []string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.TrimRight(l, "\r"))
		if strings.HasPrefix(l, "CPU#") || strings.HasPrefix(l, "RIP=") || strings.HasPrefix(l, "PC=") {
			keep = append(keep, l)
		}
		if len(keep) >= probeLines {
			break
		}
	}
	return keep
}

// threadUse describes process pid's threads: name, state and the share
// of one machine CPU each used over d.
func threadUse(ctx context.Context, pid int, d time.Duration) string {
	before := map[int]time.Duration{}
	for _, t := range threadStats(pid) {
		before[t.tid] = t.CPU()
	}
	sleep(ctx, d)
	after := threadStats(pid)
	if len(after) == 0 {
		return "none (QEMU has gone)"
	}
	var parts []string
	for _, t := range after {
		used := t.CPU() - before[t.tid]
		parts = append(parts, fmt.Sprintf("%s %s %d%%", t.Name, t.State, int(used.Seconds()/d.Seconds()*100)))
	}
	return strings.Join(parts, ", ")
}

// threadStat is one thread's /proc/PID/task/TID/stat.
type threadStat struct {
	tid int
	procstat.Stat
}

// threadStats reads each thread of pid, in thread id order.
func threadStats(pid int) []threadStat {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []threadStat
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, ok := procstat.Read(filepath.Join(dir, e.Name(), "stat")); ok {
			out = append(out, threadStat{tid, s})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tid < out[j].tid })
	return out
}
