package qemuhost

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// TestProbeParsers checks what probeFrozen keeps of a real answer: an
// emulated x86 host with one CPU idle and one in a user-space busy loop
// (testdata/sysrq-l-console.txt: sysrq l's backtraces, then QEMU's
// monitor's info registers -a).
func TestProbeParsers(t *testing.T) {
	b, err := os.ReadFile("testdata/sysrq-l-console.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	tests := []struct {
		name  string
		parse func(string) []string
		want  []string
	}{
		{"kernel backtraces: headers, task, where, then frames after the RIP", kernelBacktraces, []string{
			"[    8.706043] sysrq: Show backtrace of all active CPUs",
			"[    8.706474] NMI backtrace for cpu 1",
			"[    8.706625] CPU: 1 PID: 0 Comm: swapper/1 Not tainted 6.1.0-50-cloud-amd64 #1  Debian 6.1.176-1",
			"[    8.709077] RIP: 0010:native_safe_halt+0xb/0x10",
			"[    8.709749]  amd_e400_idle+0x3d/0x50",
			"[    8.709749]  default_idle_call+0x38/0xf0",
			"[    8.709749]  do_idle+0x206/0x2b0",
			"[    8.709749]  cpu_startup_entry+0x26/0x30",
			"[    8.709749]  start_secondary+0x12a/0x150",
			"[    8.709749]  secondary_startup_64_no_verify+0xe4/0xeb",
			"[    8.713463] NMI backtrace for cpu 0",
			"[    8.714585] CPU: 0 PID: 99 Comm: sh Not tainted 6.1.0-50-cloud-amd64 #1  Debian 6.1.176-1",
			"[    8.714897] RIP: 0033:0x52c3d0",
		}},
		{"registers: each CPU and its RIP line", registerLines, []string{
			"CPU#0",
			"RIP=000000000052ed5d RFL=00000246 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0",
			"CPU#1",
			"RIP=ffffffffaea0dfeb RFL=00000246 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1",
		}},
		{"kernel backtraces of a silent kernel: none", func(string) []string { return kernelBacktraces("(qemu) ") }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.parse(out); !slices.Equal(got, tt.want) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestParseThreadStat checks the fields probeFrozen reads of a thread's
// /proc stat line, whose name may hold spaces and parentheses.
func TestParseThreadStat(t *testing.T) {
	tests := []struct {
		name, stat string
		want       threadTime
		ok         bool
	}{
		{"a vCPU thread, name with a space", "4242 (CPU 0/TCG) R 4200 4200 100 0 -1 4194368 1 0 0 0 731 12 0 0 20 0 4 0 100 1 1 18446744073709551615",
			threadTime{tid: 4242, name: "CPU 0/TCG", state: "R", ticks: 743}, true},
		{"a name with a parenthesis", "7 (a) b) S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 1 0 1 1 1 1",
			threadTime{tid: 7, name: "a) b", state: "S", ticks: 11}, true},
		{"cut short", "7 (x) S 1 1", threadTime{}, false},
		{"no name", "7 x S", threadTime{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tid := 7
			if tt.want.tid != 0 {
				tid = tt.want.tid
			}
			got, ok := parseThreadStat(tid, tt.stat)
			if ok != tt.ok || got != tt.want {
				t.Errorf("parseThreadStat(%q) = %+v, %v; want %+v, %v", tt.stat, got, ok, tt.want, tt.ok)
			}
		})
	}
}
