package virtio

import (
	"encoding/binary"
	"fmt"
	"image"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The virtio-gpu tests drive the device as Linux's virtio_gpu driver
// does: each control command is a chain of the request (device-readable)
// and room for the response (device-writable) on queue 0; cursor
// commands go on queue 1 without room for a response.

// gpuDriver is the test driver of a started GPU.
type gpuDriver struct {
	*driver
	gpu *GPU
}

// newGPUDriver starts a GPU of cfg on ramMiB MiB of guest RAM with
// features negotiated.
func newGPUDriver(t testing.TB, cfg GPUConfig, ramMiB uint64, features uint64) *gpuDriver {
	t.Helper()
	g, err := NewGPU(cfg)
	if err != nil {
		t.Fatalf("NewGPU(%+v) = %v", cfg, err)
	}
	g.SetWarnings(nil)
	d := newDriverSized(t, g, ramMiB<<20)
	d.start(features, 2, 16)
	return &gpuDriver{d, g}
}

// gpuReq builds a request: the header of type typ, then the fields as
// little-endian u32 (uint32) or u64 (uint64).
func gpuReq(typ uint32, fields ...any) []byte {
	b := make([]byte, gpuHdrSize)
	binary.LittleEndian.PutUint32(b, typ)
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, v)
		case int:
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case uint64:
			b = binary.LittleEndian.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("gpuReq: field %T", f))
		}
	}
	return b
}

// memEntries encodes struct virtio_gpu_mem_entry for each [addr, len].
func memEntries(es ...[2]uint64) []byte {
	var b []byte
	for _, e := range es {
		b = binary.LittleEndian.AppendUint64(b, e[0])
		b = binary.LittleEndian.AppendUint32(b, uint32(e[1]))
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return b
}

// do sends req on the control queue with room for a response of
// respLen bytes and returns what the device wrote.
func (d *gpuDriver) do(req []byte, respLen int) []byte {
	d.t.Helper()
	q := d.q[gpuControlQueue]
	a := d.allocate(uint64(len(req)))
	d.write(a, req)
	r := d.allocate(uint64(respLen))
	d.write(r, make([]byte, respLen))
	head := d.add(q, buf{a, uint32(len(req)), false}, buf{r, uint32(respLen), true})
	d.kick(q)
	used := d.takeUsed(q)
	if len(used) != 1 || used[0].id != uint32(head) {
		d.t.Fatalf("command %#x: used ring = %v, want head %d", le32(req), used, head)
	}
	return d.read(r, int(used[0].len))
}

// cmd sends a request whose response is a bare header and returns its
// type.
func (d *gpuDriver) cmd(req []byte) uint32 {
	d.t.Helper()
	resp := d.do(req, gpuHdrSize)
	if len(resp) != gpuHdrSize {
		d.t.Fatalf("command %#x: %d response bytes, want %d", le32(req), len(resp), gpuHdrSize)
	}
	return le32(resp)
}

// mustOK sends req and fails the test unless the device answers OK_NODATA.
func (d *gpuDriver) mustOK(req []byte) {
	d.t.Helper()
	if got := d.cmd(req); got != gpuRespOKNoData {
		d.t.Fatalf("command %#x = %s, want OK_NODATA", le32(req), gpuRespName(got))
	}
}

func create2D(id, format, w, h uint32) []byte {
	return gpuReq(gpuCmdResourceCreate2D, id, format, w, h)
}

func attach(id uint32, es ...[2]uint64) []byte {
	return gpuReq(gpuCmdResourceAttachBacking, id, uint32(len(es)), memEntries(es...))
}

func setScanout(scanout, id uint32, r gpuRect) []byte {
	return gpuReq(gpuCmdSetScanout, r.x, r.y, r.w, r.h, scanout, id)
}

func transfer(id uint32, r gpuRect, off uint64) []byte {
	return gpuReq(gpuCmdTransferToHost2D, r.x, r.y, r.w, r.h, off, id, uint32(0))
}

func flush(id uint32, r gpuRect) []byte {
	return gpuReq(gpuCmdResourceFlush, r.x, r.y, r.w, r.h, id, uint32(0))
}

// scatteredBacking allocates n bytes of guest memory as page-sized
// pieces in reverse order, so that consecutive backing offsets are never
// adjacent in guest memory; it returns the entries and, for the test to
// fill the backing, a function writing b at backing offset off.
func (d *gpuDriver) scatteredBacking(n uint64) ([][2]uint64, func(off uint64, b []byte)) {
	const page = 4096
	pages := (n + page - 1) / page
	base := d.allocate(pages * page)
	var es [][2]uint64
	for i := uint64(0); i < pages; i++ {
		l := min(uint64(page), n-i*page)
		es = append(es, [2]uint64{base + (pages-1-i)*page, l})
	}
	write := func(off uint64, b []byte) {
		for len(b) > 0 {
			i := off / page
			k := min(uint64(len(b)), page-off%page)
			d.write(es[i][0]+off%page, b[:k])
			b, off = b[k:], off+k
		}
	}
	return es, write
}

func TestGPUConfigSpace(t *testing.T) {
	d := newGPUDriver(t, GPUConfig{}, 4, allRingFeatures|1<<GPUFeatureEDID)
	d.gpu.mu.Lock()
	d.gpu.events = gpuEventDisplay | 0x100
	d.gpu.mu.Unlock()
	tests := []struct {
		name  string
		clear uint32 // written to events_clear first
		off   uint64
		want  uint32
	}{
		{"events_read shows pending events", 0, 0, gpuEventDisplay | 0x100},
		{"events_clear reads zero", 0, gpuConfigEventsClear, 0},
		{"num_scanouts is one", 0, gpuConfigNumScanouts, 1},
		{"num_capsets is zero without VIRGL", 0, 12, 0},
		{"past the end reads zero", 0, gpuConfigSize, 0},
		{"events_clear clears the bits written", gpuEventDisplay, 0, 0x100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.clear != 0 {
				d.w32(regConfig+gpuConfigEventsClear, tt.clear)
			}
			if got := d.r32(regConfig + tt.off); got != tt.want {
				t.Errorf("config at %#x = %#x, want %#x", tt.off, got, tt.want)
			}
		})
	}
}

func TestGPUIdentifies(t *testing.T) {
	d := newGPUDriver(t, GPUConfig{}, 4, allRingFeatures)
	if got := d.r32(regDeviceID); got != IDGPU {
		t.Errorf("DeviceID = %d, want %d", got, IDGPU)
	}
	d.w32(regDeviceFeaturesSel, 0)
	if got := d.r32(regDeviceFeatures); got&(1<<GPUFeatureEDID) == 0 || got&(1<<GPUFeatureVirgl) != 0 {
		t.Errorf("DeviceFeatures = %#x, want EDID and not VIRGL", got)
	}
}

func TestNewGPURefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  GPUConfig
	}{
		{"narrower than the minimum", GPUConfig{Width: 100, Height: 720}},
		{"wider than a detailed timing holds", GPUConfig{Width: 4096, Height: 2160}},
		{"only a width", GPUConfig{Width: 1280}},
		{"memory below one scanout", GPUConfig{Width: 1280, Height: 720, MaxMemory: 1 << 20}},
		{"memory above the maximum", GPUConfig{MaxMemory: MaxGPUMemory + 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if g, err := NewGPU(tt.cfg); err == nil {
				t.Errorf("NewGPU(%+v) = %v, nil; want an error", tt.cfg, g)
			}
		})
	}
}

func TestGPUDisplayInfo(t *testing.T) {
	tests := []struct {
		name string
		cfg  GPUConfig
		w, h uint32
	}{
		{"default mode", GPUConfig{}, 1280, 720},
		{"configured mode", GPUConfig{Width: 1920, Height: 1080}, 1920, 1080},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGPUDriver(t, tt.cfg, 4, allRingFeatures)
			resp := d.do(gpuReq(gpuCmdGetDisplayInfo), gpuRespDisplayInfo)
			if len(resp) != gpuRespDisplayInfo || le32(resp) != gpuRespOKDisplayInfo {
				t.Fatalf("GET_DISPLAY_INFO = %d bytes of type %#x, want %d of OK_DISPLAY_INFO", len(resp), le32(resp), gpuRespDisplayInfo)
			}
			p := resp[gpuHdrSize:]
			if got := readRect(p); got != (gpuRect{0, 0, tt.w, tt.h}) || le32(p[16:]) != 1 {
				t.Errorf("scanout 0 = %+v enabled %d, want 0,0 %dx%d enabled", got, le32(p[16:]), tt.w, tt.h)
			}
			for i := 1; i < gpuMaxScanouts; i++ {
				if o := p[i*gpuDisplayOneSize:][:gpuDisplayOneSize]; string(o) != string(make([]byte, gpuDisplayOneSize)) {
					t.Errorf("scanout %d = %x, want all zero (absent)", i, o)
				}
			}
		})
	}
}

func TestGPUFenceEchoed(t *testing.T) {
	d := newGPUDriver(t, GPUConfig{}, 4, allRingFeatures)
	tests := []struct {
		name string
		req  []byte
		want uint32
	}{
		{"on success", create2D(1, GPUFormatB8G8R8X8, 8, 8), gpuRespOKNoData},
		{"on an error", create2D(0, GPUFormatB8G8R8X8, 8, 8), gpuRespErrInvalidResourceID},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fence := 0x1122334455667700 + uint64(i)
			binary.LittleEndian.PutUint32(tt.req[4:], gpuFlagFence)
			binary.LittleEndian.PutUint64(tt.req[8:], fence)
			binary.LittleEndian.PutUint32(tt.req[16:], 7) // ctx_id
			resp := d.do(tt.req, gpuHdrSize)
			if le32(resp) != tt.want || le32(resp[4:])&gpuFlagFence == 0 || le64(resp[8:]) != fence || le32(resp[16:]) != 7 {
				t.Errorf("response = type %#x flags %#x fence %#x ctx %d, want %#x, FENCE, %#x, 7",
					le32(resp), le32(resp[4:]), le64(resp[8:]), le32(resp[16:]), tt.want, fence)
			}
		})
	}
}

// gpuPattern is the byte at offset i of a pixel (x, y) in the guest's
// buffer: every pixel and every byte of it differs from its neighbours.
func gpuPattern(x, y, i int) byte { return byte(x*7 + y*13 + i*61) }

func TestGPUDrawsPatternPixelExact(t *testing.T) {
	tests := []struct {
		name    string
		format  uint32
		r, g, b int // bytes of a pixel that hold red, green and blue
		w, h    uint32
		// The scanout's rectangle in the resource.
		scan gpuRect
	}{
		{"B8G8R8X8 (Linux's XRGB8888) full screen", GPUFormatB8G8R8X8, 2, 1, 0, 1280, 720, gpuRect{0, 0, 1280, 720}},
		{"B8G8R8A8 small scanout", GPUFormatB8G8R8A8, 2, 1, 0, 64, 48, gpuRect{0, 0, 64, 48}},
		{"R8G8B8A8", GPUFormatR8G8B8A8, 0, 1, 2, 64, 48, gpuRect{0, 0, 64, 48}},
		{"R8G8B8X8", GPUFormatR8G8B8X8, 0, 1, 2, 40, 30, gpuRect{0, 0, 40, 30}},
		{"A8R8G8B8", GPUFormatA8R8G8B8, 1, 2, 3, 64, 48, gpuRect{0, 0, 64, 48}},
		{"X8R8G8B8", GPUFormatX8R8G8B8, 1, 2, 3, 64, 48, gpuRect{0, 0, 64, 48}},
		{"X8B8G8R8", GPUFormatX8B8G8R8, 3, 2, 1, 64, 48, gpuRect{0, 0, 64, 48}},
		{"A8B8G8R8", GPUFormatA8B8G8R8, 3, 2, 1, 64, 48, gpuRect{0, 0, 64, 48}},
		{"scanout of a part of a larger resource", GPUFormatB8G8R8X8, 2, 1, 0, 100, 80, gpuRect{10, 20, 50, 40}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGPUDriver(t, GPUConfig{}, 32, allRingFeatures)
			var mu sync.Mutex
			var damage []image.Rectangle
			d.gpu.SetFlushHandler(func(r image.Rectangle) {
				mu.Lock()
				damage = append(damage, r)
				mu.Unlock()
			})
			stride := uint64(tt.w) * 4
			es, write := d.scatteredBacking(stride * uint64(tt.h))
			row := make([]byte, stride)
			for y := 0; y < int(tt.h); y++ {
				for x := 0; x < int(tt.w); x++ {
					for i := 0; i < 4; i++ {
						row[x*4+i] = gpuPattern(x, y, i)
					}
				}
				write(uint64(y)*stride, row)
			}
			d.mustOK(create2D(5, tt.format, tt.w, tt.h))
			d.mustOK(attach(5, es...))
			d.mustOK(setScanout(0, 5, tt.scan))
			d.mustOK(transfer(5, gpuRect{0, 0, tt.w, tt.h}, 0))
			d.mustOK(flush(5, gpuRect{0, 0, tt.w, tt.h}))

			img, err := d.gpu.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if want := image.Rect(0, 0, int(tt.scan.w), int(tt.scan.h)); img.Bounds() != want {
				t.Fatalf("Snapshot() bounds = %v, want %v", img.Bounds(), want)
			}
			bad := 0
			for y := 0; y < int(tt.scan.h); y++ {
				for x := 0; x < int(tt.scan.w); x++ {
					sx, sy := x+int(tt.scan.x), y+int(tt.scan.y)
					want := [4]byte{gpuPattern(sx, sy, tt.r), gpuPattern(sx, sy, tt.g), gpuPattern(sx, sy, tt.b), 0xff}
					got := [4]byte(img.Pix[y*img.Stride+x*4:][:4])
					if got != want && bad < 5 {
						t.Errorf("pixel (%d, %d) = %v, want %v", x, y, got, want)
						bad++
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			full := image.Rect(0, 0, int(tt.scan.w), int(tt.scan.h))
			if len(damage) != 2 || damage[0] != full || damage[1] != full {
				t.Errorf("flush handler saw %v, want the whole screen at SET_SCANOUT, then %v at the flush", damage, full)
			}
			if got := d.gpu.Flushes(); got != 1 {
				t.Errorf("Flushes() = %d, want 1", got)
			}
		})
	}
}

func TestGPUPartialTransferChangesOnlyItsRectangle(t *testing.T) {
	const w, h = 32, 24
	d := newGPUDriver(t, GPUConfig{}, 4, allRingFeatures)
	es, write := d.scatteredBacking(w * h * 4)
	write(0, make([]byte, w*h*4))
	d.mustOK(create2D(1, GPUFormatR8G8B8X8, w, h))
	d.mustOK(attach(1, es...))
	d.mustOK(setScanout(0, 1, gpuRect{0, 0, w, h}))
	d.mustOK(transfer(1, gpuRect{0, 0, w, h}, 0))
	// The guest paints everything white, but transfers only a 5×3
	// rectangle at (7, 9), as Linux does: offset is the first pixel's.
	white := make([]byte, w*h*4)
	for i := range white {
		white[i] = 0xff
	}
	write(0, white)
	r := gpuRect{7, 9, 5, 3}
	d.mustOK(transfer(1, r, uint64(r.y*w*4+r.x*4)))
	var got image.Rectangle
	d.gpu.SetFlushHandler(func(r image.Rectangle) { got = r })
	d.mustOK(flush(1, r))
	if got != r.image() {
		t.Errorf("damage = %v, want %v", got, r.image())
	}
	img, err := d.gpu.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			want := byte(0)
			if image.Pt(x, y).In(r.image()) {
				want = 0xff
			}
			if p := img.Pix[y*img.Stride+x*4:]; p[0] != want || p[1] != want || p[2] != want {
				t.Fatalf("pixel (%d, %d) = %v, want %#x", x, y, p[:4], want)
			}
		}
	}
}

// checkAccounting checks the GPU's totals against its resources and bounds.
func (g *GPU) checkAccounting() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var used uint64
	entries := 0
	for _, r := range g.resources {
		used += uint64(len(r.pix))
		entries += len(r.backing)
	}
	switch {
	case used != g.used || entries != g.entries:
		return fmt.Errorf("GPU accounts for %d bytes and %d entries, its resources hold %d and %d", g.used, g.entries, used, entries)
	case g.used > g.maxMemory || len(g.resources) > gpuMaxResources || g.entries > gpuMaxEntries:
		return fmt.Errorf("GPU holds %d bytes (max %d), %d resources, %d entries", g.used, g.maxMemory, len(g.resources), g.entries)
	}
	return nil
}

func TestGPUMalformedCommands(t *testing.T) {
	const ramMiB = 4
	ramEnd := uint64(ramBase + ramMiB<<20)
	fmtX := uint32(GPUFormatB8G8R8X8)
	rect := func(x, y, w, h uint32) gpuRect { return gpuRect{x, y, w, h} }
	tests := []struct {
		name  string
		setup func(d *gpuDriver) // commands before, each must succeed
		req   func(d *gpuDriver) []byte
		want  uint32
	}{
		// Resource creation.
		{name: "resource id 0", req: func(*gpuDriver) []byte { return create2D(0, fmtX, 8, 8) }, want: gpuRespErrInvalidResourceID},
		{name: "resource id in use (overlapping resources)",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return create2D(1, fmtX, 16, 16) }, want: gpuRespErrInvalidResourceID},
		{name: "format 0", req: func(*gpuDriver) []byte { return create2D(1, 0, 8, 8) }, want: gpuRespErrInvalidParameter},
		{name: "format 5 (between known ones)", req: func(*gpuDriver) []byte { return create2D(1, 5, 8, 8) }, want: gpuRespErrInvalidParameter},
		{name: "format 0xffffffff", req: func(*gpuDriver) []byte { return create2D(1, 0xffffffff, 8, 8) }, want: gpuRespErrInvalidParameter},
		{name: "width 0", req: func(*gpuDriver) []byte { return create2D(1, fmtX, 0, 8) }, want: gpuRespErrInvalidParameter},
		{name: "height 0", req: func(*gpuDriver) []byte { return create2D(1, fmtX, 8, 0) }, want: gpuRespErrInvalidParameter},
		{name: "wider than 16384", req: func(*gpuDriver) []byte { return create2D(1, fmtX, gpuMaxDim+1, 1) }, want: gpuRespErrInvalidParameter},
		{name: "4 GiB pixels each side", req: func(*gpuDriver) []byte { return create2D(1, fmtX, 0xffffffff, 0xffffffff) }, want: gpuRespErrInvalidParameter},
		{name: "huge resource: 16384x16384 is 1 GiB", req: func(*gpuDriver) []byte { return create2D(1, fmtX, gpuMaxDim, gpuMaxDim) }, want: gpuRespErrOutOfMemory},
		{name: "resources together past the memory limit",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 4096, 4096)) }, // 64 MiB: all of it
			req:   func(*gpuDriver) []byte { return create2D(2, fmtX, 1, 1) }, want: gpuRespErrOutOfMemory},
		{name: "more resources than the limit",
			setup: func(d *gpuDriver) {
				for id := uint32(1); id <= gpuMaxResources; id++ {
					d.mustOK(create2D(id, fmtX, 1, 1))
				}
			},
			req: func(*gpuDriver) []byte { return create2D(gpuMaxResources+1, fmtX, 1, 1) }, want: gpuRespErrOutOfMemory},
		{name: "unref of no resource", req: func(*gpuDriver) []byte { return gpuReq(gpuCmdResourceUnref, 9, 0) }, want: gpuRespErrInvalidResourceID},
		{name: "unref twice",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)); d.mustOK(gpuReq(gpuCmdResourceUnref, 1, 0)) },
			req:   func(*gpuDriver) []byte { return gpuReq(gpuCmdResourceUnref, 1, 0) }, want: gpuRespErrInvalidResourceID},

		// Backing.
		{name: "backing for no resource", req: func(d *gpuDriver) []byte { return attach(3, [2]uint64{d.allocate(4096), 4096}) }, want: gpuRespErrInvalidResourceID},
		{name: "backing at address 0, outside RAM",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return attach(1, [2]uint64{0, 256}) }, want: gpuRespErrInvalidParameter},
		{name: "backing crosses the end of RAM",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return attach(1, [2]uint64{ramEnd - 128, 256}) }, want: gpuRespErrInvalidParameter},
		{name: "backing address plus length wraps",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return attach(1, [2]uint64{^uint64(0) - 16, 256}) }, want: gpuRespErrInvalidParameter},
		{name: "second backing entry outside RAM",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req: func(d *gpuDriver) []byte {
				return attach(1, [2]uint64{d.allocate(128), 128}, [2]uint64{1 << 40, 128})
			}, want: gpuRespErrInvalidParameter},
		{name: "backing of no entries",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return attach(1) }, want: gpuRespErrInvalidParameter},
		{name: "more entries than one command may carry",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req: func(*gpuDriver) []byte {
				return gpuReq(gpuCmdResourceAttachBacking, 1, uint32(gpuMaxEntriesPerAttach+1))
			}, want: gpuRespErrInvalidParameter},
		{name: "nr_entries larger than the entries sent",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req: func(d *gpuDriver) []byte {
				return gpuReq(gpuCmdResourceAttachBacking, 1, uint32(3), memEntries([2]uint64{d.allocate(64), 64}))
			}, want: gpuRespErrUnspec},
		{name: "backing attached twice",
			setup: func(d *gpuDriver) {
				d.mustOK(create2D(1, fmtX, 8, 8))
				d.mustOK(attach(1, [2]uint64{d.allocate(256), 256}))
			},
			req: func(d *gpuDriver) []byte { return attach(1, [2]uint64{d.allocate(256), 256}) }, want: gpuRespErrUnspec},
		{name: "detach from no resource", req: func(*gpuDriver) []byte { return gpuReq(gpuCmdResourceDetachBacking, 4, 0) }, want: gpuRespErrInvalidResourceID},

		// Transfers.
		{name: "transfer to no resource", req: func(*gpuDriver) []byte { return transfer(2, rect(0, 0, 1, 1), 0) }, want: gpuRespErrInvalidResourceID},
		{name: "transfer without backing",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return transfer(1, rect(0, 0, 8, 8), 0) }, want: gpuRespErrUnspec},
		{name: "transfer rectangle past the resource",
			setup: withBacking(8, 8, 256),
			req:   func(*gpuDriver) []byte { return transfer(1, rect(4, 0, 5, 8), 0) }, want: gpuRespErrInvalidParameter},
		{name: "transfer rectangle whose x + width wraps",
			setup: withBacking(8, 8, 256),
			req:   func(*gpuDriver) []byte { return transfer(1, rect(0xfffffff8, 0, 16, 1), 0) }, want: gpuRespErrInvalidParameter},
		{name: "transfer past the end of the backing",
			setup: withBacking(8, 8, 128), // half of the 256 bytes it needs
			req:   func(*gpuDriver) []byte { return transfer(1, rect(0, 0, 8, 8), 0) }, want: gpuRespErrInvalidParameter},
		{name: "transfer offset past the backing",
			setup: withBacking(8, 8, 256),
			req:   func(*gpuDriver) []byte { return transfer(1, rect(0, 0, 1, 1), 256) }, want: gpuRespErrInvalidParameter},
		{name: "transfer offset that wraps with the rectangle",
			setup: withBacking(8, 8, 256),
			req:   func(*gpuDriver) []byte { return transfer(1, rect(0, 0, 8, 8), ^uint64(0)-64) }, want: gpuRespErrInvalidParameter},

		// Scanout.
		{name: "scanout 1 of one",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return setScanout(1, 1, rect(0, 0, 8, 8)) }, want: gpuRespErrInvalidScanoutID},
		{name: "scanout 0xffffffff", req: func(*gpuDriver) []byte { return setScanout(0xffffffff, 0, rect(0, 0, 0, 0)) }, want: gpuRespErrInvalidScanoutID},
		{name: "scanout of no resource", req: func(*gpuDriver) []byte { return setScanout(0, 8, rect(0, 0, 8, 8)) }, want: gpuRespErrInvalidResourceID},
		{name: "scanout larger than the display's maximum",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 1920, 1080)) },
			req:   func(*gpuDriver) []byte { return setScanout(0, 1, rect(0, 0, 1920, 1080)) }, want: gpuRespErrInvalidParameter},
		{name: "scanout rectangle past the resource",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 64, 64)) },
			req:   func(*gpuDriver) []byte { return setScanout(0, 1, rect(32, 32, 64, 64)) }, want: gpuRespErrInvalidParameter},
		{name: "scanout rectangle whose y + height wraps",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 64, 64)) },
			req:   func(*gpuDriver) []byte { return setScanout(0, 1, rect(0, 0xffffffff, 64, 2)) }, want: gpuRespErrInvalidParameter},

		// Flush and the rest.
		{name: "flush of no resource", req: func(*gpuDriver) []byte { return flush(6, rect(0, 0, 1, 1)) }, want: gpuRespErrInvalidResourceID},
		{name: "flush rectangle past the resource",
			setup: func(d *gpuDriver) { d.mustOK(create2D(1, fmtX, 8, 8)) },
			req:   func(*gpuDriver) []byte { return flush(1, rect(0, 0, 9, 8)) }, want: gpuRespErrInvalidParameter},
		{name: "EDID of scanout 1", req: func(*gpuDriver) []byte { return gpuReq(gpuCmdGetEDID, 1, 0) }, want: gpuRespErrInvalidScanoutID},
		{name: "3D command (CTX_CREATE) without VIRGL", req: func(*gpuDriver) []byte { return gpuReq(0x0200, 1, 0) }, want: gpuRespErrUnspec},
		{name: "unknown command type", req: func(*gpuDriver) []byte { return gpuReq(0xdead) }, want: gpuRespErrUnspec},
		{name: "cursor command on the control queue", req: func(*gpuDriver) []byte { return gpuReq(gpuCmdMoveCursor, make([]byte, 32)) }, want: gpuRespErrUnspec},
		{name: "request cut short after its header", req: func(*gpuDriver) []byte { return gpuReq(gpuCmdResourceCreate2D, 1, fmtX) }, want: gpuRespErrUnspec},
		{name: "request shorter than a header", req: func(*gpuDriver) []byte { return []byte{0x01, 0x01} }, want: gpuRespErrUnspec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGPUDriver(t, GPUConfig{}, ramMiB, allRingFeatures|1<<GPUFeatureEDID)
			if tt.setup != nil {
				tt.setup(d)
			}
			if got := d.cmd(tt.req(d)); got != tt.want {
				t.Errorf("response = %s, want %s", gpuRespName(got), gpuRespName(tt.want))
			}
			if s := d.status(); s&StatusDeviceNeedsReset != 0 {
				t.Errorf("Status = %#x: a refused command must not fail the device", s)
			}
			if err := d.gpu.checkAccounting(); err != nil {
				t.Error(err)
			}
			if got := le32(d.do(gpuReq(gpuCmdGetDisplayInfo), gpuRespDisplayInfo)); got != gpuRespOKDisplayInfo {
				t.Errorf("GET_DISPLAY_INFO afterwards = %#x, want OK_DISPLAY_INFO", got)
			}
		})
	}
}

// withBacking creates resource 1 of w×h with n bytes of backing.
func withBacking(w, h uint32, n uint64) func(d *gpuDriver) {
	return func(d *gpuDriver) {
		d.mustOK(create2D(1, GPUFormatB8G8R8X8, w, h))
		d.mustOK(attach(1, [2]uint64{d.allocate(n), n}))
	}
}

func TestGPUUnrefAndResetBlankTheScanout(t *testing.T) {
	tests := []struct {
		name  string
		blank func(d *gpuDriver)
	}{
		{"resource unref", func(d *gpuDriver) { d.mustOK(gpuReq(gpuCmdResourceUnref, 1, 0)) }},
		{"scanout set to resource 0", func(d *gpuDriver) { d.mustOK(setScanout(0, 0, gpuRect{})) }},
		{"device reset", func(d *gpuDriver) { d.start(allRingFeatures, 2, 16) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGPUDriver(t, GPUConfig{Width: 320, Height: 200}, 4, allRingFeatures)
			withBacking(320, 200, 320*200*4)(d)
			white := make([]byte, 320*200*4)
			for i := range white {
				white[i] = 0xff
			}
			es := d.gpu.resources[1].backing
			copy(es[0], white)
			d.mustOK(setScanout(0, 1, gpuRect{0, 0, 320, 200}))
			d.mustOK(transfer(1, gpuRect{0, 0, 320, 200}, 0))
			tt.blank(d)
			img, err := d.gpu.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			if img.Bounds() != image.Rect(0, 0, 320, 200) || img.Pix[0] != 0 || img.Pix[3] != 0xff {
				t.Errorf("Snapshot() = %v starting %v, want an opaque black 320x200", img.Bounds(), img.Pix[:4])
			}
			if err := d.gpu.checkAccounting(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestGPUCursor(t *testing.T) {
	d := newGPUDriver(t, GPUConfig{}, 4, allRingFeatures)
	const side = gpuCursorSize
	es, write := d.scatteredBacking(side * side * 4)
	px := make([]byte, side*side*4)
	for i := 0; i < len(px); i += 4 {
		copy(px[i:], []byte{0x10, 0x20, 0x30, 0x80}) // B, G, R, A
	}
	write(0, px)
	d.mustOK(create2D(9, GPUFormatB8G8R8A8, side, side))
	d.mustOK(attach(9, es...))
	d.mustOK(transfer(9, gpuRect{0, 0, side, side}, 0))
	cursor := func(cmd, scanout uint32, x, y int32, id, hx, hy uint32) uint32 {
		// As Linux does: the request alone, no room for a response.
		q := d.q[gpuCursorQueue]
		req := gpuReq(cmd, scanout, uint32(x), uint32(y), uint32(0), id, hx, hy, uint32(0))
		a := d.allocate(uint64(len(req)))
		d.write(a, req)
		d.add(q, buf{a, uint32(len(req)), false})
		d.kick(q)
		used := d.takeUsed(q)
		if len(used) != 1 {
			t.Fatalf("cursor command %#x: used ring %v, want one element", cmd, used)
		}
		return used[0].len
	}
	tests := []struct {
		name string
		run  func() uint32
		want GPUCursor
	}{
		{"update shows the resource", func() uint32 { return cursor(gpuCmdUpdateCursor, 0, 100, 50, 9, 3, 4) },
			GPUCursor{Visible: true, X: 100, Y: 50, HotX: 3, HotY: 4}},
		{"move keeps the image", func() uint32 { return cursor(gpuCmdMoveCursor, 0, -2, 700, 0, 0, 0) },
			GPUCursor{Visible: true, X: -2, Y: 700, HotX: 3, HotY: 4}},
		{"update of a resource larger than 64x64 is refused", func() uint32 {
			d.mustOK(create2D(10, GPUFormatB8G8R8A8, side+1, side))
			return cursor(gpuCmdUpdateCursor, 0, 1, 1, 10, 0, 0)
		}, GPUCursor{Visible: true, X: 1, Y: 1, HotX: 3, HotY: 4}},
		{"update to resource 0 hides it", func() uint32 { return cursor(gpuCmdUpdateCursor, 0, 5, 6, 0, 0, 0) },
			GPUCursor{X: 5, Y: 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := tt.run(); n != 0 {
				t.Errorf("used length = %d, want 0 (no room for a response)", n)
			}
			got := d.gpu.Cursor()
			img := got.Image
			got.Image = nil
			if got != tt.want {
				t.Errorf("Cursor() = %+v, want %+v", got, tt.want)
			}
			if tt.want.Visible {
				if img == nil || img.Bounds() != image.Rect(0, 0, side, side) || [4]byte(img.Pix[:4]) != [4]byte{0x30, 0x20, 0x10, 0x80} {
					t.Errorf("cursor image = %v, want 64x64 of RGBA 30 20 10 80", img)
				}
			} else if img != nil {
				t.Errorf("hidden cursor has an image")
			}
		})
	}
}

// BenchmarkGPUFrame is one full 1280x720 frame through the device as a
// guest's driver sends it: TRANSFER_TO_HOST_2D from scattered guest
// pages, then RESOURCE_FLUSH, each through the control queue. Besides
// the time per frame it reports the process's CPU time per frame
// (cpu-ns/frame, getrusage: user and system, every thread): what a
// flushed frame costs the host, which make bench prints.
func BenchmarkGPUFrame(b *testing.B) {
	const w, h = 1280, 720
	d := newGPUDriver(b, GPUConfig{}, 32, allRingFeatures)
	es, _ := d.scatteredBacking(w * h * 4)
	d.mustOK(create2D(1, GPUFormatB8G8R8X8, w, h))
	d.mustOK(attach(1, es...))
	d.mustOK(setScanout(0, 1, gpuRect{0, 0, w, h}))
	full := gpuRect{0, 0, w, h}
	tr, fl := transfer(1, full, 0), flush(1, full)
	b.SetBytes(w * h * 4)
	before := cpuTime(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.mustOK(tr)
		d.mustOK(fl)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-before)/float64(b.N), "cpu-ns/frame")
}

// cpuTime is the process's CPU time so far, user and system, in
// nanoseconds.
func cpuTime(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func BenchmarkGPUSnapshot(b *testing.B) {
	const w, h = 1280, 720
	d := newGPUDriver(b, GPUConfig{}, 32, allRingFeatures)
	withBacking(w, h, w*h*4)(d)
	d.mustOK(setScanout(0, 1, gpuRect{0, 0, w, h}))
	b.SetBytes(w * h * 4)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := d.gpu.Snapshot(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestGPUStructSizes pins the sizes of the structs the device mirrors
// against include/uapi/linux/virtio_gpu.h.
func TestGPUStructSizes(t *testing.T) {
	tests := []struct {
		name      string
		got, want int
	}{
		{"struct virtio_gpu_ctrl_hdr", gpuHdrSize, 24},
		{"struct virtio_gpu_resp_display_info", gpuRespDisplayInfo, 408},
		{"struct virtio_gpu_resp_edid", gpuRespEDIDSize, 1056},
		{"struct virtio_gpu_get_edid", gpuGetEDIDSize, 32},
		{"struct virtio_gpu_resource_create_2d", gpuCreate2DSize, 40},
		{"struct virtio_gpu_resource_unref", gpuUnrefSize, 32},
		{"struct virtio_gpu_set_scanout", gpuSetScanoutSize, 48},
		{"struct virtio_gpu_resource_flush", gpuFlushSize, 48},
		{"struct virtio_gpu_transfer_to_host_2d", gpuTransferSize, 56},
		{"struct virtio_gpu_resource_attach_backing", gpuAttachSize, 32},
		{"struct virtio_gpu_mem_entry", gpuMemEntrySize, 16},
		{"struct virtio_gpu_resource_detach_backing", gpuDetachSize, 32},
		{"struct virtio_gpu_update_cursor", gpuUpdateCursorSize, 56},
		{"struct virtio_gpu_config", gpuConfigSize, 16},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %d bytes, want %d", tt.name, tt.got, tt.want)
		}
	}
}
