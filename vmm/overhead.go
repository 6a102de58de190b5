package vmm

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// MemoryUse is the VMM process's resident memory, split into what backs
// guest RAM and the rest: the VMM's own overhead.
type MemoryUse struct {
	RSS      uint64 // whole process, bytes
	GuestRSS uint64 // resident pages of guest RAM mappings, bytes
	// FileRSS is the part backed by files: the tandem binary's code and
	// data, shared with every other VMM on the host.
	FileRSS uint64
	// HeapInuse is the Go heap in use (runtime.MemStats).
	HeapInuse uint64
}

// ReleaseStartupPages returns what start-up left resident and the running
// guest does not use: the heap's garbage from parsing the configuration
// and building the guest (device tree, ACPI tables, the command line's
// machinery), collected and handed back to the kernel, and the pages of
// the tandem binary that start-up touched (every package's
// initialisation), unmapped; see releaseProgramPages. A VMM process calls
// it once the guest is built, just before Run. The collection runs first:
// it touches the runtime's own code and tables, which the unmapping then
// drops as well. Run releases the binary's pages once more a moment after
// the guest starts (releaseSetUpPages), for what it ran in between.
func ReleaseStartupPages() error {
	debug.FreeOSMemory()
	return releaseProgramPages()
}

// Overhead is the VMM's own resident memory: RSS minus guest RAM.
func (u MemoryUse) Overhead() uint64 { return u.RSS - u.GuestRSS }

// MemoryUse reads /proc/self/smaps and attributes each mapping's Rss to
// guest RAM or to the VMM.
func (vm *VM) MemoryUse() (MemoryUse, error) {
	guest := map[uint64]bool{}
	for _, r := range vm.mem.Regions() {
		guest[r.HostAddr()] = true
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return MemoryUse{}, err
	}
	defer f.Close()
	var u MemoryUse
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.HeapInuse = ms.HeapInuse
	inGuest, fileBacked := false, false
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if start, _, ok := strings.Cut(fields[0], "-"); ok && len(fields) >= 5 && !strings.HasSuffix(fields[0], ":") {
			a, err := strconv.ParseUint(start, 16, 64)
			inGuest = err == nil && guest[a]
			fileBacked = len(fields) >= 6 && strings.HasPrefix(fields[5], "/")
			continue
		}
		if fields[0] == "Rss:" && len(fields) >= 2 {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			if err != nil {
				return MemoryUse{}, fmt.Errorf("/proc/self/smaps: %q: %w", line, err)
			}
			u.RSS += kb << 10
			switch {
			case inGuest:
				u.GuestRSS += kb << 10
			case fileBacked:
				u.FileRSS += kb << 10
			}
		}
	}
	return u, s.Err()
}
