package vmm

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tandem-hv/tandem/hv/bus"
	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/kvm"
)

// madeUpExit is an exit as KVM would report it, for dispatch.
type madeUpExit struct {
	io       kvm.IOExit
	mmio     kvm.MMIOExit
	event    uint32
	internal uint32
}

func (m *madeUpExit) IO() (kvm.IOExit, error)           { return m.io, nil }
func (m *madeUpExit) MMIO() kvm.MMIOExit                { return m.mmio }
func (m *madeUpExit) SystemEvent() (uint32, []uint64)   { return m.event, nil }
func (m *madeUpExit) InternalError() (uint32, []uint64) { return m.internal, nil }
func (m *madeUpExit) FailEntry() uint64                 { return 0x21 }

// recorder is a bus device that remembers accesses and answers reads.
type recorder struct {
	writes []string
	answer byte
}

func (r *recorder) Read(off uint64, data []byte) {
	for i := range data {
		data[i] = r.answer
	}
}
func (r *recorder) Write(off uint64, data []byte) {
	r.writes = append(r.writes, string(rune('0'+off))+":"+string(data))
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name       string
		reason     uint32
		exit       madeUpExit
		wantStop   bool
		wantExit   Exit
		wantWrites []string
		wantData   []byte // the exit's data buffer after dispatch
		wantWarn   string
	}{
		{name: "port write to device", reason: kvm.ExitIO,
			exit:       madeUpExit{io: kvm.IOExit{Out: true, Port: 0x101, Size: 1, Count: 1, Data: []byte("a")}},
			wantWrites: []string{"1:a"}, wantData: []byte("a")},
		{name: "string port write is split into elements", reason: kvm.ExitIO,
			exit:       madeUpExit{io: kvm.IOExit{Out: true, Port: 0x100, Size: 2, Count: 2, Data: []byte("abcd")}},
			wantWrites: []string{"0:ab", "0:cd"}, wantData: []byte("abcd")},
		{name: "port read from device", reason: kvm.ExitIO,
			exit:     madeUpExit{io: kvm.IOExit{Port: 0x100, Size: 1, Count: 1, Data: []byte{0}}},
			wantData: []byte{0x7e}},
		{name: "port read from nothing floats high", reason: kvm.ExitIO,
			exit:     madeUpExit{io: kvm.IOExit{Port: 0xcfc, Size: 4, Count: 1, Data: make([]byte, 4)}},
			wantData: []byte{0xff, 0xff, 0xff, 0xff}},
		{name: "port write to nothing is dropped quietly", reason: kvm.ExitIO,
			exit:     madeUpExit{io: kvm.IOExit{Out: true, Port: 0x80, Size: 1, Count: 1, Data: []byte{1}}},
			wantData: []byte{1}},
		{name: "MMIO write to device", reason: kvm.ExitMMIO,
			exit:       madeUpExit{mmio: kvm.MMIOExit{Addr: 0x1002, IsWrite: true, Data: []byte("z")}},
			wantWrites: []string{"2:z"}, wantData: []byte("z")},
		{name: "MMIO read from nothing reads zeros", reason: kvm.ExitMMIO,
			exit:     madeUpExit{mmio: kvm.MMIOExit{Addr: 0x9000, Data: []byte{5, 5}}},
			wantData: []byte{0, 0}, wantWarn: "MMIO read 0x9000"},
		{name: "signal", reason: kvm.ExitIntr},
		{name: "PSCI or ACPI power-off", reason: kvm.ExitSystemEvent, exit: madeUpExit{event: kvm.SystemEventShutdown}, wantStop: true, wantExit: ExitPowerOff},
		{name: "reset event", reason: kvm.ExitSystemEvent, exit: madeUpExit{event: kvm.SystemEventReset}, wantStop: true, wantExit: ExitReset},
		{name: "crash event", reason: kvm.ExitSystemEvent, exit: madeUpExit{event: kvm.SystemEventCrash}, wantStop: true, wantExit: ExitCrash},
		{name: "triple fault resets", reason: kvm.ExitShutdown, wantStop: true, wantExit: ExitReset},
		{name: "internal error is a crash", reason: kvm.ExitInternalError, exit: madeUpExit{internal: 1}, wantStop: true, wantExit: ExitCrash},
		{name: "failed entry is a crash", reason: kvm.ExitFailEntry, wantStop: true, wantExit: ExitCrash},
		{name: "unknown exit is a crash", reason: 999, wantStop: true, wantExit: ExitCrash},
		{name: "MMIO without a valid syndrome is a crash", reason: kvm.ExitARMNISV, wantStop: true, wantExit: ExitCrash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pio, mmio bus.Bus
			dev := &recorder{answer: 0x7e}
			if err := pio.Insert(dev, 0x100, 8); err != nil {
				t.Fatal(err)
			}
			if err := mmio.Insert(dev, 0x1000, 0x100); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			out, err := dispatch(tt.reason, &tt.exit, &pio, &mmio, devices.NewRateLimited(&log, 10))
			if err != nil {
				t.Fatalf("dispatch() error = %v", err)
			}
			if out.stop != tt.wantStop || (tt.wantStop && out.exit != tt.wantExit) {
				t.Errorf("dispatch() = %+v, want stop=%v exit=%v", out, tt.wantStop, tt.wantExit)
			}
			if strings.Join(dev.writes, ",") != strings.Join(tt.wantWrites, ",") {
				t.Errorf("device writes = %q, want %q", dev.writes, tt.wantWrites)
			}
			var data []byte
			if tt.reason == kvm.ExitIO {
				data = tt.exit.io.Data
			} else if tt.reason == kvm.ExitMMIO {
				data = tt.exit.mmio.Data
			}
			if tt.wantData != nil && !bytes.Equal(data, tt.wantData) {
				t.Errorf("exit data = %x, want %x", data, tt.wantData)
			}
			if !strings.Contains(log.String(), tt.wantWarn) || (tt.wantWarn == "" && log.Len() > 0) {
				t.Errorf("warnings = %q, want %q", log.String(), tt.wantWarn)
			}
		})
	}
}

func TestDetectKernel(t *testing.T) {
	mk := func(off int, magic []byte) []byte {
		b := make([]byte, kernelProbeLen)
		copy(b[off:], magic)
		return b
	}
	// elfHead is the identification and e_machine of a little-endian
	// ELF file of the class and machine given.
	elfHead := func(class elf.Class, m elf.Machine) []byte {
		b := mk(0, []byte{0x7f, 'E', 'L', 'F', byte(class), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)})
		binary.LittleEndian.PutUint16(b[18:], uint16(m))
		return b
	}
	tests := []struct {
		name string
		head []byte
		want kernelFile
		err  string // in the error, "" for none
	}{
		{"bzImage", mk(bzMagicOff, []byte("HdrS")), kernelFile{ArchX86_64, formatBzImage}, ""},
		{"arm64 Image", mk(arm64MagicOff, []byte("ARM\x64")), kernelFile{ArchARM64, formatImage}, ""},
		{"zImage", mk(zMagicOff, []byte{0x18, 0x28, 0x6f, 0x01}), kernelFile{ArchAArch32, formatZImage}, ""},
		{"x86_64 ELF", elfHead(elf.ELFCLASS64, elf.EM_X86_64), kernelFile{ArchX86_64, formatELF}, ""},
		{"arm64 ELF", elfHead(elf.ELFCLASS64, elf.EM_AARCH64), kernelFile{ArchARM64, formatELF}, ""},
		{"32-bit ARM ELF", elfHead(elf.ELFCLASS32, elf.EM_ARM), kernelFile{ArchAArch32, formatELF}, ""},
		{"RISC-V ELF", elfHead(elf.ELFCLASS64, elf.EM_RISCV), kernelFile{}, "e_machine is EM_RISCV"},
		{"32-bit x86 ELF", elfHead(elf.ELFCLASS32, elf.EM_386), kernelFile{}, "e_machine is EM_386"},
		{"arm64 machine in a 32-bit ELF", elfHead(elf.ELFCLASS32, elf.EM_AARCH64), kernelFile{}, "e_ident[EI_CLASS] is ELFCLASS32"},
		{"ELF magic alone", mk(0, []byte("\x7fELF")), kernelFile{}, "ELFDATANONE"},
		{"zImage magic big-endian is not a zImage", mk(zMagicOff, []byte{0x01, 0x6f, 0x28, 0x18}), kernelFile{}, "kernel-format raw"},
		{"empty", nil, kernelFile{}, "not a bzImage"},
		{"truncated before the bzImage magic", []byte("MZ"), kernelFile{}, "not a bzImage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := detectKernel(tt.head)
			if got != tt.want || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("detectKernel() = %v, %v; want %v, an error mentioning %q", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		err  bool
	}{
		{"512M", 512 << 20, false},
		{"2G", 2 << 30, false},
		{"1GiB", 1 << 30, false},
		{"4096", 4096, false},
		{"64k", 64 << 10, false},
		{"", 0, true},
		{"M", 0, true},
		{"-1G", 0, true},
		{"1.5G", 0, true},
		{"99999999999T", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

// panicky is a device model with a bug: every access panics.
type panicky struct{}

func (panicky) Read(off uint64, data []byte)  { panic("device bug") }
func (panicky) Write(off uint64, data []byte) { panic("device bug") }

// TestDispatchContainsDevicePanic: a device model that panics under a
// guest's access fails that device; the vCPU loop goes on (dispatch
// returns no error and does not stop), the device reads zeros from then
// on, one warning says so, and the other devices answer as before.
func TestDispatchContainsDevicePanic(t *testing.T) {
	var pio, mmio bus.Bus
	var log bytes.Buffer
	warn := devices.NewRateLimited(&log, 10)
	mmio.SetWarnings(warn)
	if err := mmio.Insert(panicky{}, 0x1000, 0x100); err != nil {
		t.Fatal(err)
	}
	good := &recorder{answer: 0x7e}
	if err := mmio.Insert(good, 0x2000, 0x100); err != nil {
		t.Fatal(err)
	}
	for i, e := range []kvm.MMIOExit{
		{Addr: 0x1000, IsWrite: true, Data: []byte{1, 2, 3, 4}},
		{Addr: 0x1004, Data: []byte{9, 9, 9, 9}},
		{Addr: 0x1004, Data: []byte{9, 9, 9, 9}},
		{Addr: 0x2000, Data: []byte{0}},
	} {
		out, err := dispatch(kvm.ExitMMIO, &madeUpExit{mmio: e}, &pio, &mmio, warn)
		if err != nil || out.stop {
			t.Fatalf("exit %d: dispatch() = %+v, %v; want the vCPU to go on", i, out, err)
		}
		if !e.IsWrite && e.Addr == 0x1004 && !bytes.Equal(e.Data, make([]byte, 4)) {
			t.Errorf("exit %d: read of the failed device = %x, want zeros", i, e.Data)
		}
		if e.Addr == 0x2000 && e.Data[0] != 0x7e {
			t.Errorf("the other device read %#x, want 0x7e", e.Data[0])
		}
	}
	if n := strings.Count(log.String(), "failed: panic: device bug"); n != 1 {
		t.Errorf("warnings = %q, want one saying the device failed", log.String())
	}
}

// TestRunFailure: a KVM_RUN error the guest provoked ends the guest as a
// crash (status 3, restarted by policy); any other is the VMM's failure.
func TestRunFailure(t *testing.T) {
	tests := []struct {
		err       error
		wantGuest bool
	}{
		{&kvm.RunError{VCPU: 0, Errno: unix.ENOSYS}, true},
		{fmt.Errorf("wrapped: %w", &kvm.RunError{VCPU: 1, Errno: unix.ENOSYS}), true},
		{&kvm.RunError{VCPU: 0, Errno: unix.EFAULT}, false},
		{&kvm.RunError{VCPU: 0, Errno: unix.ENOMEM}, false},
		{errors.New("something else"), false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			out, guest := runFailure(tt.err)
			if guest != tt.wantGuest {
				t.Fatalf("runFailure(%v) guest = %v, want %v", tt.err, guest, tt.wantGuest)
			}
			if guest && (!out.stop || out.exit != ExitCrash || !strings.Contains(out.reason, "ENOSYS")) {
				t.Errorf("runFailure(%v) = %+v, want a stop with ExitCrash naming ENOSYS", tt.err, out)
			}
		})
	}
}
