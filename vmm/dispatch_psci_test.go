package vmm

import (
	"testing"

	"github.com/tandem-hv/tandem/hv/kvm"
)

// systemEvent is a made-up KVM_EXIT_SYSTEM_EVENT with data words.
type systemEvent struct {
	madeUpExit
	data []uint64
}

func (e *systemEvent) SystemEvent() (uint32, []uint64) { return e.event, e.data }

// TestDispatchPSCI feeds the system events KVM's in-kernel PSCI produces.
func TestDispatchPSCI(t *testing.T) {
	tests := []struct {
		name       string
		event      uint32
		data       []uint64
		wantExit   Exit
		wantReason string
	}{
		{"SYSTEM_OFF", kvm.SystemEventShutdown, []uint64{0}, ExitPowerOff, "power-off"},
		{"SYSTEM_RESET", kvm.SystemEventReset, []uint64{0}, ExitReset, "reset"},
		{"SYSTEM_RESET without KVM_CAP_SYSTEM_EVENT_DATA", kvm.SystemEventReset, nil, ExitReset, "reset"},
		{"SYSTEM_RESET2", kvm.SystemEventReset, []uint64{kvm.SystemEventResetFlagPSCIReset2}, ExitReset, "reset (PSCI SYSTEM_RESET2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &systemEvent{madeUpExit{event: tt.event}, tt.data}
			out, err := dispatch(kvm.ExitSystemEvent, e, nil, nil, nil)
			if err != nil || !out.stop || out.exit != tt.wantExit || out.reason != tt.wantReason {
				t.Errorf("dispatch() = %+v, %v, want stop with %v %q", out, err, tt.wantExit, tt.wantReason)
			}
		})
	}
}
