package system

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/display/vnc"
	"github.com/tandem-hv/tandem/internal/rfbclient"
)

// fakePicture is what the fake VMM's display shows: a pattern that
// depends on the guest's name.
func fakePicture(guest string) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, 320, 200))
	for i := range img.Pix {
		img.Pix[i] = byte(i*7 + len(guest))
		if i%4 == 3 {
			img.Pix[i] = 0xff
		}
	}
	return img
}

type fakeScreen struct{ img *image.RGBA }

func (f fakeScreen) Size() (int, int)               { return f.img.Rect.Dx(), f.img.Rect.Dy() }
func (f fakeScreen) Snapshot() (*image.RGBA, error) { return f.img, nil }

// serveFakeDisplay serves, as tandem vmm does, the sockets the
// supervisor passes with --display-fd and --vnc-fd: screenshots with the
// supervisor's own code, VNC with the real server, of fakePicture.
func serveFakeDisplay(guest string, args []string) {
	img := fakePicture(guest)
	for i, a := range args {
		if i+1 >= len(args) || a != "--display-fd" && a != "--vnc-fd" {
			continue
		}
		fd, _ := strconv.Atoi(args[i+1])
		f := os.NewFile(uintptr(fd), a)
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			fmt.Printf("%s: %s: %v\n", guest, a, err)
			continue
		}
		if a == "--display-fd" {
			go ServeScreenshots(l, func() (*image.RGBA, error) { return img, nil })
			continue
		}
		s, _ := vnc.New(vnc.Config{Screen: fakeScreen{img}, Name: guest})
		go s.Serve(l)
	}
}

// TestScreenshotAndVNCThroughTheSupervisor: the supervisor makes a
// guest's display sockets and its VMM inherits them: tandem screenshot's
// command returns the VMM's PNG, the VNC socket display.vnc names reaches
// the VMM's server, and a guest without a display says so.
func TestScreenshotAndVNCThroughTheSupervisor(t *testing.T) {
	t.Setenv(fakeVMMEnv, "1")
	dir := guestDir(t)
	vncSock := filepath.Join(dir, "vnc", "shown.vnc")
	manifest := `guests:
  - name: shown
    kernel: vmlinuz
    display: {vnc: "unix:` + vncSock + `"}
  - name: headless
    kernel: vmlinuz
`
	_, sock, _, log := runFakeSystem(t, dir, manifest, 20*time.Second)

	var shot bytes.Buffer
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		shot.Reset()
		if err = Control(sock, "screenshot shown", nil, &shot); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("screenshot shown: %v\nlog:\n%s", err, log.String())
	}
	img, err := png.Decode(&shot)
	if err != nil {
		t.Fatalf("screenshot shown: not a PNG: %v", err)
	}
	want := fakePicture("shown")
	if img.Bounds() != want.Bounds() {
		t.Fatalf("screenshot is %v, want %v", img.Bounds(), want.Bounds())
	}
	for y := range 200 {
		for x := range 320 {
			if r, g, b, _ := img.At(x, y).RGBA(); [3]byte{byte(r >> 8), byte(g >> 8), byte(b >> 8)} != [3]byte(want.Pix[want.PixOffset(x, y):][:3]) {
				t.Fatalf("screenshot pixel (%d, %d) differs from the VMM's picture", x, y)
			}
		}
	}

	c, err := rfbclient.Dial("unix", vncSock)
	if err != nil {
		t.Fatalf("VNC at %s: %v", vncSock, err)
	}
	if c.Name != "shown" || c.W != 320 {
		t.Errorf("VNC ServerInit: %q %dx%d, want the VMM's \"shown\" 320x200", c.Name, c.W, c.H)
	}
	c.Close()

	for _, tt := range []struct{ cmd, want string }{
		{"screenshot headless", `guest "headless" has no display (display: in the manifest)`},
		{"screenshot nobody", `no guest "nobody"`},
	} {
		err := Control(sock, tt.cmd, nil, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.cmd, err, tt.want)
		}
	}
}
