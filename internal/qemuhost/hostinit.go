package qemuhost

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/tandem-hv/tandem/images/initramfs"
)

// scriptPath is where the caller's script lands in the host.
const scriptPath = "/etc/tandem/script.sh"

// hostInit is the host's /init, a busybox sh script. The %s verbs are, in
// order: the modules KVM needs before a vendor module (insmod lines), the
// vendor attempts, and the script path. It must never exit: the kernel
// panics when PID 1 does; it ends with a forced power-off instead.
const hostInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /run
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/ TMPDIR=/tmp
mount -t proc proc /proc
echo 1 >/proc/sys/kernel/sysrq
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
echo
echo "TANDEM-HOST booted uptime=$(cut -d' ' -f1 /proc/uptime)"
fail() { echo; echo "TANDEM-HOST fail $*"; echo "TANDEM-HOST exit=255"; poweroff -f; sleep 60; }
%s
kvm=
%s
[ -n "$kvm" ] || fail "no KVM vendor module loaded: the emulated CPU has neither svm nor vmx usable"
[ -c /dev/kvm ] || fail "$kvm loaded but /dev/kvm is missing"
echo "TANDEM-HOST kvm=$kvm"
# KVM's kvm_exit tracepoint for x86 guest shutdowns (SVM exit code 0x7f):
# it records where a triple-faulting vCPU was before KVM on AMD resets it
# (see /bin/kvm-shutdowns). Other exits are filtered out in the kernel.
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
t=/sys/kernel/tracing/events/kvm/kvm_exit
echo 'exit_reason == 127' 2>/dev/null >$t/filter && echo 1 >$t/enable
cd /
sh %s
status=$?
echo
echo "TANDEM-HOST exit=$status"
sync
poweroff -f
sleep 60
`

// buildInitramfs writes the host's initramfs to file: busybox, hostInit,
// the KVM modules, the script and the caller's files. It is not
// compressed: the emulated CPU would spend seconds inflating it.
func buildInitramfs(file string, a arch, art hostArtifacts, opt Options) error {
	ents := append(initramfs.Console(),
		initramfs.File("/bin/busybox", art.busybox, 0o755),
		initramfs.Bytes(scriptPath, []byte(opt.Script), 0o755),
	)
	var pre, vendors strings.Builder
	names := append([]string{}, a.kvmModules...)
	isVendor := map[string]vendorModule{}
	for _, v := range a.vendors {
		names = append(names, v.name)
		isVendor[v.name] = v
	}
	names = append(names, opt.Modules...)
	var order []string
	if len(names) > 0 {
		if art.modules == "" {
			return fmt.Errorf("modules %v asked for, but the %s host kernel has no module tree", opt.Modules, a.name)
		}
		mods, o, err := initramfs.Modules(art.modules, names, false)
		if err != nil {
			return err
		}
		ents = append(ents, mods...)
		order = o
	}
	dir := "/lib/modules/" + path.Base(art.modules)
	for _, p := range order {
		if _, ok := isVendor[initramfs.ModuleName(p)]; ok {
			continue
		}
		fmt.Fprintf(&pre, "insmod %s/%s || fail \"insmod %s\"\n", dir, p, initramfs.ModuleName(p))
	}
	if len(a.vendors) > 0 {
		for _, p := range order {
			v, ok := isVendor[initramfs.ModuleName(p)]
			if !ok {
				continue
			}
			fmt.Fprintf(&vendors, "if [ -z \"$kvm\" ] && grep -qw %s /proc/cpuinfo && insmod %s/%s %s; then kvm=%s; fi\n",
				v.cpuFlag, dir, p, v.params, v.name)
		}
	} else {
		// KVM is built into the kernel (arm64).
		vendors.WriteString("[ -c /dev/kvm ] && kvm=builtin\n")
	}
	ents = append(ents, initramfs.Bytes("/init", []byte(fmt.Sprintf(hostInit, pre.String(), vendors.String(), scriptPath)), 0o755),
		initramfs.Bytes("/bin/kvm-shutdowns", []byte(kvmShutdowns), 0o755))

	dsts := make([]string, 0, len(opt.Files))
	for dst := range opt.Files {
		dsts = append(dsts, dst)
	}
	sort.Strings(dsts)
	for _, dst := range dsts {
		ents = append(ents, initramfs.File(dst, opt.Files[dst], 0o755))
	}
	return initramfs.Write(file, ents, initramfs.Options{})
}

// kvmShutdowns prints one line for each guest shutdown (triple fault) the
// host's KVM traced since boot: the vCPU, its instruction pointer and the
// host kernel symbol at or below it (kernel text only: a guest's modules
// load elsewhere than the host's). The host boots with nokaslr, so a
// guest of the same kernel booted with nokaslr too has its kernel at the
// same addresses, and the host's /proc/kallsyms names where it was.
const kvmShutdowns = `#!/bin/sh
grep -h 'kvm_exit:.*reason' /sys/kernel/tracing/trace 2>/dev/null | while read -r line; do
	rip=$(echo "$line" | sed -n 's/.* rip 0x\([0-9a-f]*\).*/\1/p')
	vcpu=$(echo "$line" | sed -n 's/.*vcpu \([0-9]*\).*/\1/p')
	[ -n "$rip" ] || continue
	rip=$(printf '%016s' "$rip" | tr ' ' 0)
	case $rip in
	ffffffffc*|ffffffffd*|ffffffffe*|ffffffffff*) sym="(a module: not named)" ;;
	ffffffff*) sym=$(awk -v a="$rip" '$1 <= a && $1 > best { best = $1; name = $3 } END { print name }' /proc/kallsyms) ;;
	*) sym="(not kernel text)" ;;
	esac
	echo "KVM-SHUTDOWN vcpu=$vcpu rip=0x$rip sym=${sym:-?}"
done
`
