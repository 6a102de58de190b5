// Command benchrun runs one VMM for `make bench` inside an emulated host
// and reports what the bench compares, the same way for Tandem and for
// QEMU: how long from the VMM's start until a marker first appears in its
// output (the guest's "done"), and the VMM's peak resident memory, which
// the kernel keeps for a child that has ended (getrusage's ru_maxrss).
// The VMM's output goes to a file; lines that start with one of the
// -echo prefixes are passed on, so the console carries only what the
// bench reads.
//
//	benchrun -marker 'TANDEM-TEST done' -log /tmp/run.log -echo TANDEM-TIMELINE -- tandem run ...
//
// With -guest-mib, when the marker comes it also reads the VMM's
// /proc/PID/smaps, as Firecracker's memory-overhead test does: every
// mapping whose size is exactly the guest's RAM is guest memory, and the
// resident memory of all the others is the VMM's overhead, measured from
// outside while the guest runs, so that the measuring does not add to it.
//
// It ends with one line:
//
//	BENCHRUN status=0 seconds=12.345 marker-seconds=11.2 maxrss-kib=65432 overhead-kib=4321 overhead-file-kib=2100
//
// marker-seconds is -1 when the marker never came; the overhead fields
// are there with -guest-mib and a marker that came. With -timeout, a
// marker that has not come in time ends the command (SIGTERM, SIGKILL
// after a grace period): the line then ends in timed-out=1, and benchrun
// fails, so that a guest that never gets there (one whose init died, and
// that its manifest does not restart) ends a bench round instead of
// leaving it waiting.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// killGrace is how long a command ended for -timeout has after SIGTERM
// before it is killed.
const killGrace = 5 * time.Second

// prefixes is the repeatable -echo flag.
type prefixes []string

func (p *prefixes) String() string     { return strings.Join(*p, ",") }
func (p *prefixes) Set(s string) error { *p = append(*p, s); return nil }

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "benchrun: %v\n", err)
		os.Exit(2)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	marker := fs.String("marker", "", "output text whose first appearance ends the timed part")
	logFile := fs.String("log", "", "file for the VMM's whole output (default: discarded)")
	guestMiB := fs.Uint64("guest-mib", 0, "the guest's RAM in MiB: measure the VMM's overhead when the marker comes")
	smapsCopy := fs.String("smaps", "", "with -guest-mib, also copy the VMM's smaps at the marker to this file")
	stop := fs.Bool("stop", false, "end the command (SIGTERM) once the marker has come")
	limit := fs.Duration("timeout", 0, "end the command if the marker has not come within this time (0: no limit)")
	var echo prefixes
	fs.Var(&echo, "echo", "pass on output lines containing this text (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("no command (benchrun [flags] -- COMMAND ARGS)")
	}
	log := io.Discard
	if *logFile != "" {
		f, err := os.Create(*logFile)
		if err != nil {
			return err
		}
		defer f.Close()
		log = f
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	// Its own process group: -timeout ends all of it, so that no child
	// keeps the output pipe open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	pw.Close()
	var seen, timedOut atomic.Bool
	if *limit > 0 && *marker != "" {
		t := time.AfterFunc(*limit, func() {
			if seen.Load() {
				return
			}
			timedOut.Store(true)
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			time.AfterFunc(killGrace, func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
		})
		defer t.Stop()
	}
	markerAt := time.Duration(-1)
	var over memUse
	var overErr error
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if markerAt < 0 && *marker != "" && strings.Contains(line, *marker) {
			markerAt = time.Since(start)
			seen.Store(true)
			if *guestMiB > 0 {
				over, overErr = overhead(cmd.Process.Pid, *guestMiB<<20, *smapsCopy)
			}
			if *stop {
				cmd.Process.Signal(syscall.SIGTERM)
			}
		}
		fmt.Fprintln(log, line)
		for _, p := range echo {
			if strings.Contains(line, p) {
				fmt.Fprintln(stdout, strings.TrimRight(line, "\r"))
				break
			}
		}
	}
	waitErr := cmd.Wait()
	total := time.Since(start)
	status := 0
	if waitErr != nil {
		var ee *exec.ExitError
		if !errors.As(waitErr, &ee) {
			return waitErr
		}
		status = ee.ExitCode()
	}
	// ru_maxrss is in KiB on Linux (getrusage(2)).
	var maxrss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		maxrss = int64(ru.Maxrss) // int32 on 32-bit hosts
	}
	ms := -1.0
	if markerAt >= 0 {
		ms = markerAt.Seconds()
	}
	fmt.Fprintf(stdout, "BENCHRUN status=%d seconds=%.3f marker-seconds=%.3f maxrss-kib=%d", status, total.Seconds(), ms, maxrss)
	if over.measured {
		fmt.Fprintf(stdout, " overhead-kib=%d overhead-file-kib=%d", over.rss>>10, over.file>>10)
	}
	if timedOut.Load() {
		fmt.Fprint(stdout, " timed-out=1")
	}
	fmt.Fprintln(stdout)
	if timedOut.Load() {
		return fmt.Errorf("%q did not appear within %v (-timeout): the command was ended", *marker, *limit)
	}
	return overErr
}

// memUse is a VMM's resident memory outside guest RAM.
type memUse struct {
	measured  bool
	rss, file uint64 // bytes; file: the part backed by files (its binary, libraries)
}

// overhead sums the resident memory of pid's mappings other than those
// of exactly guestBytes (proc(5), /proc/PID/smaps).
func overhead(pid int, guestBytes uint64, copyTo string) (memUse, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return memUse{}, err
	}
	if copyTo != "" {
		if err := os.WriteFile(copyTo, b, 0o644); err != nil {
			return memUse{}, err
		}
	}
	return parseSmaps(string(b), guestBytes)
}

func parseSmaps(smaps string, guestBytes uint64) (memUse, error) {
	u := memUse{measured: true}
	guest, fileBacked := false, false
	for _, line := range strings.Split(smaps, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		// A mapping's header: "start-end perms offset dev inode [path]".
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && len(f) >= 5 && !strings.HasSuffix(f[0], ":") {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			z, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || z < a {
				return memUse{}, fmt.Errorf("smaps: bad mapping line %q", line)
			}
			guest = z-a == guestBytes
			fileBacked = len(f) >= 6 && strings.HasPrefix(f[5], "/")
			continue
		}
		if f[0] == "Rss:" && len(f) >= 2 && !guest {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return memUse{}, fmt.Errorf("smaps: %q: %w", line, err)
			}
			u.rss += kb << 10
			if fileBacked {
				u.file += kb << 10
			}
		}
	}
	return u, nil
}
