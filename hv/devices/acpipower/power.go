// Package acpipower is the ACPI power device of a hardware-reduced
// platform: the sleep control, sleep status and reset registers (ACPI 6.4
// §4.8.3.7 Sleep Control and Status Registers, §4.8.3.6 Reset Register),
// byte-wide, in the layout of QEMU's generic event device. The FADT points
// at them and the DSDT's \_S5 names the sleep type (arch/x86). It keeps
// no state, so a guest can make it hold nothing.
package acpipower

// Register offsets from the device's base, and its size.
const (
	SleepControl = 0 // SLEEP_CONTROL_REG
	SleepStatus  = 1 // SLEEP_STATUS_REG
	Reset        = 2 // RESET_REG
	Size         = 4

	// ResetValue is the FADT's RESET_VALUE.
	ResetValue = 0x42
	// S5SleepType is the SLP_TYP value of \_S5 in the DSDT.
	S5SleepType = 5

	sleepTypeShift = 2    // SLP_TYPx: bits 4:2 of the sleep control register
	sleepTypeMask  = 0x7  // after the shift
	sleepEnable    = 0x20 // SLP_EN
)

// Power holds the sleep control, sleep status and reset registers. A
// guest's S5 request calls OnPowerOff; a write of ResetValue to the reset
// register calls OnReset. Other sleep states are not supported: the write
// is ignored and the guest carries on.
type Power struct {
	onPowerOff, onReset func()
}

// New returns the power registers. Either callback may be nil.
func New(onPowerOff, onReset func()) *Power {
	return &Power{onPowerOff: onPowerOff, onReset: onReset}
}

// Read implements bus.Device. Every register reads 0: the sleep status
// register's WAK_STS is never set, since a guest never wakes from S5 in
// place, and the control and reset registers are write-only.
func (p *Power) Read(off uint64, data []byte) { clear(data) }

// Write implements bus.Device. Only byte accesses are meaningful: the
// FADT describes the registers as byte-wide, and a wider write is taken
// as its first byte at off.
func (p *Power) Write(off uint64, data []byte) {
	if len(data) == 0 {
		return
	}
	v := data[0]
	switch off {
	case SleepControl:
		if v&sleepEnable != 0 && v>>sleepTypeShift&sleepTypeMask == S5SleepType && p.onPowerOff != nil {
			p.onPowerOff()
		}
	case SleepStatus:
		// Write-one-to-clear of a WAK_STS that is never set.
	case Reset:
		if v == ResetValue && p.onReset != nil {
			p.onReset()
		}
	}
}
