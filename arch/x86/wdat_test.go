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
		{"PCI segment", uint64(le.Uint16(h[4:])), 0xff},
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

// ioRange is an inclusive range of ports or addresses, as struct resource.
type ioRange struct {
	mem        bool
	start, end uint64
}

func (r ioRange) contains(o ioRange) bool {
	return r.mem == o.mem && r.start <= o.start && o.end <= r.end
}

func (r ioRange) overlaps(o ioRange) bool {
	return r.mem == o.mem && r.start <= o.end && o.start <= r.end
}

// linuxWDAT checks a WDAT the way Linux 6.1 takes it up and returns the
// wdat_wdt device's resources: acpi_watchdog_get_wdat and
// acpi_watchdog_init (drivers/acpi/acpi_watchdog.c) decide whether the
// device is created and with which merged register ranges, and
// wdat_wdt_probe (drivers/watchdog/wdat_wdt.c) checks the period and
// counts and finds each instruction's register in one of them. Each of
// them but the probe gives up without a word.
func linuxWDAT(table []byte) ([]ioRange, string) {
	le := binary.LittleEndian
	h := table[acpiHeaderLen:]
	for _, e := range wdatRegions(table) {
		if !e.mem && e.start >= 0x70 && e.start <= 0x73 {
			return nil, "uses RTC SRAM"
		}
	}
	if h[24]&wdatEnabled == 0 {
		return nil, "not enabled"
	}
	if le.Uint16(h[4:]) != 0xff || h[6] != 0xff || h[7] != 0xff || h[8] != 0xff {
		return nil, "a legacy PCI watchdog"
	}
	var res []ioRange
	for _, r := range wdatRegions(table) {
		if r.end < r.start {
			return nil, "a register of no width"
		}
		merged := false
		for i := range res {
			if res[i].overlaps(r) {
				res[i].start, res[i].end = min(res[i].start, r.start), max(res[i].end, r.end)
				merged = true
				break
			}
		}
		if !merged {
			res = append(res, r)
		}
	}
	if le.Uint32(h[12:]) < 1 || le.Uint32(h[20:]) > le.Uint32(h[16:]) {
		return nil, "period below 1 ms or min count above max count"
	}
	for _, r := range wdatRegions(table) {
		found := false
		for _, x := range res {
			found = found || x.contains(r)
		}
		if !found {
			return nil, "I/O resource not found"
		}
	}
	return res, ""
}

// wdatRegions are the registers of a WDAT's entries, each
// ACPI_ACCESS_BYTE_WIDTH(access width) long, in table order.
func wdatRegions(table []byte) []ioRange {
	le := binary.LittleEndian
	n := int(le.Uint32(table[acpiHeaderLen+28:]))
	var out []ioRange
	for i := 0; i < n; i++ {
		e := table[acpiHeaderLen+wdatHeaderLen+i*wdatEntryLen:]
		start := le.Uint64(e[8:])
		width := uint64(0)
		if e[7] > 0 {
			width = 1 << (e[7] - 1)
		}
		out = append(out, ioRange{mem: e[4] == 0, start: start, end: start + width - 1})
	}
	return out
}

// TestWDATLinux checks that Linux creates and probes a wdat_wdt device
// for the WDAT, with its registers inside the port watchdog and clear of
// the ports an x86 kernel or this VMM gives to anything else, and that
// the check itself catches each table Linux would pass over.
func TestWDATLinux(t *testing.T) {
	good, err := wdat(Watchdog{MinCount: 1, MaxCount: 5})
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	for _, tt := range []struct {
		name   string
		change func(h, entry0 []byte)
		want   string
	}{
		{"as built", func(h, e []byte) {}, ""},
		{"PCI segment 0xffff", func(h, e []byte) { le.PutUint16(h[4:], 0xffff) }, "a legacy PCI watchdog"},
		{"a PCI function", func(h, e []byte) { h[8] = 0 }, "a legacy PCI watchdog"},
		{"not enabled", func(h, e []byte) { h[24] = 0 }, "not enabled"},
		{"access width 0", func(h, e []byte) { e[7] = 0 }, "a register of no width"},
		{"an RTC port", func(h, e []byte) { le.PutUint64(e[8:], 0x70) }, "uses RTC SRAM"},
		{"period 0", func(h, e []byte) { le.PutUint32(h[12:], 0) }, "period below 1 ms or min count above max count"},
		{"min above max", func(h, e []byte) { le.PutUint32(h[20:], 6) }, "period below 1 ms or min count above max count"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			table := append([]byte(nil), good...)
			tt.change(table[acpiHeaderLen:], table[acpiHeaderLen+wdatHeaderLen:])
			res, why := linuxWDAT(table)
			if why != tt.want {
				t.Fatalf("Linux takes the WDAT up: %q, want %q", why, tt.want)
			}
			if why != "" {
				return
			}
			dev := ioRange{start: WatchdogPortBase, end: WatchdogPortBase + watchdog.PortSize - 1}
			// Ports the kernel reserves at boot (standard_io_resources in
			// arch/x86/kernel/setup.c, PCI conf1), and this VMM's other
			// port devices.
			taken := []ioRange{
				{start: 0x00, end: 0x1f}, {start: 0x20, end: 0x21}, {start: 0x40, end: 0x43},
				{start: 0x50, end: 0x53}, {start: 0x60, end: 0x60}, {start: 0x64, end: 0x64},
				{start: 0x70, end: 0x77}, {start: 0x80, end: 0x8f}, {start: 0xa0, end: 0xa1},
				{start: 0xc0, end: 0xdf}, {start: 0xf0, end: 0xff}, {start: 0xcf8, end: 0xcff},
				{start: COM1Port, end: COM1Port + COM1Size - 1},
				{start: PowerPortBase, end: PowerPortBase + PowerPortSize - 1},
			}
			for _, r := range res {
				if !dev.contains(r) {
					t.Errorf("resource %#x-%#x is not inside the port watchdog %#x-%#x", r.start, r.end, dev.start, dev.end)
				}
				for _, x := range taken {
					if r.overlaps(x) {
						t.Errorf("resource %#x-%#x overlaps ports %#x-%#x", r.start, r.end, x.start, x.end)
					}
				}
			}
		})
	}
}
