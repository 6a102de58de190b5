package kvm

import (
	"fmt"
	"strconv"
	"strings"
)

// Kernel releases that bound KVM on 32-bit ARM hosts: 3.9 added it,
// 5.7 removed it (commit 541ad0150ca4, "arm: Remove 32bit KVM host
// support").
var (
	armv7KVMFirst   = [2]int{3, 9}
	armv7KVMRemoved = [2]int{5, 7}
)

// ARMv7HostCheck explains why an ARMv7 host running kernel release (as
// uname -r prints it) has no usable KVM, or returns nil if haveKVM
// (/dev/kvm exists). The message says what kernel would work.
func ARMv7HostCheck(release string, haveKVM bool) error {
	if haveKVM {
		return nil
	}
	v, ok := kernelVersion(release)
	switch {
	case !ok:
		return fmt.Errorf("this ARMv7 host's kernel %q has no %s: 32-bit ARM hosts have KVM only in Linux 3.9 to 5.6; boot a BSP kernel 5.6 or older (5.4 LTS) with CONFIG_KVM=y", release, DevicePath)
	case !versionLess(v, armv7KVMRemoved):
		return fmt.Errorf("this ARMv7 host's kernel %d.%d has no KVM: Linux 5.7 removed 32-bit ARM KVM hosts; boot a BSP kernel 5.6 or older (5.4 LTS) with CONFIG_KVM=y", v[0], v[1])
	case versionLess(v, armv7KVMFirst):
		return fmt.Errorf("this ARMv7 host's kernel %d.%d predates KVM on 32-bit ARM (Linux 3.9): boot a BSP kernel 3.9 to 5.6 (5.4 LTS) with CONFIG_KVM=y", v[0], v[1])
	}
	return fmt.Errorf("this ARMv7 host's kernel %d.%d has no %s: build it with CONFIG_KVM=y, and have the bootloader enter it in HYP mode (U-Boot: CONFIG_ARMV7_VIRT); dmesg then says \"kvm [1]: Hyp mode initialized successfully\"", v[0], v[1], DevicePath)
}

// kernelVersion reads major.minor from the start of a release string
// such as "5.4.0-1-armmp-lpae".
func kernelVersion(release string) ([2]int, bool) {
	f := strings.FieldsFunc(release, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '_' })
	if len(f) < 2 {
		return [2]int{}, false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return [2]int{}, false
	}
	return [2]int{major, minor}, true
}

func versionLess(a, b [2]int) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }
