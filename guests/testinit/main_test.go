package main

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestModuleName(t *testing.T) {
	tests := []struct{ path, want string }{
		{"kernel/drivers/char/hw_random/virtio-rng.ko", "virtio_rng"},
		{"kernel/drivers/block/virtio_blk.ko.xz", "virtio_blk"},
		{"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko.zst", "vmw_vsock_virtio_transport"},
	}
	for _, tt := range tests {
		if got := moduleName(tt.path); got != tt.want {
			t.Errorf("moduleName(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestParseModulesDep(t *testing.T) {
	got, err := parseModulesDep(strings.NewReader("a.ko: b.ko c.ko\n\nb.ko:\n"))
	want := map[string][]string{"a.ko": {"b.ko", "c.ko"}, "b.ko": {}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseModulesDep() = %v, %v, want %v", got, err, want)
	}
	if _, err := parseModulesDep(strings.NewReader("no colon\n")); err == nil {
		t.Errorf("parseModulesDep(no colon) = nil error, want one")
	}
}

// TestWatchInput feeds evdev events as virtio-input sends them for a
// VNC client's key and touch: the key's press and the touch's position
// are reported, a release, BTN_TOUCH and a touch's lifting are not, and
// the watch ends once both came or the time is up.
func TestWatchInput(t *testing.T) {
	key := func(code uint16, v int32) inputEvent { return inputEvent{"event0", evKey, code, v} }
	syn := func(dev string) inputEvent { return inputEvent{dev, evSyn, synReport, 0} }
	abs := func(code uint16, v int32) inputEvent { return inputEvent{"event1", evAbs, code, v} }
	tests := []struct {
		name   string
		events []inputEvent
		want   []string
	}{
		{"key then touch", []inputEvent{
			key(30, 1), syn("event0"), key(30, 0), syn("event0"),
			abs(absX, 321), abs(absY, 123), {"event1", evKey, btnTouch, 1}, syn("event1"),
			{"event1", evKey, btnTouch, 0}, syn("event1"),
		}, []string{"evdev=event0 key=30", "evdev=event1 touch=321,123"}},
		{"touch then key, a repeat ignored", []inputEvent{
			abs(absX, 0), abs(absY, 719), {"event1", evKey, btnTouch, 1}, syn("event1"),
			key(28, 2), key(28, 1), syn("event0"),
		}, []string{"evdev=event1 touch=0,719", "evdev=event0 key=28"}},
		{"only a release and a lift: nothing, until the time is up", []inputEvent{
			key(30, 0), syn("event0"), abs(absX, 5), abs(absY, 6), {"event1", evKey, btnTouch, 0}, syn("event1"),
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch := make(chan inputEvent, len(tt.events))
			for _, e := range tt.events {
				ch <- e
			}
			var got []string
			watchInput(ch, 200*time.Millisecond, func(s string) { got = append(got, s) })
			if !slices.Equal(got, tt.want) {
				t.Errorf("watchInput() said %q, want %q", got, tt.want)
			}
		})
	}
}
