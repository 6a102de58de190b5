// Package i8042 models the one part of the PC keyboard controller a guest
// without a keyboard still uses: the CPU reset line (command 0xFE written
// to the command port), which Linux's reboot=k and many firmwares use. It
// keeps no state, so a guest can make it hold nothing.
package i8042

// Ports (relative to the controller's base, 0x60).
const (
	// Base is the first port the controller decodes.
	Base = 0x60
	// Size covers the data port (0x60) through the command port (0x64).
	Size = 5

	offData    = 0
	offCommand = 4

	cmdResetCPU = 0xfe

	// statusSysFlag is the "system flag" bit of the status register: set
	// once the firmware's self test passed, as on a booted PC.
	statusSysFlag = 0x04
)

// Controller is the keyboard controller. It implements bus.Device.
type Controller struct {
	onReset func()
}

// New returns a controller that calls onReset when the guest pulses the
// CPU reset line.
func New(onReset func()) *Controller { return &Controller{onReset: onReset} }

// Read implements bus.Device: no key is ever pending.
func (c *Controller) Read(off uint64, data []byte) {
	clear(data)
	if off == offCommand && len(data) > 0 {
		data[0] = statusSysFlag
	}
}

// Write implements bus.Device.
func (c *Controller) Write(off uint64, data []byte) {
	if off == offCommand && len(data) > 0 && data[0] == cmdResetCPU && c.onReset != nil {
		c.onReset()
	}
}
