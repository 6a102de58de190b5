package sandbox

import (
	"os"

	"golang.org/x/sys/unix"
)

// GoRuntime are the system calls the Go runtime makes on every thread of
// a program that is running (its start-up is over): the scheduler and
// its threads, memory, signals, timers and the network poller. The Go
// sources (runtime/sys_linux_*.s, internal/runtime/syscall) list them;
// the VMM's runs under strace confirmed each (vmm/sandbox.go).
func GoRuntime() []Rule {
	self := []uint64{uint64(os.Getpid())}
	rules := []Rule{
		// Scheduling: locks and sleeping threads, yielding, sysmon's
		// naps, and the periodic GOMAXPROCS update, which reads the
		// CPU mask and re-reads the cgroup's CPU limit from the file
		// it opened at start-up.
		{Syscall: "futex"}, {Syscall: "sched_yield"}, {Syscall: "nanosleep"},
		{Syscall: "clock_gettime"}, {Syscall: "sched_getaffinity"},
		{Syscall: "pread64"}, {Syscall: "lseek"},
		// New threads (clone with CLONE_THREAD), never new processes;
		// a thread's end; the program's end.
		{Syscall: "clone", Arg: 0, Set: unix.CLONE_THREAD},
		{Syscall: "exit"}, {Syscall: "exit_group"},
		{Syscall: "gettid"}, {Syscall: "getpid"},
		// Memory: the heap and goroutine stacks, never executable; the
		// scavenger handing pages back.
		{Syscall: "mmap", Arg: 2, Clear: unix.PROT_EXEC},
		{Syscall: "munmap"}, {Syscall: "madvise"},
		// Signals: handlers (os/signal adds and removes them), masks,
		// the alternate stack of a new thread, the return from a
		// handler; preempting a goroutine (SIGURG to one of its own
		// threads) and raising a signal in its own process only.
		{Syscall: "rt_sigaction"}, {Syscall: "rt_sigprocmask"}, {Syscall: "rt_sigreturn"},
		{Syscall: "sigaltstack"}, {Syscall: "restart_syscall"},
		{Syscall: "tgkill", Arg: 0, Values: self},
		{Syscall: "kill", Arg: 0, Values: self},
		// The network poller, which every non-blocking descriptor
		// (sockets, TAPs, pipes) and every timer goes through.
		{Syscall: "epoll_pwait"}, {Syscall: "epoll_ctl"}, {Syscall: "epoll_create1"},
		{Syscall: "eventfd2"}, {Syscall: "pipe2"}, {Syscall: "fcntl"},
		// Descriptors, and what a crash or a panic prints.
		{Syscall: "read"}, {Syscall: "write"}, {Syscall: "close"},
		// crypto/rand and the runtime's own seeds.
		{Syscall: "getrandom"},
	}
	return append(rules, libcThreads...)
}
