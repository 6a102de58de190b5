package system

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestNewPartition(t *testing.T) {
	control := &Guest{Name: "control", HostCPUs: []int{2, 3}}
	info := &Guest{Name: "infotainment"}
	tests := []struct {
		name         string
		allowed      []int
		guests       []*Guest
		housekeeping []int
		infoCores    []int
	}{
		{"no dedicated cores: nothing confined", []int{0, 1, 2, 3}, []*Guest{info}, nil, nil},
		{"dedicated cores leave the rest for housekeeping", []int{0, 1, 2, 3}, []*Guest{control, info}, []int{0, 1}, []int{0, 1}},
		{"cores outside the supervisor's mask are not used", []int{0, 2, 3}, []*Guest{control, info}, []int{0}, []int{0}},
		{"every allowed core dedicated: nothing confined", []int{2, 3}, []*Guest{control, info}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPartition(tt.allowed, &Manifest{Guests: tt.guests})
			if !slices.Equal(p.housekeeping, tt.housekeeping) {
				t.Errorf("housekeeping = %v, want %v", p.housekeeping, tt.housekeeping)
			}
			if got := p.cores(info); !slices.Equal(got, tt.infoCores) {
				t.Errorf("cores(infotainment) = %v, want %v", got, tt.infoCores)
			}
			// The control guest's VMM starts on the housekeeping cores
			// (its vCPU threads move to its host-cpus), unless none are
			// left over.
			wantControl := tt.housekeeping
			if len(wantControl) == 0 {
				wantControl = control.HostCPUs
			}
			if got := p.cores(control); !slices.Equal(got, wantControl) {
				t.Errorf("cores(control) = %v, want %v", got, wantControl)
			}
		})
	}
}

// TestStartOnInheritedMask starts real children on a chosen core and
// reads the mask the kernel gave them, and checks the parent's thread
// got its own mask back.
func TestStartOnInheritedMask(t *testing.T) {
	allowed, err := currentAffinity()
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, c := range allowed {
		cmd := exec.Command("sleep", "5")
		if err := startOn([]int{c}, cmd.Start); err != nil {
			t.Fatalf("startOn([%d]): %v", c, err)
		}
		status, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/status")
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			t.Fatal(err)
		}
		want := "Cpus_allowed_list:\t" + strconv.Itoa(c) + "\n"
		if !strings.Contains(string(status), want) {
			t.Errorf("child started on core %d: status has no %q", c, strings.TrimSpace(want))
		}
		after, err := currentAffinity()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(after, allowed) {
			t.Errorf("after startOn([%d]) the parent thread's cores are %v, want %v back", c, after, allowed)
		}
	}
}

func TestIsolationCmdline(t *testing.T) {
	tests := []struct {
		name   string
		guests []*Guest
		want   string
	}{
		{"no dedicated cores", []*Guest{{Name: "a"}}, ""},
		{"one core", []*Guest{{Name: "control", HostCPUs: []int{1}}, {Name: "b"}},
			"isolcpus=nohz,domain,managed_irq,1 nohz_full=1 rcu_nocbs=1 irqaffinity=0 preempt=full"},
		{"core 0 dedicated: no core known to be left for interrupts", []*Guest{{Name: "control", HostCPUs: []int{0}}},
			"isolcpus=nohz,domain,managed_irq,0 nohz_full=0 rcu_nocbs=0 preempt=full"},
		{"two guests, ranges", []*Guest{{Name: "a", HostCPUs: []int{3, 2}}, {Name: "b", HostCPUs: []int{5}}},
			"isolcpus=nohz,domain,managed_irq,2-3,5 nohz_full=2-3,5 rcu_nocbs=2-3,5 irqaffinity=0-1,4 preempt=full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&Manifest{Guests: tt.guests}).IsolationCmdline(); got != tt.want {
				t.Errorf("IsolationCmdline() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsolated(t *testing.T) {
	tests := []struct {
		name    string
		cmdline string
		cores   []int
		missing []int
	}{
		{"nothing isolated", "console=ttyS0 quiet", []int{1}, []int{1}},
		{"isolcpus with flags", "isolcpus=nohz,domain,managed_irq,1-2 quiet", []int{1, 2}, nil},
		{"plain isolcpus list", "isolcpus=2,3", []int{2, 3}, nil},
		{"nohz_full alone counts", "nohz_full=1", []int{1}, nil},
		{"one of two isolated", "isolcpus=domain,2", []int{2, 3}, []int{3}},
		{"what IsolationCmdline writes", (&Manifest{Guests: []*Guest{{HostCPUs: []int{1, 3}}}}).IsolationCmdline(), []int{1, 3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isolated(tt.cmdline, tt.cores); !slices.Equal(got, tt.missing) {
				t.Errorf("isolated(%q, %v) = %v, want %v", tt.cmdline, tt.cores, got, tt.missing)
			}
		})
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in   string
		want []int
		err  string
	}{
		{"0", []int{0}, ""},
		{"0-2,5", []int{0, 1, 2, 5}, ""},
		{"", nil, ""},
		{"a", nil, `"a" is not a number`},
		{"3-1", nil, `bad range "3-1"`},
	}
	for _, tt := range tests {
		got, err := parseCPUList(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseCPUList(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
