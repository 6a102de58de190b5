package x86

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tandem-hv/tandem/hv/devices/watchdog"
)

// Watchdog is the guest's watchdog timer as the WDAT describes it: the
// port watchdog of hv/devices/watchdog at WatchdogPortBase, counting in
// periods of WatchdogPeriod. Linux's wdat_wdt drives it.
type Watchdog struct {
	// MinCount and MaxCount bound the countdown, in periods: the
	// shortest and longest time between pings the guest can ask for.
	MinCount, MaxCount uint32
}

// The port watchdog's place and unit. The ports follow the power
// registers (0x600-0x603), away from every legacy PC device.
const (
	WatchdogPortBase = 0x610
	WatchdogPeriod   = time.Second
)

// WatchdogCounts converts a timeout to the WDAT's Max Count: whole
// periods, rounded up, at least 1.
func WatchdogCounts(timeout time.Duration) uint32 {
	n := (timeout + WatchdogPeriod - 1) / WatchdogPeriod
	return uint32(min(max(n, 1), 1<<31))
}

// The Watchdog Action Table (Microsoft, Hardware Watchdog Timers Design
// Specification, "Watchdog Action Table (WDAT)"; ACPICA's struct
// acpi_table_wdat and acpi_wdat_entry in actbl3.h).
const (
	wdatRevision  = 1
	wdatHeaderLen = 32 // Watchdog Header Length: from here to the first entry
	wdatEntryLen  = 24
	// wdatNoPCI in each of PCI Segment (16 bits), Bus, Device and
	// Function says the watchdog is not a PCI device. The segment too
	// is 0xff, not 0xffff: Linux's acpi_watchdog_init
	// (drivers/acpi/acpi_watchdog.c) compares each field with 0xff and
	// silently creates no wdat_wdt device for any other value.
	wdatNoPCI        = 0xff
	wdatEnabled      = 1 << 0
	gasAccessDword   = 3
	gasBitWidthByte  = 8
	gasBitWidthDword = 32

	// Actions.
	wdatReset               = 0x01
	wdatGetCurrentCountdown = 0x04
	wdatGetCountdown        = 0x05
	wdatSetCountdown        = 0x06
	wdatGetRunningState     = 0x08
	wdatSetRunningState     = 0x09
	wdatGetStoppedState     = 0x0a
	wdatSetStoppedState     = 0x0b
	wdatGetReboot           = 0x10
	wdatSetReboot           = 0x11
	wdatGetStatus           = 0x20
	wdatSetStatus           = 0x21

	// Instructions.
	wdatReadValue      = 0x00 // true when (register >> bit offset) & mask == value
	wdatReadCountdown  = 0x01 // (register >> bit offset) & mask
	wdatWriteValue     = 0x02 // value & mask, shifted to the bit offset
	wdatWriteCountdown = 0x03 // the action's argument & mask, likewise
	wdatPreserve       = 0x80 // keep the register's other bits
)

// wdatEntry is one instruction of an action: acpi_wdat_entry.
type wdatEntry struct {
	action, instruction uint8
	port                uint16 // offset from WatchdogPortBase
	dword               bool   // 32-bit register, else 8-bit
	bitOffset           uint8
	value, mask         uint32
}

// wdatEntries are the actions Linux's wdat_wdt runs, each one access to
// one register of the port watchdog.
var wdatEntries = []wdatEntry{
	{wdatReset, wdatWriteValue, watchdog.PortPing, false, 0, watchdog.PingValue, 0xff},
	{wdatGetCurrentCountdown, wdatReadCountdown, watchdog.PortRemaining, true, 0, 0, 0xffffffff},
	{wdatGetCountdown, wdatReadCountdown, watchdog.PortCountdown, true, 0, 0, 0xffffffff},
	{wdatSetCountdown, wdatWriteCountdown, watchdog.PortCountdown, true, 0, 0, 0xffffffff},
	{wdatGetRunningState, wdatReadValue, watchdog.PortControl, false, 0, 1, 1},
	{wdatSetRunningState, wdatWriteValue | wdatPreserve, watchdog.PortControl, false, 0, 1, 1},
	{wdatGetStoppedState, wdatReadValue, watchdog.PortControl, false, 0, 0, 1},
	{wdatSetStoppedState, wdatWriteValue | wdatPreserve, watchdog.PortControl, false, 0, 0, 1},
	{wdatGetReboot, wdatReadValue, watchdog.PortControl, false, watchdog.ControlRebootShift, 1, 1},
	{wdatSetReboot, wdatWriteValue | wdatPreserve, watchdog.PortControl, false, watchdog.ControlRebootShift, 1, 1},
	{wdatGetStatus, wdatReadValue, watchdog.PortStatus, false, 0, 1, 1},
	{wdatSetStatus, wdatWriteValue | wdatPreserve, watchdog.PortStatus, false, 0, 0, 1},
}

// wdat builds the WDAT for w.
func wdat(w Watchdog) ([]byte, error) {
	if w.MinCount < 1 || w.MinCount > w.MaxCount {
		return nil, fmt.Errorf("watchdog counts %d-%d: want 1 <= min <= max", w.MinCount, w.MaxCount)
	}
	le := binary.LittleEndian
	b := le.AppendUint32(nil, wdatHeaderLen)
	b = le.AppendUint16(b, wdatNoPCI) // PCI segment
	b = append(b, wdatNoPCI, wdatNoPCI, wdatNoPCI, 0, 0, 0)
	b = le.AppendUint32(b, uint32(WatchdogPeriod/time.Millisecond))
	b = le.AppendUint32(b, w.MaxCount)
	b = le.AppendUint32(b, w.MinCount)
	b = append(b, wdatEnabled, 0, 0, 0)
	b = le.AppendUint32(b, uint32(len(wdatEntries)))
	for _, e := range wdatEntries {
		width, access := uint8(gasBitWidthByte), uint8(gasAccessByte)
		if e.dword {
			width, access = gasBitWidthDword, gasAccessDword
		}
		b = append(b, e.action, e.instruction, 0, 0)
		b = append(b, gasSystemIO, width, e.bitOffset, access)
		b = le.AppendUint64(b, WatchdogPortBase+uint64(e.port))
		b = le.AppendUint32(b, e.value)
		b = le.AppendUint32(b, e.mask)
	}
	return sdt("WDAT", wdatRevision, b), nil
}
