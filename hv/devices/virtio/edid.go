package virtio

import "math"

// The EDID a virtio-gpu scanout reports (VIRTIO_GPU_CMD_GET_EDID, spec
// §5.7.6.8): one 128-byte base block of VESA E-EDID 1.4 describing a
// digital panel whose preferred and only detailed mode is the configured
// one, at 60 Hz with CVT reduced blanking. Linux's virtio_gpu driver
// hands it to drm_edid, which then offers that mode first.

// EDID base block layout (VESA E-EDID Release A, Revision 2, §3).
const (
	edidSize         = 128
	edidOffVendor    = 8  // manufacturer ID, 3 letters of 5 bits, big-endian
	edidOffProduct   = 10 // product code, little-endian
	edidOffSerial    = 12
	edidOffWeek      = 16
	edidOffYear      = 17 // year - 1990
	edidOffVersion   = 18 // 1, then revision 4
	edidOffInput     = 20 // video input definition
	edidOffSizeCM    = 21 // horizontal, then vertical screen size in cm
	edidOffGamma     = 23 // (gamma × 100) - 100
	edidOffFeatures  = 24
	edidOffChroma    = 25 // 10 bytes of chromaticity coordinates
	edidOffStandard  = 38 // 8 standard timings of 2 bytes
	edidOffDesc      = 54 // 4 descriptors of 18 bytes
	edidDescSize     = 18
	edidOffExtension = 126
	edidOffChecksum  = 127

	// edidInputDigital8 is a digital input with 8 bits per primary and
	// no interface named.
	edidInputDigital8 = 0x80 | 0x02<<4
	// edidFeatures: sRGB is the default colour space (bit 2) and the
	// first detailed timing is the preferred, native mode (bit 1, which
	// EDID 1.4 requires); colour encoding RGB 4:4:4 (bits 4-3 zero).
	edidFeatures = 0x04 | 0x02
	// edidDTDDigitalSeparate: digital separate sync (bits 4-3), with
	// a positive horizontal (bit 1) and negative vertical sync, as CVT
	// reduced blanking asks.
	edidDTDDigitalSeparate = 0x18 | 0x02

	// Display descriptor tags (§3.10.3).
	edidTagName        = 0xfc
	edidTagRangeLimits = 0xfd
	edidTagDummy       = 0x10

	// edidYear is the model year reported: the EDID is a function of the
	// mode alone, so that it is the same on every run.
	edidYear = 2024

	// edidName is the display product name (at most 13 bytes).
	edidName = "Tandem"
)

// CVT reduced blanking (VESA CVT 1.2, §3.4): the horizontal blank is
// fixed, the vertical one at least 460 µs.
const (
	cvtRBHFront  = 48
	cvtRBHSync   = 32
	cvtRBHBlank  = 160
	cvtRBVFront  = 3
	cvtRBVSync   = 5
	cvtRBMinVBI  = 460e-6 // seconds
	cvtRBMinVBP  = 6      // lines of back porch at least
	edidRefresh  = 60     // Hz
	edidMMPerInc = 25.4
	edidDPI      = 96 // the physical size reported: a 96 dpi panel
)

// edidTiming is one display mode's timing, as a detailed timing
// descriptor carries it.
type edidTiming struct {
	hActive, hBlank, hFront, hSync uint32
	vActive, vBlank, vFront, vSync uint32
	clock10kHz                     uint32 // pixel clock in 10 kHz units
}

// cvtReducedBlanking returns the 60 Hz CVT reduced-blanking timing of a
// w×h mode. The vertical blank is the fewest lines that last 460 µs.
func cvtReducedBlanking(w, h uint32) edidTiming {
	// A line lasts (1/60 s) / vTotal; vBlank lines last vBlank/vTotal of
	// a frame, and must be at least 460 µs: vBlank ≥ f·(h+vBlank), with
	// f the share of a frame that 460 µs is.
	f := cvtRBMinVBI * edidRefresh
	vBlank := uint32(math.Ceil(float64(h) * f / (1 - f)))
	vBlank = max(vBlank, cvtRBVFront+cvtRBVSync+cvtRBMinVBP)
	hTotal := uint64(w + cvtRBHBlank)
	vTotal := uint64(h + vBlank)
	clock := (hTotal*vTotal*edidRefresh + 5000) / 10000
	return edidTiming{
		hActive: w, hBlank: cvtRBHBlank, hFront: cvtRBHFront, hSync: cvtRBHSync,
		vActive: h, vBlank: vBlank, vFront: cvtRBVFront, vSync: cvtRBVSync,
		clock10kHz: uint32(clock),
	}
}

// buildEDID returns the EDID base block of a w×h display. w and h are
// within the limits NewGPU checks (at most 4095, the 12 bits a detailed
// timing holds).
func buildEDID(w, h uint32) [edidSize]byte {
	var e [edidSize]byte
	copy(e[:8], []byte{0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00})
	// Manufacturer "TDM": each letter is its place in the alphabet.
	vendor := uint16('T'-'@')<<10 | uint16('D'-'@')<<5 | uint16('M'-'@')
	e[edidOffVendor], e[edidOffVendor+1] = byte(vendor>>8), byte(vendor)
	e[edidOffProduct], e[edidOffProduct+1] = 0x01, 0x00
	e[edidOffWeek] = 0xff // the year below is a model year
	e[edidOffYear] = edidYear - 1990
	e[edidOffVersion], e[edidOffVersion+1] = 1, 4
	e[edidOffInput] = edidInputDigital8
	wmm := uint32(float64(w) * edidMMPerInc / edidDPI)
	hmm := uint32(float64(h) * edidMMPerInc / edidDPI)
	e[edidOffSizeCM], e[edidOffSizeCM+1] = byte((wmm+5)/10), byte((hmm+5)/10)
	e[edidOffGamma] = 220 - 100 // gamma 2.2
	e[edidOffFeatures] = edidFeatures
	putChromaticity(e[edidOffChroma:edidOffChroma+10], srgbPrimaries)
	for i := 0; i < 8; i++ {
		e[edidOffStandard+2*i], e[edidOffStandard+2*i+1] = 0x01, 0x01 // unused
	}
	t := cvtReducedBlanking(w, h)
	putDetailedTiming(e[edidOffDesc:][:edidDescSize], t, wmm, hmm)
	putRangeLimits(e[edidOffDesc+edidDescSize:][:edidDescSize], t)
	putDisplayString(e[edidOffDesc+2*edidDescSize:][:edidDescSize], edidTagName, edidName)
	e[edidOffDesc+3*edidDescSize+3] = edidTagDummy
	e[edidOffExtension] = 0
	e[edidOffChecksum] = edidChecksum(e[:edidOffChecksum])
	return e
}

// edidChecksum is the byte that makes the block sum to 0 modulo 256.
func edidChecksum(b []byte) byte {
	var sum byte
	for _, x := range b {
		sum += x
	}
	return -sum
}

// srgbPrimaries are the CIE 1931 xy coordinates of sRGB's red, green and
// blue primaries and its D65 white point (IEC 61966-2-1), which the
// sRGB feature bit promises.
var srgbPrimaries = [8]float64{0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290}

// putChromaticity encodes the coordinates as 10-bit binary fractions
// (§3.7): the two low bits of each in bytes 0-1, the high eight after.
func putChromaticity(b []byte, xy [8]float64) {
	var v [8]uint32
	for i, c := range xy {
		v[i] = uint32(math.Round(c * 1024))
	}
	b[0] = byte((v[0]&3)<<6 | (v[1]&3)<<4 | (v[2]&3)<<2 | v[3]&3)
	b[1] = byte((v[4]&3)<<6 | (v[5]&3)<<4 | (v[6]&3)<<2 | v[7]&3)
	for i := range v {
		b[2+i] = byte(v[i] >> 2)
	}
}

// putDetailedTiming writes an 18-byte detailed timing descriptor (§3.10.2).
func putDetailedTiming(b []byte, t edidTiming, wmm, hmm uint32) {
	b[0], b[1] = byte(t.clock10kHz), byte(t.clock10kHz>>8)
	b[2] = byte(t.hActive)
	b[3] = byte(t.hBlank)
	b[4] = byte(t.hActive>>8)<<4 | byte(t.hBlank>>8)&0x0f
	b[5] = byte(t.vActive)
	b[6] = byte(t.vBlank)
	b[7] = byte(t.vActive>>8)<<4 | byte(t.vBlank>>8)&0x0f
	b[8] = byte(t.hFront)
	b[9] = byte(t.hSync)
	b[10] = byte(t.vFront&0x0f)<<4 | byte(t.vSync&0x0f)
	b[11] = byte(t.hFront>>8&3)<<6 | byte(t.hSync>>8&3)<<4 | byte(t.vFront>>4&3)<<2 | byte(t.vSync>>4&3)
	b[12] = byte(wmm)
	b[13] = byte(hmm)
	b[14] = byte(wmm>>8)<<4 | byte(hmm>>8)&0x0f
	b[15], b[16] = 0, 0 // no border
	b[17] = edidDTDDigitalSeparate
}

// putRangeLimits writes a display range limits descriptor (§3.10.3.3)
// that admits the mode t: 50-75 Hz vertically, the horizontal rate and
// pixel clock of t with room around them, no secondary timing formula.
func putRangeLimits(b []byte, t edidTiming) {
	hkHz := uint64(t.clock10kHz) * 10 / uint64(t.hActive+t.hBlank) // kHz
	b[3] = edidTagRangeLimits
	b[5], b[6] = 50, 75
	b[7] = byte(max(1, hkHz/2))
	b[8] = byte(min(255, hkHz*2))
	b[9] = byte(min(255, (uint64(t.clock10kHz)/100+9)/10+1)) // 10 MHz units, rounded up, plus one
	b[10] = 0x01                                             // range limits only
	b[11] = 0x0a
	for i := 12; i < edidDescSize; i++ {
		b[i] = 0x20
	}
}

// putDisplayString writes a display descriptor carrying up to 13 bytes
// of text, ended by a line feed and padded with spaces (§3.10.3.4).
func putDisplayString(b []byte, tag byte, s string) {
	b[3] = tag
	text := b[5:edidDescSize]
	n := copy(text, s)
	if n < len(text) {
		text[n] = 0x0a
		n++
	}
	for ; n < len(text); n++ {
		text[n] = 0x20
	}
}
