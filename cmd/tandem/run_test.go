package main

import (
	"bytes"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/bsp"
	"github.com/tandem-hv/tandem/hv/kvm"
	"github.com/tandem-hv/tandem/internal/baremetal"
	"github.com/tandem-hv/tandem/internal/fakekernel"
	"github.com/tandem-hv/tandem/system"
)

// TestRunBadInput checks that bad input to `tandem run` gives a one-line
// error naming the input and the field, and no guest is started.
func TestRunBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, filepath.Join(dir, name), data) }
	text := write("notes.txt", []byte("not a kernel\n"))
	// A bzImage header cut short: the magic is there, the rest is not.
	trunc := make([]byte, 0x210)
	copy(trunc[0x202:], "HdrS")
	truncated := write("truncated-bzImage", trunc)
	disk := write("disk.img", make([]byte, 4096))
	yamlUnknown := write("unknown.yaml", []byte("kernel: "+truncated+"\ncpus: 2\nmemroy: 512M\n"))
	yamlType := write("type.yaml", []byte("kernel: "+truncated+"\ncpus: two\n"))
	yamlNoKernel := write("nokernel.yaml", []byte("cpus: 1\n"))
	yamlIRQ := write("irq.yaml", []byte("kernel: "+truncated+"\npassthrough:\n  - node: /pl031@9010000\n    interrupts: polled\n"))
	yamlPassField := write("passfield.yaml", []byte("kernel: "+truncated+"\npassthrough:\n  - path: /pl031@9010000\n"))
	yamlDisplay := write("display.yaml", []byte("kernel: "+truncated+"\ndisplay: {width: 8000, height: 720}\n"))
	yamlPassRel := write("passrel.yaml", []byte("kernel: "+truncated+"\npassthrough:\n  - node: pl031@9010000\n"))
	riscv := write("riscv.elf", baremetal.ELF(elf.ELFCLASS64, elf.EM_RISCV, 0x80000000, []baremetal.Segment{{Addr: 0x80000000, Data: []byte{0x6f, 0, 0, 0}, MemSize: 4}}))
	x86ELF := baremetal.X86ELF()
	cutELF := write("cut.elf", x86ELF[:len(x86ELF)-8])
	rawBin := write("raw.bin", baremetal.X86Code)
	yamlFormat := write("format.yaml", []byte("kernel: "+rawBin+"\nkernel-format: binary\n"))
	yamlFirmware := write("firmware.yaml", []byte("firmware: u-boot-missing.bin\ndisks:\n  - path: disk.img\n"))

	tests := []struct {
		name string
		args []string
		want []string // every one must appear in the error
	}{
		{"missing kernel file", []string{"run", "--kernel", filepath.Join(dir, "nope")}, []string{"kernel", "nope", "no such file"}},
		{"no kernel at all", []string{"run"}, []string{"kernel", "--kernel"}},
		{"not a kernel", []string{"run", "--kernel", text}, []string{text, "not a bzImage"}},
		{"truncated bzImage", []string{"run", "--kernel", truncated, "--disk", disk}, []string{truncated, "boot_flag"}},
		{"missing disk", []string{"run", "--kernel", truncated, "--disk", filepath.Join(dir, "gone.img")}, []string{"disk 0", "gone.img", "no such file"}},
		{"disk is a directory", []string{"run", "--kernel", truncated, "--disk", dir}, []string{"disk 0", "directory"}},
		{"bad disk option", []string{"run", "--kernel", truncated, "--disk", disk + ",rw"}, []string{"--disk", "rw"}},
		{"memory larger than the host", []string{"run", "--kernel", truncated, "--memory", "64T"}, []string{"memory 64T", "more than the host"}},
		{"memory not a size", []string{"run", "--kernel", truncated, "--memory", "lots"}, []string{"--memory", "lots"}},
		{"too many cpus", []string{"run", "--kernel", truncated, "--cpus", "1000"}, []string{"cpus 1000"}},
		{"watchdog not whole seconds", []string{"run", "--kernel", truncated, "--watchdog", "1500ms"}, []string{"watchdog timeout 1.5s", "whole seconds"}},
		{"vsock CID reserved", []string{"run", "--kernel", truncated, "--vsock", "2"}, []string{"--vsock 2", "guest CIDs are 3 to"}},
		{"vsock CID out of range", []string{"run", "--kernel", truncated, "--vsock", "4294967295"}, []string{"--vsock 4294967295", "reserved"}},
		{"bad console", []string{"run", "--kernel", truncated, "--console", "serial"}, []string{"--console", "serial"}},
		{"display not a size", []string{"run", "--kernel", truncated, "--display", "big"}, []string{"--display big", "WIDTHxHEIGHT"}},
		{"display without a height", []string{"run", "--kernel", truncated, "--display", "800x"}, []string{"--display 800x", "WIDTHxHEIGHT"}},
		{"vnc on every interface", []string{"run", "--kernel", truncated, "--vnc", "tcp:0.0.0.0:5901"}, []string{"VNC address", "listens beyond this host", "no password or encryption", "vnc-allow-remote"}},
		{"vnc not an address", []string{"run", "--kernel", truncated, "--vnc", "5901"}, []string{"VNC address", "want unix:PATH or tcp:HOST:PORT"}},
		{"screenshot without a display", []string{"run", "--kernel", truncated, "--screenshot-on-exit", "shot.png"}, []string{"--screenshot-on-exit shot.png", "no display", "--display"}},
		{"display too small", []string{"run", "--kernel", truncated, "--display", "100x100"}, []string{"display 100x100", "display size out of range", "320x200"}},
		{"guest file display too large", []string{"run", yamlDisplay}, []string{yamlDisplay + ":2", "display 8000x720", "out of range"}},
		{"guest file unknown field", []string{"run", yamlUnknown}, []string{yamlUnknown, yamlUnknown + ":3", "memroy"}},
		{"guest file type error", []string{"run", yamlType}, []string{yamlType, yamlType + ":2", "two"}},
		{"guest file without kernel", []string{"run", yamlNoKernel}, []string{yamlNoKernel, "kernel"}},
		{"bad passthrough option", []string{"run", "--kernel", truncated, "--passthrough", "/pl031@9010000,irq=off"}, []string{"--passthrough", "irq=off", "interrupts=none"}},
		{"passthrough path not absolute", []string{"run", "--kernel", truncated, "--passthrough", "pl031@9010000"}, []string{"--passthrough", "absolute path"}},
		{"passthrough listed twice", []string{"run", "--kernel", truncated, "--passthrough", "/pl031@9010000", "--passthrough", "/pl031@9010000,interrupts=none"}, []string{"passthrough 1: /pl031@9010000 is listed twice"}},
		{"guest file passthrough interrupts", []string{"run", yamlIRQ}, []string{yamlIRQ + ":4", "passthrough[0].interrupts", "polled", "want none"}},
		{"guest file passthrough unknown field", []string{"run", yamlPassField}, []string{yamlPassField + ":3", "path"}},
		{"guest file passthrough relative node", []string{"run", yamlPassRel}, []string{yamlPassRel, "passthrough 0", "absolute path"}},
		{"guest file missing", []string{"run", filepath.Join(dir, "none.yaml")}, []string{"none.yaml"}},
		{"unknown kernel format", []string{"run", "--kernel", rawBin, "--kernel-format", "uimage"}, []string{"--kernel-format", "uimage", "raw"}},
		{"load address for a kernel with a header", []string{"run", "--kernel", truncated, "--load-address", "0x80000"}, []string{"load address 0x80000", "only a raw image takes a load address"}},
		{"ELF for another machine", []string{"run", "--kernel", riscv}, []string{riscv, "e_machine is EM_RISCV", "build the image for one of them"}},
		{"ELF cut short", []string{"run", "--kernel", cutELF}, []string{cutELF, "segment", "p_filesz", "past the end"}},
		{"guest file unknown kernel format", []string{"run", yamlFormat}, []string{yamlFormat, "kernel-format", "binary"}},
		{"missing firmware file", []string{"run", "--firmware", filepath.Join(dir, "u-boot.bin")}, []string{"firmware", filepath.Join(dir, "u-boot.bin"), "no such file"}},
		{"firmware and a kernel", []string{"run", "--firmware", rawBin, "--kernel", truncated}, []string{"firmware " + rawBin, "either a kernel or firmware", "drop the kernel"}},
		{"firmware and an initrd", []string{"run", "--firmware", rawBin, "--initrd", disk}, []string{"firmware " + rawBin, "drop the initrd"}},
		{"guest file firmware missing", []string{"run", yamlFirmware}, []string{yamlFirmware, "firmware", filepath.Join(dir, "u-boot-missing.bin"), "no such file"}},
	}
	if kvm.HostArch == "x86_64" {
		tests = append(tests, struct {
			name string
			args []string
			want []string
		}{"raw x86 image without a load address", []string{"run", "--kernel", rawBin, "--kernel-format", "raw"}, []string{rawBin, "needs a load address", "--load-address"}},
			struct {
				name string
				args []string
				want []string
			}{"raw x86 image over the zero page", []string{"run", "--kernel", rawBin, "--kernel-format", "raw", "--load-address", "0x7000"}, []string{rawBin, "overlaps the zero page (boot_params)"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tt.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) = nil, want an error", tt.args)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("run(%q) error spans lines: %q", tt.args, msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("run(%q) = %q, want it to mention %q", tt.args, msg, w)
				}
			}
			if exitCode(err) == 0 {
				t.Errorf("exitCode(%v) = 0, want non-zero", err)
			}
		})
	}
}

// TestGuestFilePassthrough reads the passthrough list of a guest file.
func TestGuestFilePassthrough(t *testing.T) {
	dir := t.TempDir()
	if _, err := fakekernel.Write(dir, "Image"); err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(dir, "g.yaml")
	doc := "kernel: Image\npassthrough:\n  - node: /pl031@9010000\n    interrupts: none\n  - node: /soc/can@1c2bc00\n"
	if err := os.WriteFile(g, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := loadGuestFile(g)
	if err != nil {
		t.Fatalf("loadGuestFile() = %v", err)
	}
	want := []system.HostDevice{{Node: "/pl031@9010000", NoInterrupts: true}, {Node: "/soc/can@1c2bc00"}}
	if got := spec.passthrough; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("loadGuestFile() passthrough = %+v, want %+v", got, want)
	}
}

// TestKVMProbeNames checks that every KVM capability the porting kit's
// host check asks for is one hv/kvm can ask the kernel about: a name it
// did not know would read as a missing capability on every host.
func TestKVMProbeNames(t *testing.T) {
	for _, arch := range []string{"x86_64", "arm64", "arm"} {
		t.Run(arch, func(t *testing.T) {
			for _, name := range bsp.KVMCapabilities(arch) {
				if c, ok := kvm.CapByName(name); !ok || c.String() != name {
					t.Errorf("kvm.CapByName(%q) = %v, %v: hv/kvm does not know the capability", name, c, ok)
				}
			}
		})
	}
}

// writeFile writes data to path, making its directory, and returns path.
func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
