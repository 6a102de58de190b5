package system

// Who each VMM runs as. The supervisor runs as root on a board (it is
// init's child); its VMMs do not need to: a VMM needs /dev/kvm, its
// guest's files and a few capabilities while it builds its VM, and
// nothing of root's once it runs (its sandbox drops every capability:
// vmm/sandbox.go). So where the host has a user for them (the manifest's
// vmm-user, by default the user "tandem"), each VMM starts as that user,
// with its groups (kvm, disk) and, as ambient capabilities, only what its
// guest's features need:
//
//	CAP_NET_ADMIN  nets: attaching to a TAP (TUNSETIFF) it does not own
//	CAP_SYS_NICE   rt-priority: SCHED_FIFO for its vCPU threads
//	CAP_IPC_LOCK   lock-memory: locking guest RAM beyond RLIMIT_MEMLOCK
//
// A guest with passthrough keeps root: its VMM maps the device's
// registers from /dev/mem and hands the device back to its host driver
// through sysfs when it ends. A host without the user runs every VMM as
// root, and says so; so does a supervisor that is not root, whose VMMs
// run as itself. `tandem system --check` prints each guest's line.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// DefaultVMMUser is the user VMMs run as when the manifest names none.
const DefaultVMMUser = "tandem"

// Capability is one capability a VMM starts with, and why.
type Capability struct {
	Name  string
	Value uintptr // CAP_* (include/uapi/linux/capability.h)
	Why   string  // the manifest field that needs it
}

// Privileges are what one guest's VMM starts with.
type Privileges struct {
	// Cred is the user and groups it runs as; nil: as the supervisor.
	Cred *syscall.Credential
	// User names them for people: "tandem (uid 900, gid 900)", "root".
	User string
	// Caps are its ambient capabilities (with Cred only).
	Caps []Capability
	// Root says why it runs as root ("" when it does not).
	Root string
}

// String is the guest's line of `tandem system --check`.
func (p Privileges) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "runs as %s", p.User)
	if p.Root != "" {
		fmt.Fprintf(&b, " (%s)", p.Root)
	}
	if p.Cred != nil {
		if len(p.Caps) == 0 {
			b.WriteString(", no capabilities")
		}
		for i, c := range p.Caps {
			sep := ", with "
			if i > 0 {
				sep = ", "
			}
			fmt.Fprintf(&b, "%s%s (%s)", sep, c.Name, c.Why)
		}
	}
	b.WriteString("; sandboxed once its VM is built: seccomp filter, Landlock, limits, no capabilities")
	return b.String()
}

// The host's users, the supervisor's own rights and KVM's device; tests
// replace them.
var (
	lookupUser  = user.Lookup
	lookupGroup = user.LookupGroupId
	superuser   = func() bool { return os.Geteuid() == 0 }
	devKVM      = "/dev/kvm" // hv/kvm.DevicePath, which the VMM opens
)

// Privileges says who g's VMM runs as, and checks that this user can
// open what the VMM opens: /dev/kvm, the manifest (the VMM reads it), the
// guest's kernel, initrd and disks, the TUN device. An error names the
// field and the fix.
func (m *Manifest) Privileges(g *Guest) (Privileges, error) {
	switch {
	case !superuser():
		u, err := user.Current()
		name := strconv.Itoa(os.Geteuid())
		if err == nil {
			name = u.Username
		}
		return Privileges{User: name, Root: ""}, nil
	case len(g.Passthrough) > 0:
		return Privileges{User: "root", Root: "passthrough: it maps the device's registers from /dev/mem and gives the device back to its host driver through sysfs"}, nil
	case m.VMMUser == "root":
		return Privileges{User: "root", Root: "vmm-user: root"}, nil
	}
	cred, name, err := m.vmmUser()
	if errors.Is(err, errNoDefaultUser) {
		return Privileges{User: "root", Root: noUserReason}, nil
	}
	if err != nil {
		return Privileges{}, err
	}
	p := Privileges{Cred: cred, User: name}
	if len(g.Nets) > 0 {
		p.Caps = append(p.Caps, Capability{"CAP_NET_ADMIN", unix.CAP_NET_ADMIN, "nets"})
	}
	if g.RTPriority > 0 {
		p.Caps = append(p.Caps, Capability{"CAP_SYS_NICE", unix.CAP_SYS_NICE, "rt-priority"})
	}
	if g.LockMemory {
		p.Caps = append(p.Caps, Capability{"CAP_IPC_LOCK", unix.CAP_IPC_LOCK, "lock-memory"})
	}
	return p, m.checkAccess(g, cred, name)
}

// errNoDefaultUser: the manifest names no vmm-user and the host has no
// DefaultVMMUser.
var errNoDefaultUser = errors.New("no default VMM user")

// noUserReason is why VMMs run as root on a host without DefaultVMMUser.
var noUserReason = fmt.Sprintf("this host has no user %s: add one that can open %s, or set vmm-user", DefaultVMMUser, devKVM)

// vmmUser resolves vmm-user: a user name, or UID:GID.
func (m *Manifest) vmmUser() (*syscall.Credential, string, error) {
	spec := m.VMMUser
	if uid, gid, ok := strings.Cut(spec, ":"); ok {
		u, err1 := strconv.ParseUint(uid, 10, 32)
		g, err2 := strconv.ParseUint(gid, 10, 32)
		if err1 != nil || err2 != nil || u == 0 {
			return nil, "", m.errorf("vmm-user", "", "%q: want a user name or UID:GID, with a UID other than 0 (vmm-user: root runs VMMs as root)", spec)
		}
		return &syscall.Credential{Uid: uint32(u), Gid: uint32(g), Groups: []uint32{uint32(g)}}, fmt.Sprintf("uid %d, gid %d", u, g), nil
	}
	name := spec
	if name == "" {
		name = DefaultVMMUser
	}
	u, err := lookupUser(name)
	if err != nil {
		if spec == "" {
			return nil, "", errNoDefaultUser
		}
		return nil, "", m.errorf("vmm-user", "", "%q: no such user on this host (%v): create it, with access to %s, or write UID:GID", spec, err, devKVM)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, "", m.errorf("vmm-user", "", "user %s: uid %q, gid %q: not numbers", name, u.Uid, u.Gid)
	}
	if uid == 0 {
		return nil, "", m.errorf("vmm-user", "", "user %s has uid 0: that is root; name a user of its own, or write vmm-user: root", name)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, s := range ids {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil {
			cred.Groups = append(cred.Groups, uint32(g))
		}
	}
	return cred, fmt.Sprintf("%s (uid %d, gid %d)", name, uid, gid), nil
}

// checkAccess checks that cred can open what g's VMM opens before its
// sandbox goes up.
func (m *Manifest) checkAccess(g *Guest, cred *syscall.Credential, who string) error {
	type want struct {
		field, path string
		write       bool
	}
	ws := []want{{"kernel", g.Kernel, false}, {"initrd", g.Initrd, false}, {"firmware", g.Firmware, false}}
	for j, d := range g.Disks {
		p, err := g.resolveDisk(j, d)
		if err != nil {
			return err
		}
		ws = append(ws, want{g.field(fmt.Sprintf("disks[%d]", j)), p, !d.ReadOnly})
	}
	for _, w := range ws {
		if w.path == "" {
			continue
		}
		if err := canOpen(w.path, cred, w.write); err != nil {
			return g.errorf(w.field, "%s: the VMM runs as %s and %v: give it access (chgrp/chmod), or set vmm-user", w.path, who, err)
		}
	}
	devs := []want{{"", devKVM, true}}
	if len(g.Nets) > 0 {
		devs = append(devs, want{"nets", "/dev/net/tun", true})
	}
	for _, d := range devs {
		if err := canOpen(d.path, cred, true); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return m.errorf("vmm-user", g.Name, "the VMM runs as %s and %v: give its group access (for /dev/kvm: chgrp kvm /dev/kvm; chmod 660 /dev/kvm, and the user in group kvm)", who, err)
		}
	}
	if err := canOpen(m.Path, cred, false); err != nil {
		return m.errorf("vmm-user", "", "the VMMs run as %s, read this manifest, and %v", who, err)
	}
	return nil
}

// canOpen says why cred could not open path (for writing too, with
// write), by the permission bits of the file and the search bits of each
// directory above it, as the kernel checks them for a process without
// capabilities; ACLs aside.
func canOpen(path string, cred *syscall.Credential, write bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		if err := allowed(dir, cred, 1); err != nil {
			return err
		}
		if dir == "/" {
			break
		}
	}
	want := uint32(4)
	if write {
		want |= 2
	}
	return allowed(real, cred, want)
}

// allowed checks the rwx bits want (4 read, 2 write, 1 search) of path
// for cred: the owner's bits for its owner, the group's for its groups,
// the others' for the rest.
func allowed(path string, cred *syscall.Credential, want uint32) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	var bits uint32
	switch {
	case st.Uid == cred.Uid:
		bits = st.Mode >> 6
	case st.Gid == cred.Gid || containsGID(cred.Groups, st.Gid):
		bits = st.Mode >> 3
	default:
		bits = st.Mode
	}
	if bits&want == want {
		return nil
	}
	what := map[uint32]string{1: "cannot enter", 4: "cannot read", 6: "cannot read and write"}[want]
	return fmt.Errorf("%s %s (owner %d, group %s, mode %04o)", what, path, st.Uid, groupName(st.Gid), st.Mode&0o7777)
}

func containsGID(gs []uint32, g uint32) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

// groupName is a group's name, or its number.
func groupName(gid uint32) string {
	if g, err := lookupGroup(strconv.FormatUint(uint64(gid), 10)); err == nil {
		return g.Name
	}
	return strconv.FormatUint(uint64(gid), 10)
}
