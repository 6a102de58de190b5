package fat

import (
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"
)

// Reader reads files from a FAT16 file system, such as Write makes.
type Reader struct {
	r          io.ReaderAt
	base       int64
	perCluster int64
	fatOff     int64
	rootOff    int64
	rootLen    int64
	dataOff    int64
	clusters   uint32
}

// Entry is a directory entry as Reader lists it.
type Entry struct {
	Name string
	Dir  bool
	Size int64
	// Created, Accessed and Modified are the entry's times, read as UTC
	// (FAT records local time; Write records UTC). Accessed is a date;
	// Modified has a 2-second resolution.
	Created, Accessed, Modified time.Time
	cluster                     uint32
}

// Open reads the boot sector of the file system at base in r.
func Open(r io.ReaderAt, base int64) (*Reader, error) {
	s := make([]byte, SectorSize)
	if _, err := r.ReadAt(s, base); err != nil {
		return nil, fmt.Errorf("reading the FAT boot sector: %w", err)
	}
	le := binary.LittleEndian
	if s[510] != 0x55 || s[511] != 0xaa || le.Uint16(s[11:]) != SectorSize {
		return nil, fmt.Errorf("not a FAT file system with %d-byte sectors", SectorSize)
	}
	spc := int64(s[13])
	reserved := int64(le.Uint16(s[14:]))
	nfats := int64(s[16])
	roots := int64(le.Uint16(s[17:]))
	fatSz := int64(le.Uint16(s[22:]))
	total := int64(le.Uint16(s[19:]))
	if total == 0 {
		total = int64(le.Uint32(s[32:]))
	}
	if spc == 0 || fatSz == 0 || roots == 0 {
		return nil, fmt.Errorf("not a FAT16 file system (FAT32 or corrupt BPB)")
	}
	fr := &Reader{r: r, base: base, perCluster: spc * SectorSize}
	fr.fatOff = reserved * SectorSize
	fr.rootOff = (reserved + nfats*fatSz) * SectorSize
	fr.rootLen = roots * dirEntrySize
	fr.dataOff = fr.rootOff + (fr.rootLen+SectorSize-1)/SectorSize*SectorSize
	fr.clusters = uint32((total*SectorSize - fr.dataOff) / fr.perCluster)
	return fr, nil
}

// maxDirBytes bounds a subdirectory: 65536 entries (fatgen103 allows no
// more), so a cyclic chain in a corrupt directory ends.
const maxDirBytes = 65536 * dirEntrySize

// chain follows the FAT from first, for at most max clusters: a file
// needs no more than its size, a corrupt chain may loop.
func (fr *Reader) chain(first uint32, max int64) ([]uint32, error) {
	var cs []uint32
	seen := map[uint32]bool{}
	b := make([]byte, 2)
	for c := first; c >= 2 && c < 0xfff8; {
		if c >= fr.clusters+2 || int64(len(cs)) >= max || seen[c] {
			return nil, fmt.Errorf("FAT chain from cluster %d is corrupt", first)
		}
		seen[c] = true
		cs = append(cs, c)
		if _, err := fr.r.ReadAt(b, fr.base+fr.fatOff+int64(c)*2); err != nil {
			return nil, err
		}
		c = uint32(binary.LittleEndian.Uint16(b))
	}
	return cs, nil
}

func (fr *Reader) read(first uint32, size int64) ([]byte, error) {
	limit := size
	if limit < 0 {
		limit = maxDirBytes
	}
	cs, err := fr.chain(first, (limit+fr.perCluster-1)/fr.perCluster)
	if err != nil {
		return nil, err
	}
	if size > int64(len(cs))*fr.perCluster {
		return nil, fmt.Errorf("file of %d bytes has %d clusters", size, len(cs))
	}
	// Read cluster by cluster: a corrupt BPB or chain fails at the first
	// read past the medium, before much is allocated.
	var out []byte
	buf := make([]byte, fr.perCluster)
	for _, c := range cs {
		if _, err := fr.r.ReadAt(buf, fr.base+fr.dataOff+int64(c-2)*fr.perCluster); err != nil {
			return nil, err
		}
		out = append(out, buf...)
	}
	if size >= 0 {
		out = out[:size]
	}
	return out, nil
}

// ReadDir lists a directory ("" or "/" is the root).
func (fr *Reader) ReadDir(dir string) ([]Entry, error) {
	var raw []byte
	d := strings.Trim(dir, "/")
	if d == "" {
		raw = make([]byte, fr.rootLen)
		if _, err := fr.r.ReadAt(raw, fr.base+fr.rootOff); err != nil {
			return nil, err
		}
	} else {
		e, err := fr.lookup(d)
		if err != nil {
			return nil, err
		}
		if !e.Dir {
			return nil, fmt.Errorf("%s: not a directory", dir)
		}
		if raw, err = fr.read(e.cluster, -1); err != nil {
			return nil, err
		}
	}
	var out []Entry
	var lfn []uint16
	for i := 0; i+dirEntrySize <= len(raw); i += dirEntrySize {
		e := raw[i : i+dirEntrySize]
		switch {
		case e[0] == 0:
			return out, nil
		case e[0] == 0xe5:
			lfn = nil
			continue
		case e[11] == attrLFN:
			var part []uint16
			for _, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				part = append(part, binary.LittleEndian.Uint16(e[o:]))
			}
			lfn = append(part, lfn...)
			continue
		case e[11]&attrVolumeID != 0:
			lfn = nil
			continue
		}
		name := strings.TrimRight(string(e[0:8]), " ")
		if ext := strings.TrimRight(string(e[8:11]), " "); ext != "" {
			name += "." + ext
		}
		if lfn != nil {
			for j, c := range lfn {
				if c == 0 {
					lfn = lfn[:j]
					break
				}
			}
			name = string(utf16.Decode(lfn))
			lfn = nil
		}
		if name == "." || name == ".." {
			continue
		}
		le := binary.LittleEndian
		out = append(out, Entry{
			Name: name, Dir: e[11]&attrDir != 0, Size: int64(le.Uint32(e[28:])),
			Created:  fromDOS(le.Uint16(e[16:]), le.Uint16(e[14:])).Add(time.Duration(e[13]) * 10 * time.Millisecond),
			Accessed: fromDOS(le.Uint16(e[18:]), 0),
			Modified: fromDOS(le.Uint16(e[24:]), le.Uint16(e[22:])),
			cluster:  uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])),
		})
	}
	return out, nil
}

// fromDOS decodes a FAT date and time (dosTime's encoding) as UTC.
func fromDOS(date, tod uint16) time.Time {
	return time.Date(1980+int(date>>9), time.Month(date>>5&0xf), int(date&0x1f),
		int(tod>>11), int(tod>>5&0x3f), int(tod&0x1f)*2, 0, time.UTC)
}

func (fr *Reader) lookup(p string) (Entry, error) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	dir := ""
	var cur Entry
	for _, part := range parts {
		ents, err := fr.ReadDir(dir)
		if err != nil {
			return Entry{}, err
		}
		found := false
		for _, e := range ents {
			if strings.EqualFold(e.Name, part) {
				cur, found = e, true
				break
			}
		}
		if !found {
			return Entry{}, fmt.Errorf("%s: no such file in the FAT file system", p)
		}
		dir += "/" + cur.Name
	}
	return cur, nil
}

// ReadFile returns a file's contents; names match case-insensitively.
func (fr *Reader) ReadFile(p string) ([]byte, error) {
	e, err := fr.lookup(p)
	if err != nil {
		return nil, err
	}
	if e.Dir {
		return nil, fmt.Errorf("%s: is a directory", p)
	}
	return fr.read(e.cluster, e.Size)
}
