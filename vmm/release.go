package vmm

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// releaseProgramPages unmaps the pages of this process's own executable
// that are mapped read-only (code, read-only data, the function tables) so
// that only the pages used from now on are mapped again. A VMM calls it
// once its guest is built, before the vCPUs start.
//
// Why: Go runs every package's initialisation at start-up, and the tandem
// binary carries every subcommand, so start-up touches code and tables
// across most of the binary; page-cache fault-around (64 KiB around each
// fault) then maps whole neighbourhoods. None of that is used again by a
// running guest, but it stays in the VMM's resident set.
//
// How: madvise(MADV_DONTNEED) on a private, read-only file mapping only
// removes the page-table entries; the file's pages stay in the page cache,
// shared with every other process running the binary, and a later access
// maps them again with an ordinary minor fault. Nothing is lost: the
// mappings are never written, so there is no private copy to discard.
// Writable mappings (data, BSS, heap, stacks) are left alone. What this
// lowers is the process's resident set; the page cache holds the binary
// either way (on a ramfs root, always).
func releaseProgramPages() error {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return fmt.Errorf("releasing program pages: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("releasing program pages: %w", err)
	}
	defer f.Close()
	// A dynamically linked executable's read-only data may hold
	// relocated pointers (RELRO: written at load time, then made
	// read-only); dropping those pages would bring back the file's
	// unrelocated bytes. There only code, which is never relocated in
	// place, is released.
	codeOnly := dynamic()
	var spans []span
	s := bufio.NewScanner(f)
	for s.Scan() {
		start, end, ok := programMapping(s.Text(), st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev))
		if ok && codeOnly && !executable(s.Text()) {
			continue
		}
		if ok {
			spans = append(spans, span{start, end})
		}
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("releasing program pages: /proc/self/maps: %w", err)
	}
	releasedMu.Lock()
	released = spans
	releasedMu.Unlock()
	return dropSpans(spans)
}

// released is what releaseProgramPages last released, for
// releaseSetUpPages to release again without reading /proc.
var (
	releasedMu sync.Mutex
	released   []span
)

// span is one mapping of the executable, [start, end).
type span struct{ start, end uintptr }

func dropSpans(spans []span) error {
	for _, sp := range spans {
		if _, _, e := unix.Syscall(unix.SYS_MADVISE, sp.start, sp.end-sp.start, unix.MADV_DONTNEED); e != 0 {
			return fmt.Errorf("releasing program pages %#x-%#x: %w", sp.start, sp.end, e)
		}
	}
	return nil
}

// setUpSettle is how long after the guest's start Run releases the
// executable's pages again (releaseSetUpPages): by then the Go runtime has
// started the threads that stand in for the vCPUs' (blocked in KVM_RUN)
// and the devices have begun their work. On the emulated arm64 board,
// releasing at once left 0.3 MiB more of the binary resident at the test
// guest's last marker than releasing 0.3 s in.
const setUpSettle = 250 * time.Millisecond

// releaseSetUpPages releases the executable's pages once more, a moment
// after Run has set the guest going: what Run did before the guest's
// first instruction (applying the sandbox: building the seccomp program
// and the landlock rules; placing the vCPU threads) and the runtime's
// start of threads for the vCPUs ran after ReleaseStartupPages and is not
// run again. On the emulated arm64 board this took the binary's resident
// pages at the test guest's last marker from 4.70 MiB to about 3.5
// (docs/bench-notes.md).
// It does nothing unless ReleaseStartupPages ran: only a VMM process
// releases, not a test that runs a guest in its own process. It reads no
// file, so the sandbox does not stand in its way; madvise is a call the Go
// runtime itself makes, so the seccomp filter allows it.
func releaseSetUpPages() {
	releasedMu.Lock()
	spans := released
	releasedMu.Unlock()
	_ = dropSpans(spans)
}

// programMapping parses one line of /proc/PID/maps (proc(5)) and reports
// the range of a private, read-only mapping of the file with the given
// inode and device.
func programMapping(line string, ino uint64, major, minor uint32) (start, end uintptr, ok bool) {
	// address perms offset dev inode pathname
	f := strings.Fields(line)
	if len(f) < 6 || len(f[1]) != 4 || f[1][1] == 'w' || f[1][3] != 'p' {
		return 0, 0, false
	}
	if i, err := strconv.ParseUint(f[4], 10, 64); err != nil || i != ino {
		return 0, 0, false
	}
	maj, min, found := strings.Cut(f[3], ":")
	if !found {
		return 0, 0, false
	}
	if m, err := strconv.ParseUint(maj, 16, 32); err != nil || uint32(m) != major {
		return 0, 0, false
	}
	if m, err := strconv.ParseUint(min, 16, 32); err != nil || uint32(m) != minor {
		return 0, 0, false
	}
	a, b, found := strings.Cut(f[0], "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := strconv.ParseUint(a, 16, 64)
	hi, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil || hi <= lo {
		return 0, 0, false
	}
	return uintptr(lo), uintptr(hi), true
}

// dynamic reports whether this process's executable is dynamically
// linked (has a PT_DYNAMIC segment), or cannot be read to tell.
func dynamic() bool {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return true
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// executable reports whether a /proc/PID/maps line's mapping is
// executable.
func executable(line string) bool {
	f := strings.Fields(line)
	return len(f) >= 2 && len(f[1]) == 4 && f[1][2] == 'x'
}
