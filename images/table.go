package images

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf16"

	"github.com/tandem-hv/tandem/platforms"
)

// MBR layout (the classic PC partition table; UEFI 2.10, 5.2.1 "Legacy
// MBR").
const (
	mbrSignatureOff = 440 // 32-bit disk signature
	mbrTableOff     = 446
	mbrEntrySize    = 16
	mbrBootable     = 0x80
	mbrTypeFAT16LBA = 0x0e
	mbrTypeLinux    = 0x83
	mbrTypeESP      = 0xef
	mbrTypeGPTProt  = 0xee
)

// GPT layout (UEFI 2.10, 5.3 "GUID Partition Table (GPT) Disk Layout").
const (
	gptSignature     = "EFI PART"
	gptRevision      = 0x00010000
	gptHeaderSize    = 92
	gptEntries       = 128
	gptEntrySize     = 128
	gptEntrySectors  = gptEntries * gptEntrySize / platforms.Sector // 32
	gptNameChars     = 36
	gptAttrLegacyBIO = 1 << 2 // "LegacyBIOSBootable": U-Boot's distro boot looks for it
)

// Partition type GUIDs (UEFI 2.10, table 5.7, and the Discoverable
// Partitions Specification).
const (
	GUIDESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	GUIDBasicData = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"
	GUIDLinuxFS   = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
)

// Partition is one partition of an image.
type Partition struct {
	// Name is the GPT partition name, or a description on MBR.
	Name string
	// Start and Size are in bytes.
	Start, Size int64
	// Type is the MBR type byte as hex ("0e") or the GPT type GUID.
	Type string
	// GUID is the GPT unique partition GUID ("" on MBR).
	GUID     string
	Bootable bool
}

// End returns the first byte past the partition.
func (p Partition) End() int64 { return p.Start + p.Size }

// writeMBR returns the MBR sector for the partitions. Partitions carry
// LBA addresses only: the CHS fields hold the "beyond CHS" marker.
func writeMBR(parts []Partition, signature uint32) ([]byte, error) {
	s := make([]byte, platforms.Sector)
	if len(parts) > 4 {
		return nil, fmt.Errorf("MBR holds 4 primary partitions, not %d", len(parts))
	}
	binary.LittleEndian.PutUint32(s[mbrSignatureOff:], signature)
	for i, p := range parts {
		var typ byte
		if _, err := fmt.Sscanf(p.Type, "%02x", &typ); err != nil {
			return nil, fmt.Errorf("partition %d: MBR type %q: %w", i+1, p.Type, err)
		}
		mbrEntry(s[mbrTableOff+i*mbrEntrySize:], p.Bootable, typ, uint64(p.Start/platforms.Sector), uint64(p.Size/platforms.Sector))
	}
	s[510], s[511] = 0x55, 0xaa
	return s, nil
}

func mbrEntry(e []byte, bootable bool, typ byte, lba, sectors uint64) {
	if bootable {
		e[0] = mbrBootable
	}
	chsMax := []byte{0xfe, 0xff, 0xff}
	copy(e[1:4], chsMax)
	e[4] = typ
	copy(e[5:8], chsMax)
	if lba > 0xffffffff {
		lba = 0xffffffff
	}
	if sectors > 0xffffffff {
		sectors = 0xffffffff
	}
	binary.LittleEndian.PutUint32(e[8:], uint32(lba))
	binary.LittleEndian.PutUint32(e[12:], uint32(sectors))
}

// gptWrites is what a GPT puts on the media: the protective MBR and
// primary header with entries at the start, backup entries and header at
// the end.
type gptWrites struct {
	primary []byte // LBA 0 through 33
	backup  []byte // the last 33 sectors
}

// writeGPT lays out a GPT for a disk of size bytes.
func writeGPT(parts []Partition, size int64, diskGUID string) (gptWrites, error) {
	const sec = platforms.Sector
	lastLBA := uint64(size/sec) - 1
	entries := make([]byte, gptEntries*gptEntrySize)
	for i, p := range parts {
		e := entries[i*gptEntrySize:]
		t, err := guidBytes(p.Type)
		if err != nil {
			return gptWrites{}, fmt.Errorf("partition %d type: %w", i+1, err)
		}
		u, err := guidBytes(p.GUID)
		if err != nil {
			return gptWrites{}, fmt.Errorf("partition %d GUID: %w", i+1, err)
		}
		copy(e[0:16], t)
		copy(e[16:32], u)
		binary.LittleEndian.PutUint64(e[32:], uint64(p.Start/sec))
		binary.LittleEndian.PutUint64(e[40:], uint64(p.End()/sec)-1)
		if p.Bootable {
			binary.LittleEndian.PutUint64(e[48:], gptAttrLegacyBIO)
		}
		name := utf16.Encode([]rune(p.Name))
		if len(name) > gptNameChars {
			return gptWrites{}, fmt.Errorf("partition %d name %q: longer than %d UTF-16 units", i+1, p.Name, gptNameChars)
		}
		for j, c := range name {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	dg, err := guidBytes(diskGUID)
	if err != nil {
		return gptWrites{}, fmt.Errorf("disk GUID: %w", err)
	}
	header := func(my, alt, entryLBA uint64) []byte {
		h := make([]byte, sec)
		copy(h, gptSignature)
		le := binary.LittleEndian
		le.PutUint32(h[8:], gptRevision)
		le.PutUint32(h[12:], gptHeaderSize)
		le.PutUint64(h[24:], my)
		le.PutUint64(h[32:], alt)
		le.PutUint64(h[40:], 2+gptEntrySectors)         // first usable LBA
		le.PutUint64(h[48:], lastLBA-gptEntrySectors-1) // last usable LBA
		copy(h[56:72], dg)
		le.PutUint64(h[72:], entryLBA)
		le.PutUint32(h[80:], gptEntries)
		le.PutUint32(h[84:], gptEntrySize)
		le.PutUint32(h[88:], entriesCRC)
		le.PutUint32(h[16:], crc32.ChecksumIEEE(h[:gptHeaderSize]))
		return h
	}
	var w gptWrites
	pmbr := make([]byte, sec)
	mbrEntry(pmbr[mbrTableOff:], false, mbrTypeGPTProt, 1, lastLBA)
	pmbr[510], pmbr[511] = 0x55, 0xaa
	w.primary = append(append(pmbr, header(1, lastLBA, 2)...), entries...)
	w.backup = append(append([]byte(nil), entries...), header(lastLBA, 1, lastLBA-gptEntrySectors)...)
	return w, nil
}

// guidBytes encodes a GUID in its on-disk form: the first three fields
// little-endian, the rest as written (UEFI 2.10, appendix A).
func guidBytes(s string) ([]byte, error) {
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || strings.Count(s, "-") != 4 {
		return nil, fmt.Errorf("GUID %q: want 8-4-4-4-12 hex digits", s)
	}
	var raw [16]byte
	for i := range raw {
		if _, err := fmt.Sscanf(h[2*i:2*i+2], "%02x", &raw[i]); err != nil {
			return nil, fmt.Errorf("GUID %q: %w", s, err)
		}
	}
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = raw[3], raw[2], raw[1], raw[0]
	b[4], b[5] = raw[5], raw[4]
	b[6], b[7] = raw[7], raw[6]
	copy(b[8:], raw[8:])
	return b, nil
}

// guidString decodes an on-disk GUID.
func guidString(b []byte) string {
	return fmt.Sprintf("%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
}

// ErrNoTable is returned by ReadPartitions for media without a valid
// partition table.
var ErrNoTable = errors.New("no partition table")

// ReadPartitions reads the partition table from the first sectors of an
// image: a GPT when the MBR is protective, the MBR otherwise.
func ReadPartitions(head []byte) (platforms.PartitionTable, []Partition, error) {
	const sec = platforms.Sector
	if len(head) < sec || head[510] != 0x55 || head[511] != 0xaa {
		return "", nil, fmt.Errorf("%w: no 0x55AA signature in sector 0", ErrNoTable)
	}
	le := binary.LittleEndian
	if head[mbrTableOff+4] == mbrTypeGPTProt {
		if len(head) < (2+gptEntrySectors)*sec || string(head[sec:sec+8]) != gptSignature {
			return "", nil, fmt.Errorf("%w: protective MBR but no GPT header at LBA 1", ErrNoTable)
		}
		h := head[sec : 2*sec]
		crc := le.Uint32(h[16:])
		hh := append([]byte(nil), h[:gptHeaderSize]...)
		le.PutUint32(hh[16:], 0)
		if crc32.ChecksumIEEE(hh) != crc {
			return "", nil, fmt.Errorf("%w: GPT header CRC mismatch", ErrNoTable)
		}
		n, size := le.Uint32(h[80:]), le.Uint32(h[84:])
		if n != gptEntries || size != gptEntrySize || le.Uint64(h[72:]) != 2 {
			return "", nil, fmt.Errorf("%w: GPT with %d entries of %d bytes at LBA %d: not one Tandem writes", ErrNoTable, n, size, le.Uint64(h[72:]))
		}
		ents := head[2*sec : (2+gptEntrySectors)*sec]
		if crc32.ChecksumIEEE(ents) != le.Uint32(h[88:]) {
			return "", nil, fmt.Errorf("%w: GPT entry array CRC mismatch", ErrNoTable)
		}
		var parts []Partition
		for i := 0; i < gptEntries; i++ {
			e := ents[i*gptEntrySize : (i+1)*gptEntrySize]
			if string(e[:16]) == string(make([]byte, 16)) {
				continue
			}
			var name []uint16
			for j := 0; j < gptNameChars; j++ {
				c := le.Uint16(e[56+2*j:])
				if c == 0 {
					break
				}
				name = append(name, c)
			}
			first, last := le.Uint64(e[32:]), le.Uint64(e[40:])
			parts = append(parts, Partition{
				Name: string(utf16.Decode(name)), Type: guidString(e[:16]), GUID: guidString(e[16:32]),
				Start: int64(first) * sec, Size: int64(last-first+1) * sec,
				Bootable: le.Uint64(e[48:])&gptAttrLegacyBIO != 0,
			})
		}
		return platforms.GPT, parts, nil
	}
	var parts []Partition
	for i := 0; i < 4; i++ {
		e := head[mbrTableOff+i*mbrEntrySize:]
		if e[4] == 0 {
			continue
		}
		name := fmt.Sprintf("partition %d", i+1)
		switch e[4] {
		case mbrTypeFAT16LBA, mbrTypeESP:
			name = "boot"
		case mbrTypeLinux:
			name = "data"
		}
		parts = append(parts, Partition{
			Name:  name,
			Type:  fmt.Sprintf("%02x", e[4]),
			Start: int64(le.Uint32(e[8:])) * sec, Size: int64(le.Uint32(e[12:])) * sec,
			Bootable: e[0] == mbrBootable,
		})
	}
	return platforms.MBR, parts, nil
}
