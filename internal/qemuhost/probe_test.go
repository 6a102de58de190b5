package qemuhost

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestProbeParsers checks what probeFrozen keeps of a real answer
// (testdata/probe-console.txt): an emulated x86 host with one CPU idle
// and one in a shell's busy loop, asked for sysrq 9, l and t, then
// QEMU's monitor's info registers -a. Each parser gets the part of the
// console the probe gives it.
func TestProbeParsers(t *testing.T) {
	b, err := os.ReadFile("testdata/probe-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	// Each part starts on the line its marker is on.
	at := func(marker string) int {
		i := strings.Index(out, marker)
		if i < 0 {
			return -1
		}
		return strings.LastIndexByte(out[:i], '\n') + 1
	}
	l, tasks, regs := at("sysrq: Show backtrace"), at("sysrq: Show State"), at("QEMU 7")
	if l < 0 || tasks < l || regs < tasks {
		t.Fatalf("testdata/probe-console.txt lacks the answers to sysrq l, sysrq t and the monitor, in that order")
	}
	tests := []struct {
		name  string
		parse func(string) []string
		in    string
		want  []string
	}{
		{"sysrq l: headers, the task, where each CPU is, its frames", kernelBacktraces, out[l:tasks], []string{
			"[   10.471724] sysrq: Show backtrace of all active CPUs",
			"[   10.472067] NMI backtrace for cpu 1",
			"[   10.472247] CPU: 1 PID: 98 Comm: sh Not tainted 6.1.0-50-cloud-amd64 #1  Debian 6.1.176-1",
			"[   10.475269] RIP: 0033:0x52ed5d",
			"[   10.477869] NMI backtrace for cpu 0 skipped: idling at native_safe_halt+0xb/0x10",
		}},
		{"sysrq t: user-space threads only, each with where it waits", taskStacks, out[tasks:regs], []string{
			"task:sh state:S stack:0 pid:97 ppid:1 flags:0x00000002",
			"  do_wait < kernel_wait4 < __do_sys_wait4",
			"task:sh state:R running task stack:0 pid:98 ppid:97 flags:0x00000000",
			"  sched_show_task.cold < show_state_filter < sysrq_handle_showstate < __handle_sysrq.cold < serial8250_handle_irq < serial8250_default_handle_irq < serial8250_interrupt < __handle_irq_event_percpu",
			"task:sleep state:S stack:0 pid:99 ppid:97 flags:0x00000002",
			"  do_nanosleep < hrtimer_nanosleep < common_nsleep < __x64_sys_clock_nanosleep",
		}},
		{"sysrq t: threads with one stack given once", taskStacks, strings.Repeat("[ 1.0] task:tandem state:S stack:0 pid:7 ppid:1 flags:0x0\n[ 1.0]  futex_wait+0x1/0x2\n", 3), []string{
			"task:tandem state:S stack:0 pid:7 ppid:1 flags:0x0 (and 2 more with this stack)",
			"  futex_wait",
		}},
		{"info registers: each CPU and its RIP line", registerLines, out[regs:], []string{
			"CPU#0",
			"RIP=ffffffff9c20dfeb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1",
			"CPU#1",
			"RIP=00000000005277a4 RFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0",
		}},
		{"a kernel that did not answer: nothing", kernelBacktraces, "(qemu) ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.parse(tt.in); !slices.Equal(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
