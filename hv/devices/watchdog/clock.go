// Package watchdog models the watchdog timers a guest pets to prove it is
// alive: an ARM SP805 for ARM guests (sp805.go) and, for x86 guests, a
// small port-I/O countdown that an ACPI WDAT table describes (port.go).
// Either one calls its Expired callback when the guest stops petting; the
// VMM then ends the guest with the exit reason "watchdog".
//
// # Bounds
//
// Neither holds anything that grows: each keeps one timer, replaced at
// every reload. The times a guest can ask for are computed without
// wrapping: the SP805's with a saturating multiply-divide, the port
// watchdog's countdown (at most MaxCount periods) saturating at the
// longest Duration.
package watchdog

import "time"

// Clock is the time a watchdog counts in: the host's clock, or a fake
// one in tests.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f once d has passed, unless the returned timer is
	// stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc.
type Timer interface{ Stop() bool }

// HostClock is the host's monotonic clock.
type HostClock struct{}

// Now implements Clock.
func (HostClock) Now() time.Time { return time.Now() }

// AfterFunc implements Clock.
func (HostClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
