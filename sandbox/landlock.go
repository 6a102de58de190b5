package sandbox

import (
	"errors"
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// restrictPaths allows the process only paths from now on, on every
// thread, with as much of Landlock as the kernel has (best effort: ABI 1
// limits reading, writing and running files; 2 renames and links; 3
// truncation; 4 TCP; 5 device ioctls on newly opened files; 6 abstract
// UNIX sockets and signals to other processes; 9 connecting to UNIX
// sockets). Files the process already has open keep the access they
// were opened with. It returns the ABI version enforced, 0 when the
// kernel has no Landlock.
func restrictPaths(paths []Path) (int, error) {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		return 0, nil
	}
	var rules []landlock.Rule
	for _, p := range paths {
		st, err := os.Stat(p.Path)
		if err != nil {
			return 0, fmt.Errorf("landlock: %w", err)
		}
		var r landlock.FSRule
		switch {
		case p.Connect:
			r = landlock.RWFiles(p.Path).WithResolveUnix()
		case st.IsDir() && p.Write:
			r = landlock.RWDirs(p.Path)
		case st.IsDir():
			r = landlock.RODirs(p.Path)
		case p.Write:
			r = landlock.RWFiles(p.Path)
		default:
			r = landlock.ROFiles(p.Path)
		}
		rules = append(rules, r)
	}
	if err := landlock.V11.BestEffort().Restrict(rules...); err != nil {
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
			return 0, nil
		}
		return 0, fmt.Errorf("landlock: %w", err)
	}
	return abi, nil
}
