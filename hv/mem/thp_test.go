// The 32-bit ARM pass runs under qemu-arm-static, whose /proc/self/smaps
// describes the emulator's mappings, not the test's; the madvise call is
// the same on every architecture.

//go:build !arm

package mem

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// vmFlags returns the VmFlags smaps lists for the mapping that starts at
// addr.
func vmFlags(t *testing.T, addr uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	want := fmt.Sprintf("%x-", addr)
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasPrefix(fields[0], want)
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Fields(strings.TrimPrefix(line, "VmFlags:"))
		}
	}
	t.Fatalf("no mapping at %#x in /proc/self/smaps", addr)
	return nil
}

// TestHugePageAdvice: guest RAM is advised to huge pages only when asked
// (smaps' "hg"), and kept to small pages otherwise ("nh"), whatever the
// host's transparent huge page default.
func TestHugePageAdvice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		huge       bool
		want, nots string
	}{
		{"default keeps 4 KiB pages", false, "nh", "hg"},
		{"hugepages asks for THP", true, "hg", "nh"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New([]Range{{GPA: 0, Size: 8 << 20}}, Options{HugePages: tc.huge})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			flags := vmFlags(t, uintptr(unsafe.Pointer(&m.Regions()[0].Host[0])))
			if !slices.Contains(flags, tc.want) || slices.Contains(flags, tc.nots) {
				t.Errorf("VmFlags %v: want %q and not %q", flags, tc.want, tc.nots)
			}
		})
	}
}
