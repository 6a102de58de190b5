// Package vehicle is the vehicle-state message the demo control guest
// publishes and the infotainment guest receives, with its end-to-end
// protection.
package vehicle

import (
	"encoding/binary"
	"hash/crc32"
)

// A state message is 16 bytes, little-endian:
//
//	0  seq    u32  counts up by one per message from 0 (loss, repetition, reordering)
//	4  speed  u16  in 0.01 km/h
//	6  rpm    u16
//	8  gear   u8
//	9  -      3 bytes of zero
//	12 crc    u32  CRC-32 (IEEE) of the data ID and bytes 0-11 (corruption, masquerade)
//
// As in the AUTOSAR E2E profiles, the CRC covers a data ID the message
// does not carry, so a message of another stream fails the check.
const (
	// Size is the length of an encoded message.
	Size   = 16
	dataID = 0x0100
)

// State is one sample of the vehicle's state.
type State struct {
	Seq   uint32
	Speed uint16
	RPM   uint16
	Gear  uint8
}

func crc(b []byte) uint32 {
	var id [2]byte
	binary.LittleEndian.PutUint16(id[:], dataID)
	return crc32.Update(crc32.ChecksumIEEE(id[:]), crc32.IEEETable, b[:12])
}

// Encode writes s with its CRC into b[:Size].
func (s State) Encode(b []byte) {
	clear(b[:Size])
	binary.LittleEndian.PutUint32(b[0:], s.Seq)
	binary.LittleEndian.PutUint16(b[4:], s.Speed)
	binary.LittleEndian.PutUint16(b[6:], s.RPM)
	b[8] = s.Gear
	binary.LittleEndian.PutUint32(b[12:], crc(b))
}

// Decode checks the CRC of b[:Size] and reads the message.
func Decode(b []byte) (State, bool) {
	if binary.LittleEndian.Uint32(b[12:]) != crc(b) {
		return State{}, false
	}
	return State{Seq: binary.LittleEndian.Uint32(b[0:]), Speed: binary.LittleEndian.Uint16(b[4:]),
		RPM: binary.LittleEndian.Uint16(b[6:]), Gear: b[8]}, true
}
