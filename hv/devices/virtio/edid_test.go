package virtio

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// decodedMode is a detailed timing descriptor read back field by field
// (VESA E-EDID, §3.10.2), independently of putDetailedTiming.
type decodedMode struct {
	clockHz                        uint64
	hActive, hBlank, hFront, hSync uint32
	vActive, vBlank, vFront, vSync uint32
	widthMM, heightMM              uint32
}

func decodeDTD(b []byte) decodedMode {
	return decodedMode{
		clockHz:  uint64(binary.LittleEndian.Uint16(b[0:])) * 10000,
		hActive:  uint32(b[2]) | uint32(b[4]>>4)<<8,
		hBlank:   uint32(b[3]) | uint32(b[4]&0xf)<<8,
		vActive:  uint32(b[5]) | uint32(b[7]>>4)<<8,
		vBlank:   uint32(b[6]) | uint32(b[7]&0xf)<<8,
		hFront:   uint32(b[8]) | uint32(b[11]>>6&3)<<8,
		hSync:    uint32(b[9]) | uint32(b[11]>>4&3)<<8,
		vFront:   uint32(b[10]>>4) | uint32(b[11]>>2&3)<<4,
		vSync:    uint32(b[10]&0xf) | uint32(b[11]&3)<<4,
		widthMM:  uint32(b[12]) | uint32(b[14]>>4)<<8,
		heightMM: uint32(b[13]) | uint32(b[14]&0xf)<<8,
	}
}

func TestEDIDDescribesTheConfiguredMode(t *testing.T) {
	tests := []struct{ w, h uint32 }{
		{1280, 720}, {1920, 1080}, {800, 600}, {1024, 768}, {MinDisplayWidth, MinDisplayHeight}, {MaxDisplayWidth, MaxDisplayHeight},
	}
	for _, tt := range tests {
		e := buildEDID(tt.w, tt.h)
		t.Run(fmt.Sprintf("%dx%d", tt.w, tt.h), func(t *testing.T) {
			if string(e[:8]) != "\x00\xff\xff\xff\xff\xff\xff\x00" {
				t.Errorf("header = % x", e[:8])
			}
			var sum byte
			for _, b := range e {
				sum += b
			}
			if sum != 0 {
				t.Errorf("bytes sum to %#x modulo 256, want 0", sum)
			}
			if e[18] != 1 || e[19] != 4 || e[20]&0x80 == 0 || e[24]&0x02 == 0 || e[126] != 0 {
				t.Errorf("version %d.%d, input %#x, features %#x, extensions %d; want 1.4, digital, preferred timing, none",
					e[18], e[19], e[20], e[24], e[126])
			}
			m := decodeDTD(e[54:72])
			if m.hActive != tt.w || m.vActive != tt.h {
				t.Errorf("first detailed timing is %dx%d, want %dx%d", m.hActive, m.vActive, tt.w, tt.h)
			}
			if m.hFront+m.hSync > m.hBlank || m.vFront+m.vSync > m.vBlank {
				t.Errorf("porches and sync (%d+%d, %d+%d) do not fit the blanking (%d, %d)", m.hFront, m.hSync, m.vFront, m.vSync, m.hBlank, m.vBlank)
			}
			refresh := float64(m.clockHz) / float64((m.hActive+m.hBlank)*(m.vActive+m.vBlank))
			if math.Abs(refresh-60) > 0.1 {
				t.Errorf("refresh = %.3f Hz, want 60", refresh)
			}
			vbi := float64(m.vBlank) / float64(m.vActive+m.vBlank) / refresh
			if vbi < 460e-6 {
				t.Errorf("vertical blank lasts %.0f µs, CVT reduced blanking wants at least 460", vbi*1e6)
			}
			if m.widthMM == 0 || m.heightMM == 0 || e[21] == 0 || e[22] == 0 {
				t.Errorf("physical size %dx%d mm, %dx%d cm: want non-zero", m.widthMM, m.heightMM, e[21], e[22])
			}
			// The range limits admit the mode.
			r := e[72:90]
			hkHz := m.clockHz / uint64(m.hActive+m.hBlank) / 1000
			if r[3] != edidTagRangeLimits || r[5] > 60 || r[6] < 60 || uint64(r[7]) > hkHz || uint64(r[8]) < hkHz || uint64(r[9])*10_000_000 < m.clockHz {
				t.Errorf("range limits % x do not admit 60 Hz, %d kHz, %d Hz clock", r, hkHz, m.clockHz)
			}
			if name := e[90:108]; name[3] != edidTagName || string(name[5:12]) != "Tandem\n" {
				t.Errorf("name descriptor = % x, want \"Tandem\"", name)
			}
		})
	}
}

func TestGPUGetEDID(t *testing.T) {
	tests := []struct {
		name     string
		features uint64
		want     uint32
	}{
		{"with VIRTIO_GPU_F_EDID", allRingFeatures | 1<<GPUFeatureEDID, gpuRespOKEDID},
		{"without it", allRingFeatures, gpuRespErrUnspec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGPUDriver(t, GPUConfig{Width: 1024, Height: 768}, 4, tt.features)
			resp := d.do(gpuReq(gpuCmdGetEDID, 0, 0), gpuRespEDIDSize)
			if le32(resp) != tt.want {
				t.Fatalf("GET_EDID = %s, want %#x", gpuRespName(le32(resp)), tt.want)
			}
			if tt.want != gpuRespOKEDID {
				return
			}
			want := buildEDID(1024, 768)
			if len(resp) != gpuRespEDIDSize || le32(resp[gpuHdrSize:]) != edidSize || string(resp[gpuHdrSize+8:][:edidSize]) != string(want[:]) {
				t.Errorf("GET_EDID response of %d bytes, size field %d: want %d bytes carrying the 128-byte block", len(resp), le32(resp[gpuHdrSize:]), gpuRespEDIDSize)
			}
		})
	}
}

// TestEDIDPassesEdidDecode has Debian's edid-decode, an independent
// parser, check each block for conformity and read back its mode.
func TestEDIDPassesEdidDecode(t *testing.T) {
	tool := testenv.RequireCommand(t, "edid-decode", "edid-decode")
	tests := []struct {
		w, h uint32
		dtd  string // the start of edid-decode's line for the first detailed timing
	}{
		{1280, 720, "DTD 1:  1280x720    59.99"},
		{1920, 1080, "DTD 1:  1920x1080   59.99"},
		{MaxDisplayWidth, MaxDisplayHeight, "DTD 1:  3840x2160   60.00"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d", tt.w, tt.h), func(t *testing.T) {
			e := buildEDID(tt.w, tt.h)
			path := filepath.Join(t.TempDir(), "edid.bin")
			if err := os.WriteFile(path, e[:], 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(tool, "--check", path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "EDID conformity: PASS") {
				t.Fatalf("edid-decode --check = %v:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.dtd) {
				t.Errorf("edid-decode does not show %q:\n%s", tt.dtd, out)
			}
		})
	}
}
