package virtio

import (
	"fmt"
	"image"
	"image/jpeg"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandem-hv/tandem/display/vnc"
	"github.com/tandem-hv/tandem/internal/rfbclient"
	"github.com/tandem-hv/tandem/internal/testenv"
)

// The VNC server in front of the real devices: what a client sees is the
// GPU's Snapshot pixel for pixel, in both encodings, as the test driver
// draws; what it types and touches arrives on the input devices' event
// queues as Linux input events.

// vncFor serves g (and the input devices, if any) to a scripted client
// over a socket pair, with g's flushes as the server's damage.
func vncFor(t *testing.T, g *GPU, kbd, touch *Input) *rfbclient.Client {
	t.Helper()
	cfg := vnc.Config{Screen: g, Name: "test"}
	if kbd != nil {
		cfg.Keyboard = kbd
	}
	if touch != nil {
		cfg.Touch = touch
	}
	s, err := vnc.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g.SetFlushHandler(s.Damage)
	server, client := net.Pipe()
	go s.ServeConn(server)
	c, err := rfbclient.Handshake(client)
	if err != nil {
		t.Fatalf("Handshake() = %v", err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c
}

// sameAsSnapshot checks the client's frame against Snapshot, with black
// where the scanout is smaller than the screen.
func sameAsSnapshot(t *testing.T, c *rfbclient.Client, g *GPU) {
	t.Helper()
	snap, err := g.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < c.H; y++ {
		for x := 0; x < c.W; x++ {
			want := [4]byte{0, 0, 0, 0xff}
			if (image.Point{x, y}).In(snap.Rect) {
				want = [4]byte(snap.Pix[snap.PixOffset(x, y):][:4])
			}
			if got := [4]byte(c.Frame.Pix[c.Frame.PixOffset(x, y):][:4]); got != want {
				t.Fatalf("client's pixel (%d, %d) = %v, Snapshot's %v", x, y, got, want)
			}
		}
	}
}

func TestVNCShowsTheGPU(t *testing.T) {
	tests := []struct {
		name string
		enc  int32
		scan gpuRect // the scanout in a 320×200 resource
	}{
		{"raw", rfbclient.Raw, gpuRect{0, 0, 320, 200}},
		{"zlib", rfbclient.Zlib, gpuRect{0, 0, 320, 200}},
		{"zlib, scanout smaller than the screen", rfbclient.Zlib, gpuRect{20, 10, 100, 80}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGPUDriver(t, GPUConfig{Width: 320, Height: 200}, 32, allRingFeatures)
			c := vncFor(t, d.gpu, nil, nil)
			c.SetEncodings(tt.enc)
			const w, h = 320, 200
			stride := uint64(w * 4)
			es, write := d.scatteredBacking(stride * h)
			draw := func(r gpuRect, seed int) {
				row := make([]byte, r.w*4)
				for y := r.y; y < r.y+r.h; y++ {
					for x := range r.w {
						for i := range 4 {
							row[x*4+uint32(i)] = gpuPattern(int(r.x+x)+seed, int(y), i)
						}
					}
					write(uint64(y)*stride+uint64(r.x)*4, row)
				}
				d.mustOK(transfer(5, r, uint64(r.y)*stride+uint64(r.x)*4))
				d.mustOK(flush(5, r))
			}
			d.mustOK(create2D(5, GPUFormatB8G8R8X8, w, h))
			d.mustOK(attach(5, es...))
			d.mustOK(setScanout(0, 5, tt.scan))
			draw(gpuRect{0, 0, w, h}, 0)
			all := image.Rect(0, 0, w, h)
			if err := c.Request(false, all); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ReadUpdate(5 * time.Second); err != nil {
				t.Fatalf("ReadUpdate() = %v", err)
			}
			sameAsSnapshot(t, c, d.gpu)

			// The guest redraws a part: an incremental request gets that
			// part, in the scanout's coordinates.
			part := gpuRect{40, 30, 25, 17}
			draw(part, 99)
			c.Request(true, all)
			rects, err := c.ReadUpdate(5 * time.Second)
			if err != nil {
				t.Fatalf("ReadUpdate() = %v", err)
			}
			want := part.image().Intersect(tt.scan.image()).Sub(image.Pt(int(tt.scan.x), int(tt.scan.y)))
			if len(rects) != 1 || rects[0].Rectangle != want || rects[0].Encoding != tt.enc {
				t.Errorf("incremental update %v, want %v in encoding %d", rects, want, tt.enc)
			}
			sameAsSnapshot(t, c, d.gpu)
		})
	}
}

func TestVNCInputReachesTheGuest(t *testing.T) {
	g, err := NewGPU(GPUConfig{Width: 320, Height: 200})
	if err != nil {
		t.Fatal(err)
	}
	kbd, touch := NewKeyboard(), newTouch(t, 320, 200)
	drivers := map[*Input]*driver{}
	bufs := map[*Input]map[uint16]uint64{}
	for _, in := range []*Input{kbd, touch} {
		d := newDriver(t, in)
		d.start(allRingFeatures, 2, 16)
		drivers[in], bufs[in] = d, map[uint16]uint64{}
		for i, a := range postEventBuffers(d, 16) {
			bufs[in][uint16(i)] = a
		}
	}
	c := vncFor(t, g, kbd, touch)
	c.Key('q', true)
	c.Key('q', false)
	c.Pointer(1, 300, 150)
	c.Pointer(0, 300, 150)
	syn := inputEvent{evSyn, synReport, 0}
	tests := []struct {
		name string
		in   *Input
		want []inputEvent
	}{
		{"keyboard: q (KEY_Q, 16) down and up", kbd, []inputEvent{{evKey, 16, 1}, syn, {evKey, 16, 0}, syn}},
		{"touch screen: down and up at (300, 150)", touch, []inputEvent{
			{evAbs, absX, 300}, {evAbs, absY, 150}, {evKey, btnTouch, 1}, syn,
			{evAbs, absX, 300}, {evAbs, absY, 150}, {evKey, btnTouch, 0}, syn}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []inputEvent
			for deadline := time.Now().Add(5 * time.Second); len(got) < len(tt.want) && time.Now().Before(deadline); {
				got = append(got, takeEvents(t, drivers[tt.in], bufs[tt.in])...)
				time.Sleep(10 * time.Millisecond)
			}
			if len(got) != len(tt.want) || !equalEvents(got, tt.want) {
				t.Errorf("events %v, want %v", got, tt.want)
			}
		})
	}
}

// TestVNCSnapshotClient: Debian's vncsnapshot, a TightVNC client that
// speaks RFB 3.3, saves the GPU's picture through the server in each
// encoding. It writes JPEG only, so the picture is blocks of flat colour
// on JPEG's 16-pixel grid, which JPEG keeps to within rounding; every
// pixel is compared with Snapshot's.
func TestVNCSnapshotClient(t *testing.T) {
	bin := testenv.RequireCommand(t, "vncsnapshot", "vncsnapshot")
	const w, h, block = 320, 208, 32
	// colours are the blocks' colours, in a diagonal sequence, so that
	// swapped channels or a shifted picture show.
	colours := [][3]byte{{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255}, {0, 0, 0}, {200, 120, 40}, {30, 90, 220}, {128, 128, 128}}
	for _, enc := range []string{"raw", "zlib"} {
		t.Run(enc, func(t *testing.T) {
			d := newGPUDriver(t, GPUConfig{Width: w, Height: h}, 32, allRingFeatures)
			stride := uint64(w * 4)
			es, write := d.scatteredBacking(stride * h)
			row := make([]byte, stride)
			for y := range h {
				for x := range w {
					c := colours[(x/block+y/block)%len(colours)]
					copy(row[x*4:], []byte{c[2], c[1], c[0], 0}) // B8G8R8X8
				}
				write(uint64(y)*stride, row)
			}
			d.mustOK(create2D(5, GPUFormatB8G8R8X8, w, h))
			d.mustOK(attach(5, es...))
			d.mustOK(setScanout(0, 5, gpuRect{0, 0, w, h}))
			d.mustOK(transfer(5, gpuRect{0, 0, w, h}, 0))
			d.mustOK(flush(5, gpuRect{0, 0, w, h}))

			s, err := vnc.New(vnc.Config{Screen: d.gpu, Name: "vncsnapshot test"})
			if err != nil {
				t.Fatal(err)
			}
			d.gpu.SetFlushHandler(s.Damage)
			// vncsnapshot takes a display number: port 5900 + N.
			var l net.Listener
			var display int
			for display = 50; display < 100 && l == nil; display++ {
				l, _ = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 5900+display))
			}
			if l == nil {
				t.Fatal("no free port from 5950 to 5999")
			}
			display--
			defer l.Close()
			go s.Serve(l)
			defer s.Close()
			out := filepath.Join(t.TempDir(), "shot.jpg")
			cmd := exec.Command(bin, "-quiet", "-encodings", enc, "-quality", "100", fmt.Sprintf("127.0.0.1:%d", display), out)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd, err, b)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := jpeg.Decode(f)
			if err != nil {
				t.Fatalf("decoding vncsnapshot's picture: %v", err)
			}
			want, err := d.gpu.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if got.Bounds() != want.Bounds() {
				t.Fatalf("vncsnapshot's picture is %v, Snapshot's %v", got.Bounds(), want.Bounds())
			}
			const tolerance = 2 // JPEG's rounding of flat blocks (0 measured)
			worst := 0
			for y := range h {
				for x := range w {
					r, g, b, _ := got.At(x, y).RGBA()
					wp := want.RGBAAt(x, y)
					for i, pair := range [][2]int{{int(r >> 8), int(wp.R)}, {int(g >> 8), int(wp.G)}, {int(b >> 8), int(wp.B)}} {
						d := max(pair[0]-pair[1], pair[1]-pair[0])
						worst = max(worst, d)
						if d > tolerance {
							t.Fatalf("pixel (%d, %d) channel %d = %d in vncsnapshot's picture, %d in Snapshot", x, y, i, pair[0], pair[1])
						}
					}
				}
			}
			t.Logf("largest difference from Snapshot: %d", worst)
		})
	}
}
