// Package sandbox confines a process once it has done its setup: the
// system calls it may still make (a seccomp filter, default deny, on all
// its threads), the files it may still open (Landlock), its resource
// limits, and its privileges (every capability dropped, no_new_privs).
// What the process needs is the caller's to say, in a Policy; a VMM
// applies one once its guest is built and before the guest runs
// (vmm/sandbox.go).
//
// A system call outside the filter fails with EPERM instead of killing
// the process: a guest whose VMM took an unforeseen path keeps running,
// and the VMM reports the error. The filter is loaded with
// SECCOMP_FILTER_FLAG_LOG, so the kernel logs every refusal (an audit
// record, type=1326 SECCOMP, with the system call's number) where an
// administrator looks.
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"golang.org/x/sys/unix"
)

// Policy is what a sandboxed process may still do.
type Policy struct {
	// Syscalls are the system calls it may make. Nil leaves seccomp off
	// (a host architecture whose list was never measured): Apply says
	// so in its Report.
	Syscalls []Rule
	// Paths are the files and directories it may still open; every
	// other path is refused (where the kernel has Landlock).
	Paths []Path
	// Limits are its resource limits, set first.
	Limits []Limit
}

// Rule allows one system call, by the kernel's name for it on this host
// architecture. Without Values, Set or Clear it is allowed with any
// arguments; otherwise argument Arg (0-5) must be one of Values, or have
// bit Set set, or have none of the bits of Clear.
//
// With Errno the call is not run but fails with it: some callers fall
// back to another call on ENOSYS.
type Rule struct {
	Syscall string
	Arg     int
	Values  []uint64
	Set     uint64 // a single bit
	Clear   uint64
	Errno   unix.Errno
}

// conditional reports whether r looks at an argument.
func (r Rule) conditional() bool { return len(r.Values) > 0 || r.Set != 0 || r.Clear != 0 }

// Path is a file or directory the process may open: for reading, or for
// reading and writing, or a UNIX socket it may connect to.
type Path struct {
	Path    string
	Write   bool
	Connect bool
}

// Limit is one resource limit (setrlimit(2)): its soft and hard values
// both become Value, or stay lower where they already are.
type Limit struct {
	Resource int    // unix.RLIMIT_*
	Name     string // for messages: "open files"
	Value    uint64
}

// Report says what Apply put in place, and what the host could not give.
type Report struct {
	// Syscalls is how many system calls the filter allows; 0 when
	// seccomp is off.
	Syscalls int
	// LandlockABI is the Landlock ABI version the kernel enforces; 0
	// when it has none (see Missing).
	LandlockABI int
	// Missing lists what this host could not give, each with why.
	Missing []string
}

// Apply confines the calling process, every thread of it, now and for
// good: limits, then Landlock (which sets no_new_privs), then every
// capability dropped, then the seccomp filter, which must come last as
// the others are system calls it refuses. An error means the process is
// partly confined and should exit.
func Apply(p Policy) (Report, error) {
	var r Report
	if err := SetLimits(p.Limits); err != nil {
		return r, err
	}
	abi, err := restrictPaths(p.Paths)
	if err != nil {
		return r, err
	}
	r.LandlockABI = abi
	if abi == 0 {
		r.Missing = append(r.Missing, "Landlock (the kernel has none, or it is not in its lsm= list): files are limited by their permissions only")
	}
	if err := dropCapabilities(); err != nil {
		return r, err
	}
	if p.Syscalls == nil {
		r.Missing = append(r.Missing, "seccomp (no system-call list for this host architecture)")
		return r, setNoNewPrivs()
	}
	f, err := Filter(p.Syscalls)
	if err != nil {
		return r, err
	}
	if err := seccomp.LoadFilter(f); err != nil {
		return r, fmt.Errorf("loading the seccomp filter: %w", err)
	}
	r.Syscalls = len(merge(p.Syscalls))
	return r, nil
}

// Supported reports whether the kernel takes seccomp filters.
func Supported() bool { return seccomp.Supported() }

// Filter is the seccomp filter for rules: every thread (TSYNC), no new
// privileges, every refusal logged by the kernel, EPERM for what the
// rules do not allow.
func Filter(rules []Rule) (seccomp.Filter, error) {
	group := seccomp.SyscallGroup{Action: seccomp.ActionAllow}
	var errnos []seccomp.SyscallGroup
	for _, r := range merge(rules) {
		if r.Arg < 0 || r.Arg > 5 {
			return seccomp.Filter{}, fmt.Errorf("seccomp rule for %s: argument %d: want 0 to 5", r.Syscall, r.Arg)
		}
		if r.Errno != 0 {
			if r.conditional() {
				return seccomp.Filter{}, fmt.Errorf("seccomp rule for %s: an errno answer takes no argument conditions", r.Syscall)
			}
			// The library adds EPERM to a bare ActionErrno only.
			errnos = append(errnos, seccomp.SyscallGroup{Action: seccomp.ActionErrno | seccomp.Action(r.Errno), Names: []string{r.Syscall}})
			continue
		}
		if !r.conditional() {
			group.Names = append(group.Names, r.Syscall)
			continue
		}
		arg := uint32(r.Arg)
		for _, v := range r.Values {
			group.NamesWithCondtions = append(group.NamesWithCondtions, seccomp.NameWithConditions{Name: r.Syscall,
				Conditions: seccomp.ArgumentConditions{{Argument: arg, Operation: seccomp.Equal, Value: v}}})
		}
		var bits seccomp.ArgumentConditions
		if r.Set != 0 {
			if r.Set&(r.Set-1) != 0 {
				return seccomp.Filter{}, fmt.Errorf("seccomp rule for %s: Set %#x: want a single bit", r.Syscall, r.Set)
			}
			bits = append(bits, seccomp.Condition{Argument: arg, Operation: seccomp.BitsSet, Value: r.Set})
		}
		if r.Clear != 0 {
			bits = append(bits, seccomp.Condition{Argument: arg, Operation: seccomp.BitsNotSet, Value: r.Clear})
		}
		if len(bits) > 0 {
			group.NamesWithCondtions = append(group.NamesWithCondtions, seccomp.NameWithConditions{Name: r.Syscall, Conditions: bits})
		}
	}
	f := seccomp.Filter{
		NoNewPrivs: true,
		Flag:       seccomp.FilterFlagTSync | seccomp.FilterFlagLog,
		Policy: seccomp.Policy{
			DefaultAction: seccomp.ActionErrno, // EPERM
			Syscalls:      append([]seccomp.SyscallGroup{group}, errnos...),
		},
	}
	if _, err := f.Policy.Assemble(); err != nil {
		return seccomp.Filter{}, fmt.Errorf("seccomp filter: %w", err)
	}
	return f, nil
}

// merge makes one rule per system call, sorted by name: the rules of
// several thread kinds name the same calls. A call allowed with any
// arguments by one rule is allowed so; Values add up. Set and Clear stay
// with the first rule that has them: two different bit conditions on one
// call would be a policy to write out by hand.
func merge(rules []Rule) []Rule {
	by := map[string]*Rule{}
	for _, r := range rules {
		m, ok := by[r.Syscall]
		if !ok {
			c := r
			c.Values = append([]uint64(nil), r.Values...)
			by[r.Syscall] = &c
			continue
		}
		switch {
		case m.Errno != 0 || r.Errno != 0:
			// An answer instead of the call: the first rule says which.
		case !m.conditional():
		case !r.conditional():
			*m = Rule{Syscall: r.Syscall}
		default:
			for _, v := range r.Values {
				if !contains(m.Values, v) {
					m.Values = append(m.Values, v)
				}
			}
			if m.Set == 0 {
				m.Set = r.Set
			}
			if m.Clear == 0 {
				m.Clear = r.Clear
			}
		}
	}
	out := make([]Rule, 0, len(by))
	for _, r := range by {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Syscall < out[j].Syscall })
	return out
}

func contains(vs []uint64, v uint64) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// SetLimits lowers each limit to its Value; a limit already lower stays.
// Apply sets the policy's; a process may set some sooner.
func SetLimits(ls []Limit) error {
	for _, l := range ls {
		var cur unix.Rlimit
		if err := unix.Getrlimit(l.Resource, &cur); err != nil {
			return fmt.Errorf("reading the limit on %s: %w", l.Name, err)
		}
		v := min(l.Value, cur.Max)
		if err := unix.Setrlimit(l.Resource, &unix.Rlimit{Cur: v, Max: v}); err != nil {
			return fmt.Errorf("limiting %s to %d: %w", l.Name, v, err)
		}
	}
	return nil
}

// String is the report in one line.
func (r Report) String() string {
	var parts []string
	if r.Syscalls > 0 {
		parts = append(parts, fmt.Sprintf("seccomp filter (%d system calls, others EPERM and logged)", r.Syscalls))
	}
	if r.LandlockABI > 0 {
		parts = append(parts, fmt.Sprintf("Landlock ABI %d", r.LandlockABI))
	}
	parts = append(parts, "no_new_privs", "no capabilities")
	s := strings.Join(parts, ", ")
	if len(r.Missing) > 0 {
		s += "; without " + strings.Join(r.Missing, "; without ")
	}
	return s
}

// Explain adds to an error that may come from the sandbox (EPERM or
// EACCES once it is up) where to look: the kernel's log names a refused
// system call, and --no-sandbox tells the sandbox's refusals from
// others.
func Explain(err error) error {
	if err == nil || !(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
		return err
	}
	return fmt.Errorf("%w (perhaps refused by the VMM's sandbox: the kernel log has an audit type=1326 record naming the system call, or a Landlock denial; to tell, run once with --no-sandbox)", err)
}

// Status is the sandbox as /proc/PID/status shows it for pid: the
// Seccomp, Seccomp_filters, NoNewPrivs and CapEff lines, by name.
func Status(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		switch k {
		case "Seccomp", "Seccomp_filters", "NoNewPrivs", "CapEff", "CapPrm", "Uid", "Gid":
			if ok {
				out[k] = strings.Join(strings.Fields(v), " ")
			}
		}
	}
	return out, nil
}
