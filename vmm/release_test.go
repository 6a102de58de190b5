package vmm

import (
	"bufio"
	"os"
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
func TestReleaseProgramPages(t *testing.T) {
	before := programRSS(t)
	if err := releaseProgramPages(); err != nil {
		t.Fatalf("releaseProgramPages() = %v", err)
	}
	after := programRSS(t)
	t.Logf("read-only program pages resident: %d KiB before, %d KiB after", before>>10, after>>10)
	if after >= before {
		t.Errorf("resident read-only program pages: %d KiB after release, want fewer than the %d KiB before", after>>10, before>>10)
	}
}

// programRSS sums the Rss of this process's read-only mappings of its
// executable, from /proc/self/smaps.
func programRSS(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var total uint64
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if _, _, ok := programMapping(line, st.Ino, unix.Major(st.Dev), unix.Minor(st.Dev)); ok {
			in = true
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
