package main

import (
	"reflect"
	"strings"
	"testing"
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
