package vmm

import (
	"context"
	"io"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/hv/mem"
	"github.com/tandem-hv/tandem/internal/kvmtest"
	"github.com/tandem-hv/tandem/internal/tinyguest"
)

// lines passes each write on, as one line, to a channel.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	l <- string(p)
	return len(p), nil
}

// stackRegion is where TestDumpState's guests may keep a stack: the page
// after the tiny guest's 64 KiB.
const stackRegion = 0x10000

// pushAndSpin sets its stack in stackRegion, pushes two words and spins.
//
//	1000: b8 00 10  mov ax, 0x1000
//	1003: 8e d0     mov ss, ax      ; ss:0 = 0x10000
//	1005: bc 00 01  mov sp, 0x100
//	1008: 68 ef be  push 0xbeef
//	100b: 68 fe ca  push 0xcafe     ; ss:sp = 0x100fc
//	100e: eb fe     jmp $
var pushAndSpin = []byte{0xb8, 0x00, 0x10, 0x8e, 0xd0, 0xbc, 0x00, 0x01, 0x68, 0xef, 0xbe, 0x68, 0xfe, 0xca, 0xeb, 0xfe}

// TestDumpState runs tiny real-mode guests on KVM and asks them, twice,
// where they are: each answer must name the vCPU, its state, its exits
// and an instruction pointer inside the guest's loop, and the guest must
// go on running between and after the answers (the second answer counts
// the exits of the first kick, and the guest still stops when told).
func TestDumpState(t *testing.T) {
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	tests := []struct {
		name string
		code []byte
		// rips are the instruction pointers the loop can be at.
		rips []uint64
		// busy says the loop exits on its own, so exits grow by more
		// than the kicks between two answers.
		busy bool
		// stack is what the answer must say about the stack.
		stack string
	}{
		{"a guest spinning without exits (jmp $)", []byte{0xeb, 0xfe}, []uint64{0x1000}, false, "stack@0x0=[]"},
		{"a guest writing a port in a loop", tinyguest.Loop, []uint64{0x1000, 0x1001}, true, "stack@0x0=[]"},
		// Its stack is in a second RAM region the VM's memory maps:
		// the words it pushed are read back through it.
		{"a guest that pushed two words and spins", pushAndSpin, []uint64{0x100e}, false, "stack@0x100fc=[0xbeefcafe 0x0 0x0 0x0 0x0 0x0 0x0 0x0]"},
	}
	re := regexp.MustCompile(`^tandem: tiny: vCPU 0: state=runnable exits=(\d+) rip=(0x[0-9a-f]+) rsp=0x[0-9a-f]+ rflags=0x[0-9a-f]+ cpl=0 cr0=0x[0-9a-f]+ cr2=0x[0-9a-f]+ cr3=0x[0-9a-f]+ (stack.*)\n$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := tinyguest.New(tt.code)
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			// The VM's memory is the stack's region above the tiny
			// guest's own 64 KiB, in KVM's slot 1.
			m, err := mem.New([]mem.Range{{GPA: stackRegion, Size: 0x1000}}, mem.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := g.VM.SetUserMemoryRegion(1, stackRegion, m.Regions()[0].Host, false); err != nil {
				t.Fatal(err)
			}
			vm := &VM{cfg: Config{Name: "tiny", CPUs: 1}, arch: &x86Guest{}, vcpus: []*kvm.VCPU{g.CPU}, mem: m,
				warn: devices.NewRateLimited(nil, 0), tids: make([]atomic.Int32, 1), dumpTo: make([]atomic.Pointer[io.Writer], 1)}
			ran := make(chan error, 1)
			go func() { ran <- vm.Run(context.Background()) }()
			out := make(lines, 4)
			var exits []uint64
			for range 2 {
				time.Sleep(50 * time.Millisecond)
				vm.DumpState(out)
				var l string
				select {
				case l = <-out:
				case <-time.After(10 * time.Second):
					t.Fatalf("no answer to DumpState within 10s")
				}
				m := re.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("DumpState wrote %q, want it to match %s", l, re)
				}
				n, _ := strconv.ParseUint(m[1], 10, 64)
				rip, _ := strconv.ParseUint(m[2], 0, 64)
				exits = append(exits, n)
				if m[3] != tt.stack {
					t.Errorf("stack: %s, want %s", m[3], tt.stack)
				}
				if !slices.Contains(tt.rips, rip) {
					t.Errorf("rip = %#x, want one of %#x (the guest's loop)", rip, tt.rips)
				}
			}
			if exits[1] <= exits[0] {
				t.Errorf("exits went from %d to %d, want more: the first answer's kick is an exit", exits[0], exits[1])
			}
			if tt.busy && exits[1]-exits[0] < 100 {
				t.Errorf("exits went from %d to %d in 50ms, want the port writes counted: the guest did not go on after the first answer", exits[0], exits[1])
			}
			vm.Stop(ExitStopped, "test over")
			select {
			case err := <-ran:
				if ee, ok := err.(*ExitErr); !ok || ee.Exit != ExitStopped {
					t.Errorf("Run() = %v, want the stop", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the guest did not stop after its state was dumped")
			}
		})
	}
}

// TestShutdownState checks what a triple fault's end reason says of the
// vCPU: its registers when they are where it faulted, and that they are
// lost when KVM reset the vCPU at the shutdown (as it does on AMD, so a
// reset vector there does not pass for where the guest was).
func TestShutdownState(t *testing.T) {
	if !kvmtest.Here(t) {
		return // it ran in an emulated host
	}
	tests := []struct {
		name  string
		reset bool
		want  *regexp.Regexp
	}{
		{"a vCPU where it stopped", false, regexp.MustCompile(`^ at rip=0x1000 rsp=0x[0-9a-f]+ .* idt=0x[0-9a-f]+/0x[0-9a-f]+ gs=0x[0-9a-f]+$`)},
		{"a vCPU in its reset state", true, regexp.MustCompile(`^ \(its registers are lost: KVM reset the vCPU at the shutdown, as it does on AMD\)$`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := tinyguest.New([]byte{0xf4})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if tt.reset {
				r, err := g.CPU.GetRegs()
				if err != nil {
					t.Fatal(err)
				}
				sr, err := g.CPU.GetSregs()
				if err != nil {
					t.Fatal(err)
				}
				r.RIP = 0xfff0
				sr.CS.Selector, sr.CS.Base, sr.CR0 = 0xf000, 0xffff0000, 0x60000010
				if err := g.CPU.SetRegs(r); err != nil {
					t.Fatal(err)
				}
				if err := g.CPU.SetSregs(sr); err != nil {
					t.Fatal(err)
				}
			}
			if got := shutdownState(g.CPU); !tt.want.MatchString(got) {
				t.Errorf("shutdownState() = %q, want it to match %s", got, tt.want)
			}
		})
	}
}
