package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// dropCapabilities empties the effective, permitted and inheritable
// capability sets of every thread (capset(2) acts on the calling thread
// only, so it runs on all of them at once through psx); the ambient set,
// which cannot hold what is not permitted, empties with them. A process
// that had none is left as it was.
func dropCapabilities() error {
	// struct __user_cap_header_struct and two __user_cap_data_struct
	// (include/uapi/linux/capability.h, _LINUX_CAPABILITY_VERSION_3),
	// on the heap, where they do not move while the threads read them.
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := new([2]unix.CapUserData)
	_, _, e := psx.Syscall3(unix.SYS_CAPSET, uintptr(unsafe.Pointer(hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	runtime.KeepAlive(hdr)
	runtime.KeepAlive(data)
	if e != 0 {
		return fmt.Errorf("dropping capabilities: %w", e)
	}
	return nil
}

// setNoNewPrivs sets no_new_privs on every thread; the seccomp filter
// and Landlock set it too, each when it goes up.
func setNoNewPrivs() error {
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return fmt.Errorf("setting no_new_privs: %w", e)
	}
	return nil
}
