package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/hv/mem"
)

// virtio-gpu in 2D mode (spec §5.7): resources in host memory that the
// guest fills from its own pages by TRANSFER_TO_HOST_2D, one scanout that
// shows a rectangle of one resource, and a cursor. No 3D (VIRGL), blob
// resources or capability sets.
//
// Bounds: what a guest can make the VMM hold is at most MaxMemory bytes
// of resource pixels (GPUConfig; DefaultGPUMemory unless set), in at most
// gpuMaxResources resources, each at most gpuMaxDim pixels a side; at
// most gpuMaxEntries scatter-list entries across all resources' backing
// (gpuMaxEntriesPerAttach in one command), each backing at most
// gpuMaxBacking bytes; and one cursor image of at most 64×64 pixels.
// A command that would pass a bound is answered with
// VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY.

// Feature bits (spec §5.7.3).
const (
	GPUFeatureVirgl = 0 // VIRTIO_GPU_F_VIRGL: 3D; not offered
	GPUFeatureEDID  = 1 // VIRTIO_GPU_F_EDID
)

// virtio-gpu queues (spec §5.7.2).
const (
	gpuControlQueue = 0
	gpuCursorQueue  = 1
)

// gpuEventDisplay is VIRTIO_GPU_EVENT_DISPLAY in events_read (spec
// §5.7.4): the display configuration changed.
const gpuEventDisplay = 1

// Command and response types (spec §5.7.6.7, enum virtio_gpu_ctrl_type).
const (
	gpuCmdGetDisplayInfo        = 0x0100
	gpuCmdResourceCreate2D      = 0x0101
	gpuCmdResourceUnref         = 0x0102
	gpuCmdSetScanout            = 0x0103
	gpuCmdResourceFlush         = 0x0104
	gpuCmdTransferToHost2D      = 0x0105
	gpuCmdResourceAttachBacking = 0x0106
	gpuCmdResourceDetachBacking = 0x0107
	gpuCmdGetEDID               = 0x010a
	gpuCmdUpdateCursor          = 0x0300
	gpuCmdMoveCursor            = 0x0301

	gpuRespOKNoData             = 0x1100
	gpuRespOKDisplayInfo        = 0x1101
	gpuRespOKEDID               = 0x1104
	gpuRespErrUnspec            = 0x1200
	gpuRespErrOutOfMemory       = 0x1201
	gpuRespErrInvalidScanoutID  = 0x1202
	gpuRespErrInvalidResourceID = 0x1203
	gpuRespErrInvalidParameter  = 0x1205
)

// Header flags (spec §5.7.6.7).
const (
	gpuFlagFence       = 1 // VIRTIO_GPU_FLAG_FENCE
	gpuFlagInfoRingIdx = 2 // VIRTIO_GPU_FLAG_INFO_RING_IDX
)

// Pixel formats (spec §5.7.6.8, enum virtio_gpu_formats). The name
// gives the bytes of a pixel in memory order: B8G8R8X8 is what Linux
// calls DRM_FORMAT_XRGB8888 on a little-endian guest.
const (
	GPUFormatB8G8R8A8 = 1
	GPUFormatB8G8R8X8 = 2
	GPUFormatA8R8G8B8 = 3
	GPUFormatX8R8G8B8 = 4
	GPUFormatR8G8B8A8 = 67
	GPUFormatX8B8G8R8 = 68
	GPUFormatA8B8G8R8 = 121
	GPUFormatR8G8B8X8 = 134
)

// gpuBytesPerPixel holds for every format above.
const gpuBytesPerPixel = 4

// Sizes of the request and response structs (spec §5.7.6), each with
// the 24-byte struct virtio_gpu_ctrl_hdr first.
const (
	gpuHdrSize           = 24 // type, flags u32; fence_id u64; ctx_id u32; ring_idx u8; padding[3]
	gpuRectSize          = 16 // struct virtio_gpu_rect: x, y, width, height u32
	gpuMaxScanouts       = 16 // VIRTIO_GPU_MAX_SCANOUTS
	gpuDisplayOneSize    = gpuRectSize + 8
	gpuRespDisplayInfo   = gpuHdrSize + gpuMaxScanouts*gpuDisplayOneSize
	gpuRespEDIDSize      = gpuHdrSize + 8 + 1024 // size, padding u32; edid[1024]
	gpuCreate2DSize      = gpuHdrSize + 16       // resource_id, format, width, height
	gpuUnrefSize         = gpuHdrSize + 8        // resource_id, padding
	gpuSetScanoutSize    = gpuHdrSize + gpuRectSize + 8
	gpuFlushSize         = gpuHdrSize + gpuRectSize + 8
	gpuTransferSize      = gpuHdrSize + gpuRectSize + 16 // offset u64; resource_id, padding
	gpuAttachSize        = gpuHdrSize + 8                // resource_id, nr_entries; then the entries
	gpuMemEntrySize      = 16                            // struct virtio_gpu_mem_entry: addr u64, length, padding u32
	gpuDetachSize        = gpuHdrSize + 8
	gpuGetEDIDSize       = gpuHdrSize + 8 // scanout, padding
	gpuCursorPosSize     = 16             // struct virtio_gpu_cursor_pos: scanout_id, x, y, padding
	gpuUpdateCursorSize  = gpuHdrSize + gpuCursorPosSize + 16
	gpuMaxRequest        = gpuUpdateCursorSize // the longest fixed part of a request
	gpuConfigSize        = 16                  // struct virtio_gpu_config: events_read, events_clear, num_scanouts, num_capsets
	gpuConfigEventsClear = 4
	gpuConfigNumScanouts = 8
)

// Bounds (see the package comment above).
const (
	// DefaultGPUMemory is the host memory for resources when
	// GPUConfig.MaxMemory is 0: 17 framebuffers of 1280×720, or 8 of
	// 1920×1080.
	DefaultGPUMemory = 64 << 20
	// MaxGPUMemory bounds GPUConfig.MaxMemory.
	MaxGPUMemory = 1 << 30

	gpuMaxResources        = 1024
	gpuMaxDim              = 16384
	gpuMaxEntriesPerAttach = 16384
	gpuMaxEntries          = 65536
	gpuMaxBacking          = 1 << 30
	gpuCursorSize          = 64
)

// Display sizes a GPU may be configured with: a detailed timing holds 12
// bits a side, and a 4K panel's CVT pixel clock fits its 16 bits.
const (
	MinDisplayWidth  = 320
	MinDisplayHeight = 200
	MaxDisplayWidth  = 3840
	MaxDisplayHeight = 2160

	DefaultDisplayWidth  = 1280
	DefaultDisplayHeight = 720
)

// ErrDisplaySize is returned by NewGPU for a mode outside the limits.
var ErrDisplaySize = errors.New("display size out of range")

// GPUConfig configures a GPU.
type GPUConfig struct {
	// Width and Height are the scanout's mode, the largest the guest may
	// show; 0 means DefaultDisplayWidth×DefaultDisplayHeight.
	Width, Height int
	// MaxMemory is the host memory all resources' pixels may take
	// together; 0 means DefaultGPUMemory. It must hold one scanout.
	MaxMemory uint64
}

// GPUCursor is the cursor the guest set, in scanout coordinates.
type GPUCursor struct {
	Visible    bool
	X, Y       int
	HotX, HotY int
	// Image is the cursor's picture (at most 64×64), nil when not visible.
	Image *image.RGBA
}

// GPU is a virtio-gpu device in 2D mode with one scanout.
type GPU struct {
	workerGuard
	width, height uint32
	maxMemory     uint64
	edid          [edidSize]byte
	warn          *devices.RateLimited

	// mu serialises command processing and guards everything below; a
	// vCPU notifying either queue and a host goroutine taking a
	// snapshot both take it. Lock order: MMIO.mu before GPU.mu.
	mu        sync.Mutex
	mem       *mem.Memory
	ctrl      *Queue
	cursorq   *Queue
	chain     Chain
	features  uint64
	events    uint32 // events_read
	resources map[uint32]*gpuResource
	used      uint64 // bytes of pixels held by resources
	entries   int    // scatter-list entries held by resources
	scanout   gpuScanout
	cursor    GPUCursor
	flushes   uint64
	onFlush   func(damage image.Rectangle)
	req       [gpuMaxRequest]byte
	resp      [gpuRespEDIDSize]byte
}

// gpuResource is one 2D resource: the host's copy of its pixels and the
// guest pages that back it.
type gpuResource struct {
	id            uint32
	format        uint32
	width, height uint32
	pix           []byte // width × height pixels, stride width × 4, in format's byte order
	// backing are the guest pages attached, each inside guest RAM, none
	// empty; starts[i] is where backing[i] starts in the backing's
	// linear offsets. nil: none attached.
	backing    [][]byte
	starts     []uint64
	backingLen uint64
}

// gpuScanout is what the scanout shows: rect of res, or nothing.
type gpuScanout struct {
	res  *gpuResource
	rect gpuRect
}

// gpuRect mirrors struct virtio_gpu_rect (spec §5.7.6.8).
type gpuRect struct{ x, y, w, h uint32 }

func readRect(b []byte) gpuRect {
	return gpuRect{le32(b[0:]), le32(b[4:]), le32(b[8:]), le32(b[12:])}
}

// inside reports whether r lies inside a w×h area, without overflow.
func (r gpuRect) inside(w, h uint32) bool {
	return uint64(r.x)+uint64(r.w) <= uint64(w) && uint64(r.y)+uint64(r.h) <= uint64(h)
}

func (r gpuRect) image() image.Rectangle {
	return image.Rect(int(r.x), int(r.y), int(r.x+r.w), int(r.y+r.h))
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// NewGPU returns a virtio-gpu device with one scanout of the configured
// size.
func NewGPU(cfg GPUConfig) (*GPU, error) {
	w, h := cfg.Width, cfg.Height
	if w == 0 && h == 0 {
		w, h = DefaultDisplayWidth, DefaultDisplayHeight
	}
	if w < MinDisplayWidth || w > MaxDisplayWidth || h < MinDisplayHeight || h > MaxDisplayHeight {
		return nil, fmt.Errorf("%dx%d: %w: from %dx%d to %dx%d", w, h, ErrDisplaySize,
			MinDisplayWidth, MinDisplayHeight, MaxDisplayWidth, MaxDisplayHeight)
	}
	maxMem := cfg.MaxMemory
	if maxMem == 0 {
		maxMem = DefaultGPUMemory
	}
	if frame := uint64(w) * uint64(h) * gpuBytesPerPixel; maxMem < frame || maxMem > MaxGPUMemory {
		return nil, fmt.Errorf("GPU memory %d bytes: must hold one %dx%d scanout (%d bytes) and be at most %d", maxMem, w, h, frame, uint64(MaxGPUMemory))
	}
	return &GPU{
		width: uint32(w), height: uint32(h), maxMemory: maxMem,
		edid:      buildEDID(uint32(w), uint32(h)),
		warn:      devices.NewRateLimited(os.Stderr, 5),
		resources: map[uint32]*gpuResource{},
	}, nil
}

// SetWarnings sends the device's rate-limited warnings about refused
// commands to w; nil discards them.
func (g *GPU) SetWarnings(w io.Writer) { g.warn.SetOutput(w) }

// Size returns the scanout's configured mode.
func (g *GPU) Size() (w, h int) { return int(g.width), int(g.height) }

// SetFlushHandler has f called with the part of the scanout that changed,
// in the coordinates of Snapshot's picture, whenever the guest flushes
// what it shows or changes the scanout (then the whole picture, whose
// size may have changed). f runs
// on the vCPU thread that notified the device, outside the device's
// lock: it must not block (a display server records the damage and
// wakes its own goroutine). nil stops the calls.
func (g *GPU) SetFlushHandler(f func(damage image.Rectangle)) {
	g.mu.Lock()
	g.onFlush = f
	g.mu.Unlock()
}

// Flushes returns how many flushes have reached the scanout.
func (g *GPU) Flushes() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.flushes
}

func (g *GPU) DeviceID() uint32 { return IDGPU }
func (g *GPU) Name() string     { return "virtio-gpu" }
func (g *GPU) Features() uint64 { return 1 << GPUFeatureEDID }
func (g *GPU) QueueMax() []uint16 {
	return []uint16{defaultQueueMax, defaultQueueMax}
}

// ReadConfig reads struct virtio_gpu_config (spec §5.7.4).
func (g *GPU) ReadConfig(off uint64, data []byte) {
	var cfg [gpuConfigSize]byte
	g.mu.Lock()
	binary.LittleEndian.PutUint32(cfg[0:], g.events)
	g.mu.Unlock()
	binary.LittleEndian.PutUint32(cfg[gpuConfigNumScanouts:], 1)
	readConfigBytes(cfg[:], off, data)
}

// readConfigBytes fills data from cfg at off; bytes past cfg read as zero.
func readConfigBytes(cfg []byte, off uint64, data []byte) {
	clear(data)
	if off < uint64(len(cfg)) {
		copy(data, cfg[off:])
	}
}

// WriteConfig handles events_clear, the only writable field: each bit
// written clears that event.
func (g *GPU) WriteConfig(off uint64, data []byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, b := range data {
		if o := off + uint64(i); o >= gpuConfigEventsClear && o < gpuConfigEventsClear+4 {
			g.events &^= uint32(b) << (8 * (o - gpuConfigEventsClear))
		}
	}
}

func (g *GPU) Activate(features uint64, queues []*Queue) error {
	if queues[gpuControlQueue] == nil || queues[gpuCursorQueue] == nil {
		return errors.New("control queue 0 and cursor queue 1 must both be set up")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mem = queues[gpuControlQueue].mem
	g.ctrl, g.cursorq = queues[gpuControlQueue], queues[gpuCursorQueue]
	g.features = features
	return nil
}

// Reset destroys every resource and blanks the scanout: a reset device
// has none (spec §5.7.6.1, the driver recreates them).
func (g *GPU) Reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ctrl, g.cursorq = nil, nil
	g.resources = map[uint32]*gpuResource{}
	g.used, g.entries = 0, 0
	g.scanout = gpuScanout{}
	g.cursor = GPUCursor{}
	g.events = 0
}

func (g *GPU) Close() error { g.Reset(); return nil }

// Notify processes the queue's commands on the vCPU thread. A full-screen
// transfer copies a few MiB, which takes about a millisecond; nothing
// here waits.
func (g *GPU) Notify(qi int) {
	g.mu.Lock()
	q := g.ctrl
	if qi == gpuCursorQueue {
		q = g.cursorq
	}
	var damage image.Rectangle
	if q != nil {
		damage = g.serveLocked(q, qi == gpuCursorQueue)
	}
	f := g.onFlush
	g.mu.Unlock()
	if f != nil && !damage.Empty() {
		f(damage)
	}
}

// serveLocked answers every available command of q and returns the part
// of the scanout they changed. The caller holds mu.
func (g *GPU) serveLocked(q *Queue, cursor bool) image.Rectangle {
	var damage image.Rectangle
	for {
		ok, err := q.Pop(&g.chain)
		if err != nil || !ok {
			break
		}
		n := g.command(&g.chain, cursor, &damage)
		q.Push(g.chain.Head, uint32(n))
	}
	q.Signal()
	return damage
}

// command executes the request in c and writes the response into its
// writable buffers; it returns the bytes written. A request too short
// for its type gets ERR_UNSPEC; a cursor command gets a response only
// where the driver gave room for one (Linux gives none).
func (g *GPU) command(c *Chain, cursor bool, damage *image.Rectangle) int {
	req := g.req[:gather(g.req[:], c.Readable, 0)]
	resp := g.resp[:gpuHdrSize]
	clear(resp)
	typ, extra := uint32(gpuRespErrUnspec), 0
	var cmd uint32
	if len(req) >= gpuHdrSize {
		cmd = le32(req)
		// A fence completes with its command (spec §5.7.6.7): every
		// command here is done by the time it is answered.
		flags := le32(req[4:]) & (gpuFlagFence | gpuFlagInfoRingIdx)
		binary.LittleEndian.PutUint32(resp[4:], flags)
		copy(resp[8:gpuHdrSize], req[8:gpuHdrSize]) // fence_id, ctx_id, ring_idx
		clear(resp[21:gpuHdrSize])                  // padding
		if cursor {
			typ = g.cursorCommand(cmd, req)
		} else {
			typ, extra = g.controlCommand(cmd, req, c, damage)
		}
	}
	if typ >= gpuRespErrUnspec {
		g.warn.Printf("virtio-gpu: command %#x refused with %s", cmd, gpuRespName(typ))
	}
	binary.LittleEndian.PutUint32(resp[0:], typ)
	if cursor && c.WritableLen() < gpuHdrSize {
		return 0
	}
	return scatter(c.Writable, 0, g.resp[:gpuHdrSize+extra])
}

// gpuRespName names a response type for messages.
func gpuRespName(t uint32) string {
	switch t {
	case gpuRespErrUnspec:
		return "ERR_UNSPEC"
	case gpuRespErrOutOfMemory:
		return "ERR_OUT_OF_MEMORY"
	case gpuRespErrInvalidScanoutID:
		return "ERR_INVALID_SCANOUT_ID"
	case gpuRespErrInvalidResourceID:
		return "ERR_INVALID_RESOURCE_ID"
	case gpuRespErrInvalidParameter:
		return "ERR_INVALID_PARAMETER"
	}
	return fmt.Sprintf("response %#x", t)
}

// gpuRequestSize is the fixed size of each control-queue request this
// device knows.
var gpuRequestSize = map[uint32]int{
	gpuCmdGetDisplayInfo:        gpuHdrSize,
	gpuCmdGetEDID:               gpuGetEDIDSize,
	gpuCmdResourceCreate2D:      gpuCreate2DSize,
	gpuCmdResourceUnref:         gpuUnrefSize,
	gpuCmdSetScanout:            gpuSetScanoutSize,
	gpuCmdResourceFlush:         gpuFlushSize,
	gpuCmdTransferToHost2D:      gpuTransferSize,
	gpuCmdResourceAttachBacking: gpuAttachSize,
	gpuCmdResourceDetachBacking: gpuDetachSize,
}

// controlCommand runs one control-queue command. It returns the response
// type and how many bytes of payload it wrote into g.resp after the
// header.
func (g *GPU) controlCommand(cmd uint32, req []byte, c *Chain, damage *image.Rectangle) (uint32, int) {
	need := gpuRequestSize[cmd]
	if need == 0 || len(req) < need {
		return gpuRespErrUnspec, 0 // unknown (3D, blob) or short
	}
	switch cmd {
	case gpuCmdGetDisplayInfo:
		return g.displayInfo()
	case gpuCmdGetEDID:
		return g.getEDID(req)
	case gpuCmdResourceCreate2D:
		return g.create2D(req), 0
	case gpuCmdResourceUnref:
		return g.unref(req, damage), 0
	case gpuCmdSetScanout:
		return g.setScanout(req, damage), 0
	case gpuCmdResourceFlush:
		return g.flush(req, damage), 0
	case gpuCmdTransferToHost2D:
		return g.transfer(req), 0
	case gpuCmdResourceAttachBacking:
		return g.attachBacking(req, c), 0
	case gpuCmdResourceDetachBacking:
		return g.detachBacking(req), 0
	}
	return gpuRespErrUnspec, 0
}

// displayInfo answers VIRTIO_GPU_CMD_GET_DISPLAY_INFO: the one scanout,
// enabled, at the configured size.
func (g *GPU) displayInfo() (uint32, int) {
	p := g.resp[gpuHdrSize:gpuRespDisplayInfo]
	clear(p)
	binary.LittleEndian.PutUint32(p[8:], g.width)
	binary.LittleEndian.PutUint32(p[12:], g.height)
	binary.LittleEndian.PutUint32(p[16:], 1) // enabled
	return gpuRespOKDisplayInfo, len(p)
}

// getEDID answers VIRTIO_GPU_CMD_GET_EDID (needs VIRTIO_GPU_F_EDID).
func (g *GPU) getEDID(req []byte) (uint32, int) {
	if g.features&(1<<GPUFeatureEDID) == 0 {
		return gpuRespErrUnspec, 0
	}
	if le32(req[gpuHdrSize:]) != 0 {
		return gpuRespErrInvalidScanoutID, 0
	}
	p := g.resp[gpuHdrSize:gpuRespEDIDSize]
	clear(p)
	binary.LittleEndian.PutUint32(p[0:], edidSize)
	copy(p[8:], g.edid[:])
	return gpuRespOKEDID, len(p)
}

// formatOrder gives where red, green and blue sit in a pixel of format;
// ok is false for a format this device does not know.
func formatOrder(format uint32) (r, gr, b int, ok bool) {
	switch format {
	case GPUFormatB8G8R8A8, GPUFormatB8G8R8X8:
		return 2, 1, 0, true
	case GPUFormatA8R8G8B8, GPUFormatX8R8G8B8:
		return 1, 2, 3, true
	case GPUFormatR8G8B8A8, GPUFormatR8G8B8X8:
		return 0, 1, 2, true
	case GPUFormatX8B8G8R8, GPUFormatA8B8G8R8:
		return 3, 2, 1, true
	}
	return 0, 0, 0, false
}

// create2D runs VIRTIO_GPU_CMD_RESOURCE_CREATE_2D.
func (g *GPU) create2D(req []byte) uint32 {
	p := req[gpuHdrSize:]
	id, format, w, h := le32(p[0:]), le32(p[4:]), le32(p[8:]), le32(p[12:])
	if id == 0 || g.resources[id] != nil {
		return gpuRespErrInvalidResourceID
	}
	if _, _, _, ok := formatOrder(format); !ok {
		return gpuRespErrInvalidParameter
	}
	if w == 0 || h == 0 || w > gpuMaxDim || h > gpuMaxDim {
		return gpuRespErrInvalidParameter
	}
	size := uint64(w) * uint64(h) * gpuBytesPerPixel // at most 2^30: no overflow
	if len(g.resources) >= gpuMaxResources || size > g.maxMemory-g.used {
		return gpuRespErrOutOfMemory
	}
	g.resources[id] = &gpuResource{id: id, format: format, width: w, height: h, pix: make([]byte, size)}
	g.used += size
	return gpuRespOKNoData
}

// unref runs VIRTIO_GPU_CMD_RESOURCE_UNREF; a resource on the scanout
// leaves it blank.
func (g *GPU) unref(req []byte, damage *image.Rectangle) uint32 {
	res := g.resources[le32(req[gpuHdrSize:])]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	if g.scanout.res == res {
		g.scanout = gpuScanout{}
		*damage = damage.Union(g.bounds())
	}
	g.dropBacking(res)
	g.used -= uint64(len(res.pix))
	delete(g.resources, res.id)
	return gpuRespOKNoData
}

func (g *GPU) bounds() image.Rectangle { return image.Rect(0, 0, int(g.width), int(g.height)) }

// setScanout runs VIRTIO_GPU_CMD_SET_SCANOUT: resource 0 (or an empty
// rectangle) disables the scanout; otherwise the rectangle must lie in
// the resource and be no larger than the configured mode.
func (g *GPU) setScanout(req []byte, damage *image.Rectangle) uint32 {
	p := req[gpuHdrSize:]
	r, scanout, id := readRect(p), le32(p[gpuRectSize:]), le32(p[gpuRectSize+4:])
	if scanout != 0 {
		return gpuRespErrInvalidScanoutID
	}
	if id == 0 || r.w == 0 || r.h == 0 {
		g.scanout = gpuScanout{}
		*damage = damage.Union(g.bounds())
		return gpuRespOKNoData
	}
	res := g.resources[id]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	if !r.inside(res.width, res.height) || r.w > g.width || r.h > g.height {
		return gpuRespErrInvalidParameter
	}
	g.scanout = gpuScanout{res: res, rect: r}
	// The whole picture changes, and may change size: damage is in the
	// new scanout's coordinates.
	*damage = damage.Union(image.Rect(0, 0, int(r.w), int(r.h)))
	return gpuRespOKNoData
}

// flush runs VIRTIO_GPU_CMD_RESOURCE_FLUSH: the part of the rectangle on
// the scanout is damage.
func (g *GPU) flush(req []byte, damage *image.Rectangle) uint32 {
	p := req[gpuHdrSize:]
	r, id := readRect(p), le32(p[gpuRectSize:])
	res := g.resources[id]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	if !r.inside(res.width, res.height) {
		return gpuRespErrInvalidParameter
	}
	if s := g.scanout; s.res == res {
		d := r.image().Intersect(s.rect.image())
		if !d.Empty() {
			*damage = damage.Union(d.Sub(image.Pt(int(s.rect.x), int(s.rect.y))))
			g.flushes++
		}
	}
	return gpuRespOKNoData
}

// transfer runs VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D: row i of the
// rectangle comes from the backing at offset + i × the resource's
// stride (how Linux and QEMU read the spec's offset: the first pixel's
// place in a backing laid out like the resource).
func (g *GPU) transfer(req []byte) uint32 {
	p := req[gpuHdrSize:]
	r, off, id := readRect(p), le64(p[gpuRectSize:]), le32(p[gpuRectSize+8:])
	res := g.resources[id]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	if res.backing == nil {
		return gpuRespErrUnspec
	}
	if !r.inside(res.width, res.height) {
		return gpuRespErrInvalidParameter
	}
	if r.w == 0 || r.h == 0 {
		return gpuRespOKNoData
	}
	stride := uint64(res.width) * gpuBytesPerPixel
	row := uint64(r.w) * gpuBytesPerPixel
	span := stride*uint64(r.h-1) + row // at most 2^30
	if off > res.backingLen || span > res.backingLen-off {
		return gpuRespErrInvalidParameter
	}
	dst := uint64(r.y)*stride + uint64(r.x)*gpuBytesPerPixel
	if r.x == 0 && r.w == res.width {
		res.readBacking(res.pix[dst:dst+span], off)
		return gpuRespOKNoData
	}
	for i := uint64(0); i < uint64(r.h); i++ {
		res.readBacking(res.pix[dst+i*stride:][:row], off+i*stride)
	}
	return gpuRespOKNoData
}

// readBacking copies the backing from offset off into dst; the caller
// has checked that it lies inside the backing.
func (r *gpuResource) readBacking(dst []byte, off uint64) {
	// The last entry starting at or before off holds it.
	lo, hi := 0, len(r.starts)
	for hi-lo > 1 {
		m := (lo + hi) / 2
		if r.starts[m] <= off {
			lo = m
		} else {
			hi = m
		}
	}
	for i := lo; len(dst) > 0 && i < len(r.backing); i++ {
		n := copy(dst, r.backing[i][off-r.starts[i]:])
		dst = dst[n:]
		off += uint64(n)
	}
}

// attachBacking runs VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING: the
// nr_entries struct virtio_gpu_mem_entry after the request name guest
// pages, each checked to lie inside guest RAM.
func (g *GPU) attachBacking(req []byte, c *Chain) uint32 {
	p := req[gpuHdrSize:]
	id, n := le32(p[0:]), le32(p[4:])
	res := g.resources[id]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	if res.backing != nil {
		return gpuRespErrUnspec // attached already
	}
	if n == 0 || n > gpuMaxEntriesPerAttach {
		return gpuRespErrInvalidParameter
	}
	if uint64(c.ReadableLen()) < gpuAttachSize+uint64(n)*gpuMemEntrySize {
		return gpuRespErrUnspec // entries missing
	}
	if g.entries+int(n) > gpuMaxEntries {
		return gpuRespErrOutOfMemory
	}
	backing := make([][]byte, 0, n)
	starts := make([]uint64, 0, n)
	var total uint64
	var e [gpuMemEntrySize]byte
	for i := 0; i < int(n); i++ {
		gather(e[:], c.Readable, gpuAttachSize+i*gpuMemEntrySize)
		addr, length := le64(e[0:]), uint64(le32(e[8:]))
		b, err := g.mem.Slice(addr, length)
		if err != nil || total+length > gpuMaxBacking {
			return gpuRespErrInvalidParameter
		}
		if length == 0 {
			continue
		}
		backing = append(backing, b)
		starts = append(starts, total)
		total += length
	}
	res.backing, res.starts, res.backingLen = backing, starts, total
	g.entries += len(backing)
	return gpuRespOKNoData
}

// detachBacking runs VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING; the pixels
// stay, so the scanout still shows them.
func (g *GPU) detachBacking(req []byte) uint32 {
	res := g.resources[le32(req[gpuHdrSize:])]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	g.dropBacking(res)
	return gpuRespOKNoData
}

func (g *GPU) dropBacking(res *gpuResource) {
	g.entries -= len(res.backing)
	res.backing, res.starts, res.backingLen = nil, nil, 0
}

// cursorCommand runs VIRTIO_GPU_CMD_UPDATE_CURSOR or MOVE_CURSOR (spec
// §5.7.6.10). The cursor image is copied from the resource's host pixels
// at the update, as the spec asks the driver to transfer it first.
func (g *GPU) cursorCommand(cmd uint32, req []byte) uint32 {
	if len(req) < gpuUpdateCursorSize || cmd != gpuCmdUpdateCursor && cmd != gpuCmdMoveCursor {
		return gpuRespErrUnspec
	}
	p := req[gpuHdrSize:]
	scanout, x, y := le32(p[0:]), le32(p[4:]), le32(p[8:])
	if scanout != 0 {
		return gpuRespErrInvalidScanoutID
	}
	// Positions are signed on the wire in practice: a cursor partly off
	// the left edge has a negative x.
	g.cursor.X, g.cursor.Y = int(int32(x)), int(int32(y))
	if cmd == gpuCmdMoveCursor {
		return gpuRespOKNoData
	}
	c := p[gpuCursorPosSize:]
	id, hotX, hotY := le32(c[0:]), le32(c[4:]), le32(c[8:])
	if id == 0 {
		g.cursor = GPUCursor{X: g.cursor.X, Y: g.cursor.Y}
		return gpuRespOKNoData
	}
	res := g.resources[id]
	if res == nil {
		return gpuRespErrInvalidResourceID
	}
	if res.width > gpuCursorSize || res.height > gpuCursorSize || hotX >= res.width || hotY >= res.height {
		return gpuRespErrInvalidParameter
	}
	img := image.NewRGBA(image.Rect(0, 0, int(res.width), int(res.height)))
	convert(img, res, gpuRect{0, 0, res.width, res.height}, true)
	g.cursor = GPUCursor{Visible: true, X: g.cursor.X, Y: g.cursor.Y, HotX: int(hotX), HotY: int(hotY), Image: img}
	return gpuRespOKNoData
}

// Cursor returns a copy of the cursor's state.
func (g *GPU) Cursor() GPUCursor {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cursor
	if c.Image != nil {
		img := *c.Image
		img.Pix = append([]byte(nil), c.Image.Pix...)
		c.Image = &img
	}
	return c
}

// Snapshot returns a copy of what the scanout shows, as opaque RGBA: the
// scanout rectangle of its resource, or a black picture of the
// configured size while the guest shows nothing. A display has no
// transparency, so alpha in the guest's pixels is ignored.
func (g *GPU) Snapshot() (img *image.RGBA, err error) {
	defer g.containErr(&err)
	if g.failed() {
		return nil, errDeviceFailed
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.scanout
	if s.res == nil {
		img = image.NewRGBA(g.bounds())
		for i := 3; i < len(img.Pix); i += 4 {
			img.Pix[i] = 0xff
		}
		return img, nil
	}
	img = image.NewRGBA(image.Rect(0, 0, int(s.rect.w), int(s.rect.h)))
	convert(img, s.res, s.rect, false)
	return img, nil
}

// convert copies rect of res into dst (of rect's size) as RGBA; alpha is
// the pixel's own for formats with alpha when keepAlpha is set (a
// cursor), otherwise opaque.
func convert(dst *image.RGBA, res *gpuResource, r gpuRect, keepAlpha bool) {
	ri, gi, bi, _ := formatOrder(res.format)
	ai := 6 - ri - gi - bi // the remaining byte of 0..3
	alpha := keepAlpha && (res.format == GPUFormatB8G8R8A8 || res.format == GPUFormatA8R8G8B8 ||
		res.format == GPUFormatR8G8B8A8 || res.format == GPUFormatA8B8G8R8)
	stride := int(res.width) * gpuBytesPerPixel
	for y := 0; y < int(r.h); y++ {
		src := res.pix[(int(r.y)+y)*stride+int(r.x)*gpuBytesPerPixel:][:int(r.w)*gpuBytesPerPixel]
		out := dst.Pix[y*dst.Stride:][:int(r.w)*4]
		for i := 0; i < len(src); i += 4 {
			out[i+0] = src[i+ri]
			out[i+1] = src[i+gi]
			out[i+2] = src[i+bi]
			if alpha {
				out[i+3] = src[i+ai]
			} else {
				out[i+3] = 0xff
			}
		}
	}
}
