package x86

import (
	"encoding/binary"
	"fmt"
)

// A small AML encoder: the few terms a DSDT describing fixed devices
// needs (ACPI 6.4 chapter 20, "ACPI Machine Language (AML)
// Specification"). Every function returns the encoded bytes; names and
// sizes come from this package, never from a guest, so a malformed name
// is a programming error and panics.

// AML opcodes (ACPI 6.4 §20.3).
const (
	amlZeroOp       = 0x00
	amlOneOp        = 0x01
	amlNameOp       = 0x08
	amlBytePrefix   = 0x0a
	amlWordPrefix   = 0x0b
	amlDWordPrefix  = 0x0c
	amlStringPrefix = 0x0d
	amlQWordPrefix  = 0x0e
	amlScopeOp      = 0x10
	amlBufferOp     = 0x11
	amlPackageOp    = 0x12
	amlDualNamePfx  = 0x2e
	amlMultiNamePfx = 0x2f
	amlExtOpPrefix  = 0x5b
	amlDeviceOp     = 0x82 // after ExtOpPrefix
	amlRootChar     = '\\'
	amlOnesOp       = 0xff
)

// amlPkgLength encodes a PkgLength for a package whose contents after the
// PkgLength are n bytes (ACPI 6.4 §20.2.4). The encoded length counts
// its own bytes: one byte holds up to 63; otherwise the lead byte's bits
// 7-6 give the count of following bytes, its bits 3-0 the low nibble,
// and each following byte eight more bits.
func amlPkgLength(n int) []byte {
	if n+1 < 1<<6 {
		return []byte{byte(n + 1)}
	}
	for extra := 1; extra <= 3; extra++ {
		total := n + 1 + extra
		if total < 1<<(4+8*extra) {
			out := []byte{byte(extra<<6 | total&0xf)}
			for i := 0; i < extra; i++ {
				out = append(out, byte(total>>(4+8*i)))
			}
			return out
		}
	}
	panic(fmt.Sprintf("AML package of %d bytes exceeds PkgLength's 28 bits", n))
}

// amlNameSeg encodes a four-character name segment, padding a shorter
// name with '_' as ASL does.
func amlNameSeg(s string) []byte {
	if len(s) == 0 || len(s) > 4 {
		panic(fmt.Sprintf("AML name segment %q: want 1 to 4 characters", s))
	}
	for i, c := range []byte(s) {
		ok := c == '_' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9'
		if !ok {
			panic(fmt.Sprintf("AML name segment %q: bad character %q", s, c))
		}
	}
	b := []byte(s)
	for len(b) < 4 {
		b = append(b, '_')
	}
	return b
}

// amlNameString encodes a name: "\" for the root, then segments joined
// by "." ("\_SB_.COM1", "VR00").
func amlNameString(s string) []byte {
	var out []byte
	if len(s) > 0 && s[0] == amlRootChar {
		out = append(out, amlRootChar)
		s = s[1:]
	}
	var segs [][]byte
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '.' {
			i++
		}
		segs = append(segs, amlNameSeg(s[:i]))
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	switch len(segs) {
	case 0:
		return append(out, 0) // NullName
	case 1:
	case 2:
		out = append(out, amlDualNamePfx)
	default:
		out = append(out, amlMultiNamePfx, byte(len(segs)))
	}
	for _, seg := range segs {
		out = append(out, seg...)
	}
	return out
}

// amlInteger encodes an integer in its shortest form, as iasl does.
func amlInteger(v uint64) []byte {
	le := binary.LittleEndian
	switch {
	case v == 0:
		return []byte{amlZeroOp}
	case v == 1:
		return []byte{amlOneOp}
	case v == ^uint64(0):
		return []byte{amlOnesOp}
	case v <= 0xff:
		return []byte{amlBytePrefix, byte(v)}
	case v <= 0xffff:
		return le.AppendUint16([]byte{amlWordPrefix}, uint16(v))
	case v <= 0xffffffff:
		return le.AppendUint32([]byte{amlDWordPrefix}, uint32(v))
	default:
		return le.AppendUint64([]byte{amlQWordPrefix}, v)
	}
}

// amlString encodes a NUL-terminated ASCII string.
func amlString(s string) []byte {
	for _, c := range []byte(s) {
		if c == 0 || c > 0x7f {
			panic(fmt.Sprintf("AML string %q: want ASCII without NUL", s))
		}
	}
	return append(append([]byte{amlStringPrefix}, s...), 0)
}

// amlEISAID encodes a PNP ID such as "PNP0501" the way ASL's EISAID()
// does: three letters of five bits each and four hex digits, stored
// big-endian in a DWord.
func amlEISAID(id string) []byte {
	if len(id) != 7 {
		panic(fmt.Sprintf("EISA ID %q: want 7 characters", id))
	}
	var v uint32
	for _, c := range []byte(id[:3]) {
		if c < 'A' || c > 'Z' {
			panic(fmt.Sprintf("EISA ID %q: want three capital letters first", id))
		}
		v = v<<5 | uint32(c-'@')
	}
	for _, c := range []byte(id[3:]) {
		var d uint32
		switch {
		case c >= '0' && c <= '9':
			d = uint32(c - '0')
		case c >= 'A' && c <= 'F':
			d = uint32(c-'A') + 10
		default:
			panic(fmt.Sprintf("EISA ID %q: want four hex digits last", id))
		}
		v = v<<4 | d
	}
	// 15 bits of letters then 16 of digits; the DWord is big-endian.
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return amlInteger(uint64(binary.LittleEndian.Uint32(b[:])))
}

// amlName encodes Name(name, value).
func amlName(name string, value []byte) []byte {
	return append(append([]byte{amlNameOp}, amlNameString(name)...), value...)
}

func amlPkg(op []byte, body []byte) []byte {
	out := append(op, amlPkgLength(len(body))...)
	return append(out, body...)
}

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// amlScope encodes Scope(name) { terms }.
func amlScope(name string, terms ...[]byte) []byte {
	return amlPkg([]byte{amlScopeOp}, concat(amlNameString(name), concat(terms...)))
}

// amlDevice encodes Device(name) { terms }.
func amlDevice(name string, terms ...[]byte) []byte {
	return amlPkg([]byte{amlExtOpPrefix, amlDeviceOp}, concat(amlNameString(name), concat(terms...)))
}

// amlPackage encodes Package() { elements }.
func amlPackage(elems ...[]byte) []byte {
	if len(elems) > 0xff {
		panic("AML package with more than 255 elements")
	}
	return amlPkg([]byte{amlPackageOp}, concat([]byte{byte(len(elems))}, concat(elems...)))
}

// amlBuffer encodes Buffer() { data }.
func amlBuffer(data []byte) []byte {
	return amlPkg([]byte{amlBufferOp}, concat(amlInteger(uint64(len(data))), data))
}

// Resource descriptors (ACPI 6.4 §6.4).
const (
	resIRQNoFlags   = 0x22 // small item 0x04, length 2
	resIO           = 0x47 // small item 0x08, length 7
	resEndTag       = 0x79 // small item 0x0f, length 1
	resMemory32Fix  = 0x86 // large item 0x06
	resExtInterrupt = 0x89 // large item 0x09
	resIODecode16   = 1 << 0
	resMemRW        = 1 << 0
	resIntConsumer  = 1 << 0
	resIntEdge      = 1 << 1
	resIntActiveLow = 1 << 2
	resIntShared    = 1 << 3
)

// amlResourceTemplate encodes ResourceTemplate() { descs }: a buffer of
// descriptors closed by an end tag whose checksum 0 means "not checked".
func amlResourceTemplate(descs ...[]byte) []byte {
	return amlBuffer(concat(concat(descs...), []byte{resEndTag, 0}))
}

// resMemory32Fixed encodes Memory32Fixed(ReadWrite|ReadOnly, base, size).
func resMemory32Fixed(rw bool, base, size uint32) []byte {
	info := byte(0)
	if rw {
		info = resMemRW
	}
	b := []byte{resMemory32Fix, 9, 0, info}
	b = binary.LittleEndian.AppendUint32(b, base)
	return binary.LittleEndian.AppendUint32(b, size)
}

// resIOPort encodes IO(Decode16, min, max, align, length).
func resIOPort(minAddr, maxAddr uint16, align, length uint8) []byte {
	b := []byte{resIO, resIODecode16}
	b = binary.LittleEndian.AppendUint16(b, minAddr)
	b = binary.LittleEndian.AppendUint16(b, maxAddr)
	return append(b, align, length)
}

// resIRQ encodes IRQNoFlags() { irqs }: ISA IRQs, edge, active high.
func resIRQ(irqs ...uint8) []byte {
	var mask uint16
	for _, i := range irqs {
		if i > 15 {
			panic(fmt.Sprintf("ISA IRQ %d out of range", i))
		}
		mask |= 1 << i
	}
	return binary.LittleEndian.AppendUint16([]byte{resIRQNoFlags}, mask)
}

// resInterrupt encodes Interrupt(ResourceConsumer, Edge|Level,
// ActiveHigh|ActiveLow, Exclusive|Shared) { gsis }.
func resInterrupt(edge, activeLow, shared bool, gsis ...uint32) []byte {
	if len(gsis) == 0 || len(gsis) > 0xff {
		panic("Interrupt descriptor wants 1 to 255 interrupts")
	}
	flags := byte(resIntConsumer)
	if edge {
		flags |= resIntEdge
	}
	if activeLow {
		flags |= resIntActiveLow
	}
	if shared {
		flags |= resIntShared
	}
	b := []byte{resExtInterrupt}
	b = binary.LittleEndian.AppendUint16(b, uint16(2+4*len(gsis)))
	b = append(b, flags, byte(len(gsis)))
	for _, g := range gsis {
		b = binary.LittleEndian.AppendUint32(b, g)
	}
	return b
}
