//go:build cgo

package sandbox

import "golang.org/x/sys/unix"

// libcThreads: a program linked with the C library (cgo; Tandem's own
// builds are static, its tests may not be) starts threads with glibc's
// pthread_create. That tries clone3 first, whose flags are in memory
// where a filter cannot read them: it is answered ENOSYS, and glibc
// falls back to clone, whose CLONE_THREAD the filter checks. The new
// thread registers its robust futex list and restartable sequences, and
// protects the guard page below its stack.
var libcThreads = []Rule{
	{Syscall: "clone3", Errno: unix.ENOSYS},
	{Syscall: "set_robust_list"}, {Syscall: "rseq"},
	{Syscall: "mprotect", Arg: 2, Clear: unix.PROT_EXEC},
}
