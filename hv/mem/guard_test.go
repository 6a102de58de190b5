package mem

import (
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

var sink byte

// TestGuardPages: the page before and the page after every region fault
// when touched, so a stray access off the end of guest RAM cannot reach
// the host's other memory.
func TestGuardPages(t *testing.T) {
	page := unix.Getpagesize()
	m, err := New([]Range{{GPA: 0, Size: 4 * uint64(page)}, {GPA: 1 << 20, Size: uint64(page)}}, Options{})
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
