package vmm

import (
	"errors"
	"testing"
	"time"
)

func TestWatchdogValidate(t *testing.T) {
	tests := []struct {
		name string
		w    Watchdog
		ok   bool
	}{
		{"10s", Watchdog{Timeout: 10 * time.Second}, true},
		{"10s with a boot grace", Watchdog{Timeout: 10 * time.Second, Boot: time.Minute}, true},
		{"zero", Watchdog{}, false},
		{"below a second", Watchdog{Timeout: 500 * time.Millisecond}, false},
		{"not whole seconds", Watchdog{Timeout: 1500 * time.Millisecond}, false},
		{"over an hour", Watchdog{Timeout: 2 * time.Hour}, false},
		{"negative grace", Watchdog{Timeout: time.Second, Boot: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.w.validate(); (err == nil) != tt.ok {
				t.Errorf("validate(%+v) = %v, want ok=%v", tt.w, err, tt.ok)
			}
		})
	}
}

// TestExitWatchdog pins the exit status a supervisor reads.
func TestExitWatchdog(t *testing.T) {
	err := error(&ExitErr{Exit: ExitWatchdog, Reason: "watchdog expired"})
	var ee *ExitErr
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || ee.Exit.String() != "watchdog" {
		t.Errorf("ExitWatchdog: code %d, name %q; want 5, watchdog", ee.ExitCode(), ee.Exit)
	}
}
