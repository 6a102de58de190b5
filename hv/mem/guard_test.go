package mem

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

var sink byte

// TestGuardPages: the page before and the page after every region fault
// when touched, so a stray access off the end of guest RAM cannot reach
// the host's other memory.
func TestGuardPages(t *testing.T) {
	page := unix.Getpagesize()
	// The last region is large enough to be placed at its huge-page
	// phase, with what the placement left over unmapped again.
	m, err := New([]Range{{GPA: 0, Size: 4 * uint64(page)}, {GPA: 1 << 20, Size: uint64(page)}, {GPA: 1<<30 + 1<<20, Size: 4 << 20}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faults := func(b []byte, i int) (faulted bool) {
		defer func() { faulted = recover() != nil }()
		sink = b[i] // a load the compiler cannot drop
		return false
	}
	for _, r := range m.Regions() {
		w := r.mapping // the guard pages, then Host, then the guard pages
		if len(w) != len(r.Host)+2*page || &w[page] != &r.Host[0] {
			t.Fatalf("region %#x: mapping of %d bytes, Host not a page into it", r.GPA, len(w))
		}
		if faults(w, page) || faults(w, page+len(r.Host)-1) {
			t.Errorf("region %#x: its own first or last byte faults", r.GPA)
		}
		for _, i := range []int{0, page - 1, page + len(r.Host), len(w) - 1} {
			if !faults(w, i) {
				t.Errorf("region %#x: byte %d of the mapping (a guard page) is readable", r.GPA, i-page)
			}
		}
	}
}

// TestHugePagePhase: a region at least a huge page long starts at the
// same offset within a host huge page as its guest-physical address, so
// that KVM can map the guest's huge-page-aligned blocks as blocks.
func TestHugePagePhase(t *testing.T) {
	huge := hugePageSize()
	if huge == 0 {
		t.Skip("this kernel has no transparent huge pages (/sys/kernel/mm/transparent_hugepage/hpage_pmd_size)")
	}
	for _, tc := range []struct {
		name string
		r    Range
	}{
		{"arm64 RAM at 1 GiB", Range{GPA: 1 << 30, Size: 2 * huge}},
		{"x86 RAM above 1 MiB", Range{GPA: 1 << 20, Size: 3 * huge}},
		{"exactly one huge page", Range{GPA: 1 << 32, Size: huge}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New([]Range{tc.r}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			host := uint64(uintptr(unsafe.Pointer(&m.Regions()[0].Host[0])))
			if host%huge != tc.r.GPA%huge {
				t.Errorf("host address %#x is at %#x in its huge page, guest-physical %#x at %#x", host, host%huge, tc.r.GPA, tc.r.GPA%huge)
			}
		})
	}
}

// TestHugePageAdvice: guest RAM is advised for huge pages (VmFlags "hg"
// in smaps) when asked for, and when locked, where it costs no memory.
func TestHugePageAdvice(t *testing.T) {
	if hugePageSize() == 0 {
		t.Skip("this kernel has no transparent huge pages (/sys/kernel/mm/transparent_hugepage/hpage_pmd_size)")
	}
	if !adviceShows(t) {
		// qemu-user (the 32-bit ARM pass) ignores the advice and makes
		// up its own smaps.
		t.Skip("smaps does not show MADV_HUGEPAGE on a mapping advised directly: an emulator's, not the kernel's")
	}
	for _, tc := range []struct {
		name string
		opt  Options
		want bool
	}{
		{"neither", Options{}, false},
		{"hugepages", Options{HugePages: true}, true},
		{"lock-memory", Options{Lock: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := New([]Range{{GPA: 1 << 30, Size: 4 << 20}}, tc.opt)
			if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOMEM) {
				t.Skipf("mlock refused (RLIMIT_MEMLOCK): %v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			flags, err := vmFlags(uintptr(unsafe.Pointer(&m.Regions()[0].Host[0])))
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Contains(flags, "hg"); got != tc.want {
				t.Errorf("VmFlags %v: huge-page advice %v, want %v", flags, got, tc.want)
			}
		})
	}
}

// vmFlags returns the VmFlags smaps shows for the mapping at addr.
func vmFlags(addr uintptr) ([]string, error) {
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, err
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(l, "%x-%x ", &lo, &hi); n == 2 {
			in = lo <= addr && addr < hi
		} else if f, ok := strings.CutPrefix(l, "VmFlags:"); ok && in {
			return strings.Fields(f), nil
		}
	}
	return nil, fmt.Errorf("no mapping at %#x in /proc/self/smaps", addr)
}

// adviceShows reports whether smaps shows the huge-page advice at all:
// it advises a mapping of its own and looks.
func adviceShows(t *testing.T) bool {
	b, err := unix.Mmap(-1, 0, 4<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	if err := unix.Madvise(b, unix.MADV_HUGEPAGE); err != nil {
		return false
	}
	flags, err := vmFlags(uintptr(unsafe.Pointer(&b[0])))
	return err == nil && slices.Contains(flags, "hg")
}
