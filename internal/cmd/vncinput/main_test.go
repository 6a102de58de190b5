package main

import (
	"fmt"
	"image"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tandem-hv/tandem/display/vnc"
)

// screen is a black 64x48 display.
type screen struct{}

func (screen) Size() (int, int)               { return 64, 48 }
func (screen) Snapshot() (*image.RGBA, error) { return image.NewRGBA(image.Rect(0, 0, 64, 48)), nil }

// inputs records what the server passed on, in order.
type inputs struct {
	mu   sync.Mutex
	list []string
}

func (in *inputs) add(s string) { in.mu.Lock(); in.list = append(in.list, s); in.mu.Unlock() }
func (in *inputs) Key(code uint16, down bool) error {
	in.add(fmt.Sprintf("key %d %v", code, down))
	return nil
}
func (in *inputs) Touch(x, y int, down bool) error {
	in.add(fmt.Sprintf("touch %d,%d %v", x, y, down))
	return nil
}

// TestRunSendsKeyAndTouch runs the client against the VNC server:
// what the server hands its keyboard and touch screen when run returns
// is the key press and release and the touch down and up, in order; bad
// arguments are refused before anything is sent.
func TestRunSendsKeyAndTouch(t *testing.T) {
	tests := []struct {
		name    string
		args    func(sock string) []string
		want    []string
		wantErr string
	}{
		{"a and a touch", func(s string) []string { return []string{"unix:" + s, "0x61", "10", "20"} },
			[]string{"key 30 true", "key 30 false", "touch 10,20 true", "touch 10,20 false"}, ""},
		{"Return in decimal, bottom right", func(s string) []string { return []string{"unix:" + s, "65293", "63", "47"} },
			[]string{"key 28 true", "key 28 false", "touch 63,47 true", "touch 63,47 false"}, ""},
		{"outside the screen", func(s string) []string { return []string{"unix:" + s, "0x61", "64", "0"} }, nil, "outside the 64x48 screen"},
		{"no network", func(s string) []string { return []string{s, "0x61", "1", "1"} }, nil, "want unix:PATH or tcp:HOST:PORT"},
		{"keysym not a number", func(s string) []string { return []string{"unix:" + s, "a", "1", "1"} }, nil, `argument 2 ("a")`},
		{"too few arguments", func(s string) []string { return []string{"unix:" + s, "0x61"} }, nil, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &inputs{}
			s, err := vnc.New(vnc.Config{Screen: screen{}, Keyboard: in, Touch: in, Name: "test"})
			if err != nil {
				t.Fatal(err)
			}
			sock := filepath.Join(t.TempDir(), "vnc.sock")
			l, err := vnc.Listen(vnc.Addr{Network: "unix", Address: sock})
			if err != nil {
				t.Fatal(err)
			}
			go s.Serve(l)
			defer func() { l.Close(); s.Close() }()
			err = run(tt.args(sock), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("run() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run() = %v", err)
			}
			in.mu.Lock()
			defer in.mu.Unlock()
			if !slices.Equal(in.list, tt.want) {
				t.Errorf("server passed on %q, want %q", in.list, tt.want)
			}
		})
	}
}
