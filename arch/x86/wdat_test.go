package x86

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/hv/devices/watchdog"
)

// wdatAction runs one action of a WDAT against a port bus as Linux's
// wdat_wdt_run_action does, and returns its result (the last read).
func wdatAction(t *testing.T, table []byte, ports *watchdog.Port, action uint8, param uint32) (uint32, bool) {
	t.Helper()
	le := binary.LittleEndian
	n := int(le.Uint32(table[acpiHeaderLen+28:]))
	found := false
	var ret uint32
	for i := 0; i < n; i++ {
		e := table[acpiHeaderLen+wdatHeaderLen+i*wdatEntryLen:]
		if e[0] != action {
			continue
		}
		found = true
		instr, preserve := e[1]&^wdatPreserve, e[1]&wdatPreserve != 0
		space, bitOff, access := e[4], e[6], e[7]
		addr := le.Uint64(e[8:])
		value, mask := le.Uint32(e[16:]), le.Uint32(e[20:])
		if space != gasSystemIO || addr < WatchdogPortBase || addr >= WatchdogPortBase+watchdog.PortSize {
			t.Fatalf("action %#x: register %d:%#x is not the watchdog's", action, space, addr)
		}
		width := 1 << (access - 1)
		off := addr - WatchdogPortBase
		read := func() uint32 {
			b := make([]byte, width)
			ports.Read(off, b)
			var v uint32
			for j := range b {
				v |= uint32(b[j]) << (8 * j)
			}
			return v
		}
		write := func(v uint32) {
			b := make([]byte, width)
			for j := range b {
				b[j] = byte(v >> (8 * j))
			}
			ports.Write(off, b)
		}
		switch instr {
		case wdatReadValue:
			if read()>>bitOff&mask == value {
				ret = 1
			} else {
				ret = 0
			}
		case wdatReadCountdown:
			ret = read() >> bitOff & mask
		case wdatWriteValue, wdatWriteCountdown:
			x := value & mask
			if instr == wdatWriteCountdown {
				x = param & mask
			}
			x <<= bitOff
			if preserve {
				x |= read() &^ (mask << bitOff)
			}
			write(x)
		default:
			t.Fatalf("action %#x: instruction %#x", action, e[1])
		}
	}
	return ret, found
}

// TestWDATActions drives the port watchdog through the WDAT's own
// instructions, in the order wdat_wdt's probe, start, ping and stop run
// them.
func TestWDATActions(t *testing.T) {
	table, err := wdat(Watchdog{MinCount: 1, MaxCount: 10})
	if err != nil {
		t.Fatal(err)
	}
	expired := make(chan struct{})
	dev := watchdog.NewPort(watchdog.PortConfig{Period: 10 * time.Millisecond, MinCount: 1, MaxCount: 10, Expired: func() { close(expired) }})
	defer dev.Close()
	steps := []struct {
		name   string
		action uint8
		param  uint32
		want   uint32
	}{
		{"GET_STATUS: not a watchdog reboot", wdatGetStatus, 0, 0},
		{"SET_STATUS clears it", wdatSetStatus, 0, 0},
		{"GET_RUNNING_STATE: stopped at power-on", wdatGetRunningState, 0, 0},
		{"GET_STOPPED_STATE", wdatGetStoppedState, 0, 1},
		{"SET_REBOOT", wdatSetReboot, 0, 0},
		{"GET_REBOOT: an expiry resets", wdatGetReboot, 0, 1},
		{"GET_COUNTDOWN starts at max", wdatGetCountdown, 0, 10},
		{"SET_COUNTDOWN(30) is clamped to max", wdatSetCountdown, 30, 0},
		{"GET_COUNTDOWN", wdatGetCountdown, 0, 10},
		{"SET_COUNTDOWN(5)", wdatSetCountdown, 5, 0},
		{"GET_COUNTDOWN", wdatGetCountdown, 0, 5},
		{"SET_RUNNING_STATE starts it", wdatSetRunningState, 0, 0},
		{"GET_RUNNING_STATE", wdatGetRunningState, 0, 1},
		{"GET_REBOOT still set after the preserved write", wdatGetReboot, 0, 1},
		{"RESET (ping)", wdatReset, 0, 0},
		{"SET_STOPPED_STATE stops it", wdatSetStoppedState, 0, 0},
		{"GET_STOPPED_STATE", wdatGetStoppedState, 0, 1},
		{"GET_CURRENT_COUNTDOWN of a stopped watchdog is the countdown", wdatGetCurrentCountdown, 0, 5},
	}
	for _, s := range steps {
		got, ok := wdatAction(t, table, dev, s.action, s.param)
		if !ok {
			t.Errorf("%s: the WDAT has no action %#x", s.name, s.action)
		} else if got != s.want {
			t.Errorf("%s: action %#x = %d, want %d", s.name, s.action, got, s.want)
		}
	}
	select {
	case <-expired:
		t.Fatal("the stopped watchdog expired")
	case <-time.After(100 * time.Millisecond):
	}
	wdatAction(t, table, dev, wdatSetRunningState, 0)
	select {
	case <-expired:
	case <-time.After(5 * time.Second):
		t.Fatal("the running watchdog did not expire without pings")
	}
}

func TestWDATHeader(t *testing.T) {
	le := binary.LittleEndian
	table, err := wdat(Watchdog{MinCount: 2, MaxCount: 10})
	if err != nil {
		t.Fatal(err)
	}
	h := table[acpiHeaderLen:]
	for _, f := range []struct {
		name      string
		got, want uint64
	}{
		{"length", uint64(len(table)), acpiHeaderLen + wdatHeaderLen + wdatEntryLen*uint64(len(wdatEntries))},
		{"header length", uint64(le.Uint32(h)), wdatHeaderLen},
		{"PCI segment", uint64(le.Uint16(h[4:])), 0xffff},
		{"PCI bus, device, function", uint64(h[6])<<16 | uint64(h[7])<<8 | uint64(h[8]), 0xffffff},
		{"timer period (ms)", uint64(le.Uint32(h[12:])), 1000},
		{"max count", uint64(le.Uint32(h[16:])), 10},
		{"min count", uint64(le.Uint32(h[20:])), 2},
		{"flags: enabled", uint64(h[24]), wdatEnabled},
		{"entries", uint64(le.Uint32(h[28:])), uint64(len(wdatEntries))},
		{"checksum", uint64(sum(table)), 0},
	} {
		if f.got != f.want {
			t.Errorf("WDAT %s = %#x, want %#x", f.name, f.got, f.want)
		}
	}
	for _, bad := range []Watchdog{{MinCount: 0, MaxCount: 10}, {MinCount: 11, MaxCount: 10}} {
		if _, err := wdat(bad); err == nil {
			t.Errorf("wdat(%+v) = nil error, want one", bad)
		}
	}
}

func TestWatchdogCounts(t *testing.T) {
	for _, tt := range []struct {
		in   time.Duration
		want uint32
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {10 * time.Second, 10}} {
		if got := WatchdogCounts(tt.in); got != tt.want {
			t.Errorf("WatchdogCounts(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
