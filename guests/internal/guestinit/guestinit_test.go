package guestinit

import (
	"encoding/binary"
	"slices"
	"testing"
)

func TestWatchdogLines(t *testing.T) {
	for _, tt := range []struct {
		name, log string
		want      []string
	}{
		{"none", "<6>[    0.000000] Linux version 6.1\n<6>[    0.1] ACPI: DSDT 0x1000\n", nil},
		{
			"table, driver and core",
			"<6>[    0.010000] ACPI: WDAT 0x00000000000E02A0 000164 (v01 TANDEM TANDEMVM 00000001 TNDM 00000001)\n" +
				"<4>[    2.000000] wdat_wdt wdat_wdt: Invalid timeout 30 given, using 30\n" +
				"<3>[    0.5] ACPI: watchdog: Device creation failed: -16\n" +
				"<6>[    3.0] sp805-wdt 9050000.watchdog: registration successful\n" +
				"<6>[    3.1] random: crng init done\n",
			[]string{
				"[    0.010000] ACPI: WDAT 0x00000000000E02A0 000164 (v01 TANDEM TANDEMVM 00000001 TNDM 00000001)",
				"[    2.000000] wdat_wdt wdat_wdt: Invalid timeout 30 given, using 30",
				"[    0.5] ACPI: watchdog: Device creation failed: -16",
				"[    3.0] sp805-wdt 9050000.watchdog: registration successful",
			},
		},
		{"no level prefix", "[ 1.0] watchdog: watchdog0: watchdog did not stop!", []string{"[ 1.0] watchdog: watchdog0: watchdog did not stop!"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := watchdogLines(tt.log); !slices.Equal(got, tt.want) {
				t.Errorf("watchdogLines() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWDATTimeout(t *testing.T) {
	table := func(periodMs, maxCount uint32) []byte {
		b := make([]byte, 36+32)
		binary.LittleEndian.PutUint32(b[wdatPeriod:], periodMs)
		binary.LittleEndian.PutUint32(b[wdatMaxCount:], maxCount)
		return b
	}
	for _, tt := range []struct {
		name string
		b    []byte
		want int
	}{
		{"5 periods of 1 s", table(1000, 5), 5},
		{"100 periods of 100 ms", table(100, 100), 10},
		{"below a second", table(100, 5), 0},
		{"too short a table", make([]byte, 40), 0},
		{"huge", table(^uint32(0), ^uint32(0)), 1<<31 - 1},
	} {
		if got := wdatTimeoutOf(tt.b); got != tt.want {
			t.Errorf("%s: wdatTimeoutOf() = %d, want %d", tt.name, got, tt.want)
		}
	}
}
