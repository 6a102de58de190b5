package qemuhost

import (
	"strings"
	"testing"
)

func TestHostCrashed(t *testing.T) {
	tests := []struct {
		name string
		res  *Result
		want bool
	}{
		{"host kernel panicked before reporting", &Result{ExitStatus: -1, Output: "[ 98.3] Kernel panic - not syncing: Fatal exception in interrupt\n"}, true},
		{"guest panicked, host reported", &Result{ExitStatus: 3, Output: "Kernel panic - not syncing: VFS\nTANDEM-HOST exit=3\n"}, false},
		{"host hung without a panic", &Result{ExitStatus: -1, Output: "[ 30.0] watchdog: BUG: soft lockup\n"}, false},
		{"host froze (console silent)", &Result{ExitStatus: -1, Output: "TANDEM-HOST booted\n", frozen: true}, true},
		{"silent, but the script reported", &Result{ExitStatus: 0, Output: "TANDEM-HOST exit=0\n", frozen: true}, false},
		{"no result", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hostCrashed(tt.res); got != tt.want {
				t.Errorf("hostCrashed() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPanicLines(t *testing.T) {
	oops := "[ 1.0] booted\n[ 9.1] TANDEM-HOST kvm=kvm_amd\n[ 98.1] BUG: kernel stack overflow\n[ 98.2] RIP: 0010:svm_vcpu_run\n[ 98.3] Kernel panic - not syncing: Fatal exception\n[ 98.4] ---[ end Kernel panic ]---\n"
	tests := []struct {
		name, out  string
		first, end string // the report's first and last lines
	}{
		{"from the BUG line to the panic line", oops, "BUG: kernel stack overflow", "Kernel panic - not syncing: Fatal exception"},
		{"no oops: the lines before the panic", "a\nb\nKernel panic - not syncing: VFS\nc\n", "a", "Kernel panic - not syncing: VFS"},
		{"a lockup: where, and the trace's reliable frames", "[ 50.0] watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [tandem:141]\n[ 50.0] Modules linked in: kvm_amd\n[ 50.0] RIP: 0010:smp_call_function_many_cond+0x12e/0x3a0\n[ 50.0] RSP: 0018:ffffb\n[ 50.0] Call Trace:\n[ 50.0]  <TASK>\n[ 50.0]  ? update_load_avg+0x7e/0x780\n[ 50.0]  on_each_cpu_cond_mask+0x1e/0x30\n[ 50.0] Kernel panic - not syncing: softlockup: hung tasks\n",
			"BUG: soft lockup", "softlockup: hung tasks"},
		{"a stack overflow: the oops header, one frame of the recursion", "[ 26.8] stack guard page: 0000 [#1] PREEMPT SMP NOPTI\n[ 26.8] RIP: 0010:exc_page_fault+0x0/0x170\n[ 26.8] Call Trace:\n" + strings.Repeat("[ 26.8]  asm_exc_page_fault+0x22/0x30\n[ 26.8] RIP: 0010:exc_page_fault+0x15/0x170\n", 40) + "[ 26.8] Kernel panic - not syncing: Fatal exception in interrupt\n",
			"stack guard page: 0000 [#1]", "Fatal exception in interrupt"},
		{"an arm64 oops", "[ 5.0] Unable to handle kernel paging request at virtual address 0\n[ 5.0] Internal error: Oops: 96000004 [#1] SMP\n[ 5.0] pc : kvm_vgic_sync+0x10/0x40\n[ 5.0] Call trace:\n[ 5.0]  kvm_vgic_sync+0x10/0x40\n[ 5.0] Kernel panic - not syncing: Oops: Fatal exception\n",
			"Internal error: Oops", "Oops: Fatal exception"},
		{"a long trace is cut after its first lines", "BUG: stack guard page was hit\n" + strings.Repeat("[ 86.5] ? trace\n", 50) + "Kernel panic - not syncing: corrupted stack end\n",
			"BUG: stack guard page was hit", "Kernel panic - not syncing: corrupted stack end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Split(panicLines(tt.out), "\n")
			if !strings.Contains(got[0], tt.first) || !strings.Contains(got[len(got)-1], tt.end) {
				t.Errorf("panicLines() = %q, want it from %q to %q", got, tt.first, tt.end)
			}
			if len(got) > reportLines+1 {
				t.Errorf("panicLines() gave %d lines, want at most %d", len(got), reportLines+1)
			}
			if strings.Contains(tt.out, "RIP:") && !strings.Contains(strings.Join(got, "\n"), "RIP: 0010:") {
				t.Errorf("panicLines() = %q, want the RIP line", got)
			}
			if strings.Contains(strings.Join(got, "\n"), " ? ") {
				t.Errorf("panicLines() = %q, want no unreliable (?) frames", got)
			}
		})
	}
}
