package main

// message.go is the same in guests/control and guests/infotainment: the
// vehicle-state message and its end-to-end protection.

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
	msgSize   = 16
	msgDataID = 0x0100
)

type state struct {
	Seq   uint32
	Speed uint16
	RPM   uint16
	Gear  uint8
}

func msgCRC(b []byte) uint32 {
	var id [2]byte
	binary.LittleEndian.PutUint16(id[:], msgDataID)
	return crc32.Update(crc32.ChecksumIEEE(id[:]), crc32.IEEETable, b[:12])
}

func (s state) encode(b []byte) {
	clear(b[:msgSize])
	binary.LittleEndian.PutUint32(b[0:], s.Seq)
	binary.LittleEndian.PutUint16(b[4:], s.Speed)
	binary.LittleEndian.PutUint16(b[6:], s.RPM)
	b[8] = s.Gear
	binary.LittleEndian.PutUint32(b[12:], msgCRC(b))
}

// decode checks the CRC and reads the message.
func decode(b []byte) (state, bool) {
	if binary.LittleEndian.Uint32(b[12:]) != msgCRC(b) {
		return state{}, false
	}
	return state{Seq: binary.LittleEndian.Uint32(b[0:]), Speed: binary.LittleEndian.Uint16(b[4:]),
		RPM: binary.LittleEndian.Uint16(b[6:]), Gear: b[8]}, true
}
