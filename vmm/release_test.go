package vmm

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestProgramMapping(t *testing.T) {
	const ino, major, minor = 6, 0, 2
	tests := []struct {
		name       string
		line       string
		start, end uintptr
		ok         bool
	}{
		{"code", "00400000-0084a000 r-xp 00000000 00:02 6                                  /tandem", 0x400000, 0x84a000, true},
		{"read-only data", "0084a000-00cbd000 r--p 0044a000 00:02 6   /tandem", 0x84a000, 0xcbd000, true},
		{"deleted binary", "00400000-0084a000 r-xp 00000000 00:02 6   /tandem (deleted)", 0x400000, 0x84a000, true},
		{"data", "00cbd000-00d1d000 rw-p 008bd000 00:02 6   /tandem", 0, 0, false},
		{"shared", "00400000-0084a000 r-xs 00000000 00:02 6   /tandem", 0, 0, false},
		{"other inode", "00400000-0084a000 r-xp 00000000 00:02 7   /lib/other.so", 0, 0, false},
		{"other device", "00400000-0084a000 r-xp 00000000 fe:00 6   /mnt/tandem", 0, 0, false},
		{"anonymous", "00d1d000-02d60000 rw-p 00000000 00:00 0 ", 0, 0, false},
		{"vdso", "7ffdedf69000-7ffdedf6b000 r-xp 00000000 00:00 0  [vdso]", 0, 0, false},
		{"empty range", "00400000-00400000 r-xp 00000000 00:02 6   /tandem", 0, 0, false},
		{"garbage", "not a maps line at all", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start, end, ok := programMapping(tt.line, ino, major, minor)
			if start != tt.start || end != tt.end || ok != tt.ok {
				t.Errorf("programMapping(%q) = %#x, %#x, %v, want %#x, %#x, %v", tt.line, start, end, ok, tt.start, tt.end, tt.ok)
			}
		})
	}
}

// TestReleaseProgramPages releases this test binary's read-only pages and
// checks that fewer of them are resident afterwards, and that the program
// still runs (it reads its code and tables back from the page cache).
//
// Both snapshots of /proc/self/smaps are read with bare system calls into
// buffers allocated beforehand, and parsed only after the second: every
// instruction run between the release and the snapshot maps its code's
// 64 KiB neighbourhood again (fault-around), and under the race detector,
// where only code is released, parsing alone would map back most of it.
func TestReleaseProgramPages(t *testing.T) {
	st, codeOnly := programUnderTest(t)
	before, after := make([]byte, 4<<20), make([]byte, 4<<20)
	// No collection runs in between: its code would be mapped back too.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	nb := readSmaps(t, before)
	if err := releaseProgramPages(); err != nil {
		t.Fatalf("releaseProgramPages() = %v", err)
	}
	na := readSmaps(t, after)
	b := programRSS(t, before[:nb], st, codeOnly)
	a := programRSS(t, after[:na], st, codeOnly)
	what := "read-only program pages"
	if codeOnly {
		what = "program code pages (a dynamic binary: only code is released)"
	}
	t.Logf("%s resident: %d KiB before, %d KiB after", what, b>>10, a>>10)
	if a >= b {
		t.Errorf("%s resident: %d KiB after release, want fewer than the %d KiB before", what, a>>10, b>>10)
	}
}

// programUnderTest returns the test binary's inode and whether only its
// code is released (a dynamic binary). It skips under the race detector,
// whose runtime threads run the program's code while the pages are
// counted; make test's plain pass measures them.
func programUnderTest(t *testing.T) (unix.Stat_t, bool) {
	t.Helper()
	if raceDetector {
		t.Skip("skipping under the race detector: page residency is measured in the plain pass")
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	return st, dynamic()
}

// readSmaps reads /proc/self/smaps into buf with bare system calls.
func readSmaps(t *testing.T, buf []byte) int {
	fd, err := unix.Open("/proc/self/smaps", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	n := 0
	for n < len(buf) {
		r, err := unix.Read(fd, buf[n:])
		if err != nil || r == 0 {
			break
		}
		n += r
	}
	unix.Close(fd)
	if n == len(buf) {
		t.Fatalf("/proc/self/smaps is larger than %d bytes", len(buf))
	}
	return n
}

// programRSS sums the Rss of the mappings of this process's executable
// that releaseProgramPages releases, from a copy of /proc/self/smaps.
func programRSS(t *testing.T, smaps []byte, st unix.Stat_t, codeOnly bool) uint64 {
	t.Helper()
	var total uint64
	in := false
	s := bufio.NewScanner(bytes.NewReader(smaps))
	for s.Scan() {
		line := s.Text()
		if _, _, ok := programMapping(line, st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev)); ok {
			in = !codeOnly || executable(line)
			continue
		}
		fields := strings.Fields(line)
		if len(fields) > 0 && !strings.HasSuffix(fields[0], ":") {
			in = false // another mapping's header
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				t.Fatalf("/proc/self/smaps: %q: %v", line, err)
			}
			total += kb << 10
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestReleaseSetUpPages checks that Run's second release drops what was
// touched since the first, and that without a first release (a guest run
// inside a test or a long-lived program, not a VMM process) it leaves
// the program's pages alone.
func TestReleaseSetUpPages(t *testing.T) {
	st, codeOnly := programUnderTest(t)
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	defer func() {
		releasedMu.Lock()
		released = nil
		releasedMu.Unlock()
	}()
	for _, tc := range []struct {
		name         string
		firstRelease bool
		wantFewer    bool
	}{
		{"after ReleaseStartupPages: released again", true, true},
		{"without it: left alone", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			releasedMu.Lock()
			released = nil
			releasedMu.Unlock()
			// visible: the first release lowered the resident set. A
			// host that maps a binary's code in huge pages of the page
			// cache (file THP, as a dynamically linked test binary's
			// 2 MiB-aligned text can be) maps the whole of it back at
			// the next fault, and neither release shows there.
			visible := false
			if tc.firstRelease {
				buf := make([]byte, 4<<20)
				b0 := programRSS(t, buf[:readSmaps(t, buf)], st, codeOnly)
				if err := releaseProgramPages(); err != nil {
					t.Fatalf("releaseProgramPages() = %v", err)
				}
				b1 := programRSS(t, buf[:readSmaps(t, buf)], st, codeOnly)
				visible = b0-b1 >= 256<<10 && b1 < b0
				t.Logf("first release: %d KiB resident before, %d KiB after", b0>>10, b1>>10)
			}
			// Set-up work after the first release: code and tables
			// the running guest does not use again.
			if _, err := regexp.Compile(`^(set|up)+[0-9]{2,}$`); err != nil {
				t.Fatal(err)
			}
			_ = fmt.Sprintf("%v %q %x", tc, tc.name, 1<<20)
			before, after := make([]byte, 4<<20), make([]byte, 4<<20)
			nb := readSmaps(t, before)
			releaseSetUpPages()
			na := readSmaps(t, after)
			b := programRSS(t, before[:nb], st, codeOnly)
			a := programRSS(t, after[:na], st, codeOnly)
			t.Logf("program pages resident: %d KiB before, %d KiB after", b>>10, a>>10)
			if tc.wantFewer && !visible {
				if a > b {
					t.Errorf("program pages resident: %d KiB after releaseSetUpPages, more than the %d KiB before", a>>10, b>>10)
				}
				return
			}
			if fewer := a < b; fewer != tc.wantFewer {
				t.Errorf("program pages resident: %d KiB after releaseSetUpPages, %d KiB before; want fewer: %v", a>>10, b>>10, tc.wantFewer)
			}
		})
	}
}
