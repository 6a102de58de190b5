package hostinit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/tandem-hv/tandem/platforms/all"
	"github.com/tandem-hv/tandem/platforms/hostdt"
)

// Where Linux shows what the host booted with.
const (
	// HostFDT is the device tree the kernel was handed.
	HostFDT = "/sys/firmware/fdt"
	// KVMDevice exists once KVM has initialised: on arm64 only when the
	// kernel was entered at EL2.
	KVMDevice = "/dev/kvm"
)

// BoardLine says which board the host booted on, for the console: the
// device tree's model and root compatible and the profile that matches
// them. It is the first thing a person flashing a board, or a test
// booting an emulation of one, wants to see: that the firmware handed
// the kernel the device tree the image carries.
func BoardLine(fdt string) string {
	f, _, err := hostdt.ReadFile(fdt)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "board: no device tree at " + fdt + " (an ACPI host)"
	case err != nil:
		return "board: " + err.Error()
	}
	s := fmt.Sprintf("board %q (%s)", f.Model, strings.Join(f.Compatible, ", "))
	b, err := hostdt.Match(f, all.Boards())
	switch {
	case err == nil:
		return s + ", profile " + b.Name
	case errors.Is(err, hostdt.ErrNoMatch):
		return s + ", which no Tandem profile matches"
	}
	return s + ": " + err.Error()
}

// kvmHint says, per host architecture, why KVM may not have come up.
var kvmHint = map[string]string{
	"arm64": `an arm64 kernel must be entered at EL2, see its "kvm [1]:" lines`,
	"arm":   `an ARMv7 kernel must be entered in HYP mode and built with KVM (Linux 5.6 or older), see its "kvm [1]:" lines`,
	"amd64": `the CPU needs VT-x or AMD-V, enabled in the firmware, and kvm_intel or kvm_amd loaded: see the "kvm:" lines and the skipped modules above`,
}

// KVMLine says whether the host has KVM, for the console.
func KVMLine(dev string) string {
	st, err := os.Stat(dev)
	switch {
	case err != nil:
		return fmt.Sprintf("no %s: KVM did not initialise (%s): guests cannot run", dev, kvmHint[runtime.GOARCH])
	case st.Mode()&fs.ModeCharDevice == 0:
		return fmt.Sprintf("%s is not a character device: guests cannot run", dev)
	}
	return fmt.Sprintf("KVM ready (%s)", dev)
}
