package system

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrivileges decides who each guest's VMM runs as: as the supervisor
// when that is not root; as root for passthrough, for vmm-user: root, and
// on a host without the default user (saying why); otherwise as the user,
// with the capabilities its features need, once it can open what the VMM
// opens. Files are the test's own, with modes set for the user.
func TestPrivileges(t *testing.T) {
	saved := struct {
		lookup func(string) (*user.User, error)
		super  func() bool
		kvm    string
	}{lookupUser, superuser, devKVM}
	t.Cleanup(func() { lookupUser, superuser, devKVM = saved.lookup, saved.super, saved.kvm })

	dir := t.TempDir()
	// The temporary directories are root's, 0700: let others in.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kernel := file("vmlinuz", 0o644)
	secret := file("secret-kernel", 0o600)
	disk := file("disk.img", 0o644) // readable by all, writable by root
	kvmOpen, kvmShut := file("kvm-open", 0o666), file("kvm-shut", 0o600)
	tandemUser := func(name string) (*user.User, error) {
		if name == "tandem" {
			return &user.User{Uid: "900", Gid: "900", Username: "tandem"}, nil
		}
		return nil, user.UnknownUserError(name)
	}
	noUsers := func(name string) (*user.User, error) { return nil, user.UnknownUserError(name) }

	tests := []struct {
		name   string
		top    string // manifest lines before guests:
		guest  string // the guest's extra lines
		root   bool   // the supervisor runs as root
		lookup func(string) (*user.User, error)
		kvm    string
		want   string // a part of Privileges.String, or of the error
		err    bool
	}{
		{name: "a supervisor that is not root", root: false, lookup: tandemUser, kvm: kvmOpen, want: "runs as "},
		{name: "no user tandem", root: true, lookup: noUsers, kvm: kvmOpen,
			want: "runs as root (this host has no user tandem: add one that can open /dev/kvm, or set vmm-user)"},
		{name: "vmm-user: root", top: "vmm-user: root\n", root: true, lookup: tandemUser, kvm: kvmOpen, want: "runs as root (vmm-user: root)"},
		{name: "passthrough", guest: "    passthrough: [{node: /pl031@9010000, interrupts: none}]\n", root: true, lookup: tandemUser, kvm: kvmOpen,
			want: "runs as root (passthrough: it maps the device's registers from /dev/mem"},
		{name: "the default user, no capabilities", root: true, lookup: tandemUser, kvm: kvmOpen,
			want: "runs as tandem (uid 900, gid 900), no capabilities; sandboxed once its VM is built"},
		{name: "capabilities for the features", guest: "    role: control\n    host-cpus: [1]\n    rt-priority: 10\n    lock-memory: true\n    nets: [{tap: tap0}]\n",
			root: true, lookup: tandemUser, kvm: kvmOpen,
			want: "runs as tandem (uid 900, gid 900), with CAP_NET_ADMIN (nets), CAP_SYS_NICE (rt-priority), CAP_IPC_LOCK (lock-memory);"},
		{name: "UID:GID", top: "vmm-user: 901:902\n", root: true, lookup: noUsers, kvm: kvmOpen, want: "runs as uid 901, gid 902, no capabilities"},
		{name: "uid 0 is no user", top: "vmm-user: 0:0\n", root: true, lookup: noUsers, kvm: kvmOpen, err: true,
			want: `system.yaml:1: vmm-user: "0:0": want a user name or UID:GID, with a UID other than 0`},
		{name: "a named user missing", top: "vmm-user: vmm\n", root: true, lookup: tandemUser, kvm: kvmOpen, err: true,
			want: `system.yaml:1: vmm-user: "vmm": no such user on this host`},
		{name: "a kernel the user cannot read", guest: "    initrd: " + secret + "\n", root: true, lookup: tandemUser, kvm: kvmOpen, err: true,
			want: `guest "g": initrd: ` + secret + `: the VMM runs as tandem (uid 900, gid 900) and cannot read ` + secret + ` (owner 0, group root, mode 0600): give it access`},
		{name: "a disk it cannot write", guest: "    disks: [{path: " + disk + "}]\n", root: true, lookup: tandemUser, kvm: kvmOpen, err: true,
			want: `disks[0].path: ` + disk + `: the VMM runs as tandem (uid 900, gid 900) and cannot read and write ` + disk},
		{name: "a read-only disk it can read", guest: "    disks: [{path: " + disk + ", readonly: true}]\n", root: true, lookup: tandemUser, kvm: kvmOpen,
			want: "runs as tandem (uid 900, gid 900)"},
		{name: "no access to /dev/kvm", root: true, lookup: tandemUser, kvm: kvmShut, err: true,
			want: "cannot read and write " + kvmShut + " (owner 0, group root, mode 0600): give its group access (for /dev/kvm: chgrp kvm /dev/kvm; chmod 660 /dev/kvm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookupUser, devKVM = tt.lookup, tt.kvm
			superuser = func() bool { return tt.root }
			man := filepath.Join(dir, "system.yaml")
			body := tt.top + fmt.Sprintf("guests:\n  - name: g\n    kernel: %s\n", kernel) + tt.guest
			if err := os.WriteFile(man, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := LoadManifest(man)
			if err != nil {
				t.Fatalf("LoadManifest() = %v", err)
			}
			p, err := m.Privileges(m.Guests[0])
			if tt.err {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("Privileges() = %v, %v; want an error containing %q", p, err, tt.want)
				}
				return
			}
			if err != nil || !strings.Contains(p.String(), tt.want) {
				t.Fatalf("Privileges() = %q, %v; want it to contain %q", p, err, tt.want)
			}
			if (p.Cred != nil) != strings.HasPrefix(tt.want, "runs as tandem") && (p.Cred != nil) != strings.HasPrefix(tt.want, "runs as uid") {
				t.Errorf("Privileges().Cred = %+v, want one only for a user of its own", p.Cred)
			}
		})
	}
}
