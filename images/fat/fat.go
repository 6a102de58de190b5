// Package fat writes FAT16 file systems for boot partitions: the few files
// a firmware or U-Boot reads (kernel, device tree, initramfs, boot script,
// MLO, an EFI tree), laid out contiguously, with long file names.
//
// The layout follows Microsoft's "FAT: General Overview of On-Disk Format"
// (FAT specification 1.03, 2000), cited below as "fatgen103". Output is
// deterministic: entries are sorted, every timestamp is the caller's, and
// the volume serial number is the caller's, so two builds of the same
// files are byte-identical.
//
// Only FAT16 is written. It covers boot partitions from 2 MiB to 2 GiB,
// every U-Boot and Linux reads it, and UEFI firmware accepts it for an EFI
// system partition on removable media (UEFI 2.10, 13.3.1.1).
package fat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
)

// Geometry and format constants (fatgen103, "Boot Sector and BPB").
const (
	SectorSize      = 512
	numFATs         = 2
	reservedSectors = 4 // room for the boot sector; keeps the FATs 2 KiB aligned
	rootEntries     = 512
	dirEntrySize    = 32
	mediaFixed      = 0xf8
	bootSignature   = 0x29 // extended boot signature: serial, label, type follow
	// FAT16 needs at least 4085 and at most 65524 clusters (fatgen103,
	// "FAT Type Determination"): the count alone decides the type.
	minClusters16 = 4085
	maxClusters16 = 65524
	fat16EOC      = 0xffff
	maxClusterLen = 32 << 10 // 64 sectors: the largest cluster every driver reads
)

// Directory entry attributes (fatgen103, "FAT Directory Structure").
const (
	attrReadOnly = 0x01
	attrHidden   = 0x02
	attrSystem   = 0x04
	attrVolumeID = 0x08
	attrDir      = 0x10
	attrArchive  = 0x20
	attrLFN      = attrReadOnly | attrHidden | attrSystem | attrVolumeID
	lfnLast      = 0x40 // LDIR_Ord flag of the last (first stored) long entry
	lfnChars     = 13   // UCS-2 characters per long entry
)

// Errors callers branch on.
var (
	ErrTooSmall = errors.New("file system too small for its files")
	ErrTooLarge = errors.New("file system too large for FAT16")
	ErrName     = errors.New("bad file name")
)

// File is one file to put into the file system.
type File struct {
	// Path inside the file system, '/'-separated ("EFI/BOOT/BOOTAA64.EFI");
	// directories are created as needed.
	Path string
	// Source is the host file to copy, or "" for Data.
	Source string
	Data   []byte
	// First puts the file ahead of the others in its directory and on the
	// media: boot ROMs that read only the first root entry want it (the
	// OMAP ROM code and MLO).
	First bool
}

// Options describe the file system.
type Options struct {
	// Size is the file system's size in bytes, a multiple of SectorSize.
	Size int64
	// Label is the volume label, at most 11 characters (upper-cased).
	Label string
	// Serial is the volume serial number.
	Serial uint32
	// Time stamps every entry; times before 1980 become 1980-01-01.
	Time time.Time
	// HiddenSectors is the partition's first LBA, stored in the BPB.
	HiddenSectors uint32
}

// Range is a byte range [Off, Off+Len) of the file system that holds
// data: everything else reads as zeros and need not be written.
type Range struct{ Off, Len int64 }

// Write writes the file system to w at byte offset base, writing only
// where it holds data, and returns the ranges written (relative to base),
// in order. Nothing is written when the files do not fit.
func Write(w io.WriterAt, base int64, files []File, opt Options) ([]Range, error) {
	geo, err := geometryFor(opt.Size)
	if err != nil {
		return nil, err
	}
	root, err := tree(files)
	if err != nil {
		return nil, err
	}
	b := &builder{geo: geo, opt: opt, fat: make([]uint16, geo.clusters+2), next: 2}
	b.fat[0] = 0xff00 | mediaFixed
	b.fat[1] = fat16EOC
	if err := b.allocate(root); err != nil {
		return nil, err
	}
	return b.write(w, base, root)
}

// geometry is a FAT16 layout in sectors.
type geometry struct {
	total      uint32 // sectors in the file system
	perCluster uint32 // sectors per cluster
	fatSectors uint32 // sectors per FAT
	clusters   uint32 // data clusters
}

func (g geometry) rootStart() uint32 { return reservedSectors + numFATs*g.fatSectors }
func (g geometry) dataStart() uint32 {
	return g.rootStart() + rootEntries*dirEntrySize/SectorSize
}
func (g geometry) clusterBytes() int64 { return int64(g.perCluster) * SectorSize }

// clusterOff is the byte offset of data cluster n (the first is 2).
func (g geometry) clusterOff(n uint32) int64 {
	return int64(g.dataStart())*SectorSize + int64(n-2)*g.clusterBytes()
}

// geometryFor picks the smallest cluster that keeps the count within
// FAT16's range: small clusters waste the least space.
func geometryFor(size int64) (geometry, error) {
	if size <= 0 || size%SectorSize != 0 {
		return geometry{}, fmt.Errorf("size %d: want a positive multiple of %d", size, SectorSize)
	}
	if size/SectorSize > 1<<32-1 {
		return geometry{}, fmt.Errorf("%w: %d bytes", ErrTooLarge, size)
	}
	total := uint32(size / SectorSize)
	for spc := uint32(1); spc*SectorSize <= maxClusterLen; spc *= 2 {
		// The FAT's size depends on the cluster count and vice versa:
		// grow the FAT from one sector until it holds an entry for every
		// cluster the rest leaves room for. Growing it only shrinks the
		// data area, so this ends, with the count of the FAT kept; a FAT
		// a sector larger than the count needs is allowed (fatgen103).
		// A search that may shrink it again can swing between two sizes
		// and stop with the count of one and the FAT of the other.
		fatSectors := uint32(1)
		var clusters uint32
		for {
			meta := reservedSectors + numFATs*fatSectors + rootEntries*dirEntrySize/SectorSize
			if meta >= total {
				return geometry{}, fmt.Errorf("%w: %d bytes holds no data area", ErrTooSmall, size)
			}
			clusters = (total - meta) / spc
			need := ((clusters+2)*2 + SectorSize - 1) / SectorSize
			if need <= fatSectors {
				break
			}
			fatSectors = need
		}
		if clusters > maxClusters16 {
			continue
		}
		if clusters < minClusters16 {
			return geometry{}, fmt.Errorf("%w: %d bytes gives %d clusters, FAT16 needs %d (at least %d KiB)",
				ErrTooSmall, size, clusters, minClusters16, (minClusters16*SectorSize+(64<<10))>>10)
		}
		return geometry{total: total, perCluster: spc, fatSectors: fatSectors, clusters: clusters}, nil
	}
	return geometry{}, fmt.Errorf("%w: %d bytes needs more than %d clusters of %d KiB", ErrTooLarge, size, maxClusters16, maxClusterLen>>10)
}

// node is a file or directory of the tree being written.
type node struct {
	name     string
	dir      bool
	file     File
	size     int64
	children []*node
	cluster  uint32 // first cluster, 0 for empty files and the root
	short    [11]byte
}

func tree(files []File) (*node, error) {
	root := &node{dir: true}
	for _, f := range files {
		p := strings.Trim(path.Clean("/"+f.Path), "/")
		if p == "" || p == "." {
			return nil, fmt.Errorf("%w: %q", ErrName, f.Path)
		}
		parts := strings.Split(p, "/")
		cur := root
		for i, part := range parts {
			if err := checkName(part); err != nil {
				return nil, fmt.Errorf("%s: %w", f.Path, err)
			}
			var next *node
			for _, c := range cur.children {
				if strings.EqualFold(c.name, part) {
					next = c
				}
			}
			last := i == len(parts)-1
			switch {
			case next == nil && last:
				n := &node{name: part, file: f}
				if f.Source != "" {
					fi, err := os.Stat(f.Source)
					if err != nil {
						return nil, fmt.Errorf("boot file %s: %w", f.Path, err)
					}
					if !fi.Mode().IsRegular() {
						return nil, fmt.Errorf("boot file %s: %s is not a regular file", f.Path, f.Source)
					}
					n.size = fi.Size()
				} else {
					n.size = int64(len(f.Data))
				}
				if n.size > 1<<32-1 {
					return nil, fmt.Errorf("boot file %s: %d bytes, FAT holds at most 4 GiB - 1", f.Path, n.size)
				}
				cur.children = append(cur.children, n)
			case next == nil:
				next = &node{name: part, dir: true}
				cur.children = append(cur.children, next)
				cur = next
			case last || !next.dir:
				return nil, fmt.Errorf("%w: %s given twice (names are case-insensitive)", ErrName, f.Path)
			default:
				cur = next
			}
		}
	}
	return root, nil
}

func checkName(s string) error {
	if s == "." || s == ".." || len(s) > 255 {
		return fmt.Errorf("%w: %q", ErrName, s)
	}
	for _, r := range s {
		if r < 0x20 || r > 0xffff || strings.ContainsRune(`"*/:<>?\|`, r) {
			return fmt.Errorf("%w: %q has character %q", ErrName, s, r)
		}
	}
	return nil
}

type builder struct {
	geo  geometry
	opt  Options
	fat  []uint16
	next uint32 // next free cluster
}

// entries returns a directory's 32-byte entries, short names assigned.
func (b *builder) entries(d *node, isRoot bool, parent uint32) []byte {
	var out []byte
	stamp := dosTime(b.opt.Time)
	if isRoot {
		if lbl := label(b.opt.Label); lbl != [11]byte{} {
			out = append(out, shortEntry(lbl, attrVolumeID|attrArchive, 0, 0, stamp)...)
		}
	} else {
		dot := [11]byte{'.', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '}
		dotdot := dot
		dotdot[1] = '.'
		out = append(out, shortEntry(dot, attrDir, d.cluster, 0, stamp)...)
		// ".." of a child of the root points at cluster 0 (fatgen103).
		out = append(out, shortEntry(dotdot, attrDir, parent, 0, stamp)...)
	}
	used := map[[11]byte]bool{}
	for _, c := range d.children {
		sn, exact := shortName(c.name, used)
		used[sn] = true
		c.short = sn
		if !exact {
			out = append(out, longEntries(c.name, sn)...)
		}
		attr := byte(attrArchive)
		size := uint32(c.size)
		if c.dir {
			attr, size = attrDir, 0
		}
		out = append(out, shortEntry(sn, attr, c.cluster, size, stamp)...)
	}
	return out
}

// dirBytes is a directory's size on disk, rounded to whole clusters.
func (b *builder) dirBytes(d *node, isRoot bool) int64 {
	n := int64(len(b.entries(d, isRoot, 0)))
	if isRoot {
		return n
	}
	cb := b.geo.clusterBytes()
	return (n + cb - 1) / cb * cb
}

func (b *builder) take(bytes int64) (uint32, error) {
	if bytes == 0 {
		return 0, nil
	}
	cb := b.geo.clusterBytes()
	n := uint32((bytes + cb - 1) / cb)
	if uint64(b.next)+uint64(n) > uint64(b.geo.clusters)+2 {
		return 0, fmt.Errorf("%w: %d bytes of clusters %d KiB each exceed the %d free", ErrTooSmall, bytes, cb>>10, b.geo.clusters+2-b.next)
	}
	first := b.next
	for i := uint32(0); i < n; i++ {
		c := first + i
		if i == n-1 {
			b.fat[c] = fat16EOC
		} else {
			b.fat[c] = uint16(c + 1)
		}
	}
	b.next += n
	return first, nil
}

// allocate sorts the tree and gives every directory and file its
// clusters: directories first (breadth-first), then files in the same
// order, so the files a ROM loader wants first (MLO) sit early and every
// file is contiguous.
func (b *builder) allocate(root *node) error {
	var walk func(d *node)
	walk = func(d *node) {
		sort.SliceStable(d.children, func(i, j int) bool { return less(d.children[i], d.children[j]) })
		for _, c := range d.children {
			if c.dir {
				walk(c)
			}
		}
	}
	walk(root)
	if len(b.entries(root, true, 0)) > rootEntries*dirEntrySize {
		return fmt.Errorf("%w: the root directory holds %d entries", ErrTooSmall, rootEntries)
	}
	queue := []*node{root}
	var files []*node
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, c := range d.children {
			if c.dir {
				cl, err := b.take(b.dirBytes(c, false))
				if err != nil {
					return err
				}
				c.cluster = cl
				queue = append(queue, c)
			} else {
				files = append(files, c)
			}
		}
	}
	for _, f := range files {
		cl, err := b.take(f.size)
		if err != nil {
			return fmt.Errorf("%s: %w", f.file.Path, err)
		}
		f.cluster = cl
	}
	return nil
}

// less orders a directory: First files, then by name, case-insensitively.
func less(a, b *node) bool {
	if a.file.First != b.file.First {
		return a.file.First
	}
	return strings.ToUpper(a.name) < strings.ToUpper(b.name)
}

func (b *builder) write(w io.WriterAt, base int64, root *node) ([]Range, error) {
	var ranges []Range
	put := func(off int64, data []byte) error {
		if _, err := w.WriteAt(data, base+off); err != nil {
			return err
		}
		ranges = append(ranges, Range{off, int64(len(data))})
		return nil
	}
	// Reserved sectors, FATs and the root directory are one range: on a
	// used card they must be overwritten with zeros, not skipped.
	meta := make([]byte, int64(b.geo.dataStart())*SectorSize)
	copy(meta, b.bootSector())
	fatBytes := make([]byte, int64(b.geo.fatSectors)*SectorSize)
	for i, v := range b.fat {
		binary.LittleEndian.PutUint16(fatBytes[2*i:], v)
	}
	for i := 0; i < numFATs; i++ {
		copy(meta[(reservedSectors+uint32(i)*b.geo.fatSectors)*SectorSize:], fatBytes)
	}
	copy(meta[b.geo.rootStart()*SectorSize:], b.entries(root, true, 0))
	if err := put(0, meta); err != nil {
		return nil, err
	}
	var files []*node
	queue := []*node{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, c := range d.children {
			if !c.dir {
				files = append(files, c)
				continue
			}
			parent := d.cluster
			data := b.entries(c, false, parent)
			buf := make([]byte, b.dirBytes(c, false))
			copy(buf, data)
			if err := put(b.geo.clusterOff(c.cluster), buf); err != nil {
				return nil, err
			}
			queue = append(queue, c)
		}
	}
	for _, f := range files {
		if f.size == 0 {
			continue
		}
		if err := b.writeFile(w, base, f); err != nil {
			return nil, err
		}
		cb := b.geo.clusterBytes()
		ranges = append(ranges, Range{b.geo.clusterOff(f.cluster), (f.size + cb - 1) / cb * cb})
	}
	return ranges, nil
}

// writeFile copies a file into its clusters. A source that changed size
// since it was measured is an error: the FAT already says how long it is.
func (b *builder) writeFile(w io.WriterAt, base int64, f *node) error {
	off := base + b.geo.clusterOff(f.cluster)
	cb := b.geo.clusterBytes()
	slack := (f.size+cb-1)/cb*cb - f.size
	if f.file.Source == "" {
		_, err := w.WriteAt(append(append([]byte(nil), f.file.Data...), make([]byte, slack)...), off)
		return err
	}
	src, err := os.Open(f.file.Source)
	if err != nil {
		return fmt.Errorf("boot file %s: %w", f.file.Path, err)
	}
	defer src.Close()
	n, err := io.Copy(io.NewOffsetWriter(w, off), io.LimitReader(src, f.size+1))
	if err != nil {
		return fmt.Errorf("copying %s into %s: %w", f.file.Source, f.file.Path, err)
	}
	if n != f.size {
		return fmt.Errorf("boot file %s: %s changed size while being copied (%d bytes, was %d)", f.file.Path, f.file.Source, n, f.size)
	}
	if slack > 0 {
		_, err = w.WriteAt(make([]byte, slack), off+n)
	}
	return err
}

// bootSector is the FAT16 boot sector with its BPB (fatgen103, "Boot
// Sector and BPB Structure" and "FAT12 and FAT16 Structure Starting at
// Offset 36").
func (b *builder) bootSector() []byte {
	s := make([]byte, SectorSize)
	copy(s[0:], []byte{0xeb, 0x3c, 0x90}) // jmp short 0x3e; nop
	copy(s[3:11], "TANDEM  ")
	le := binary.LittleEndian
	le.PutUint16(s[11:], SectorSize)
	s[13] = byte(b.geo.perCluster)
	le.PutUint16(s[14:], reservedSectors)
	s[16] = numFATs
	le.PutUint16(s[17:], rootEntries)
	if b.geo.total < 1<<16 {
		le.PutUint16(s[19:], uint16(b.geo.total))
	} else {
		le.PutUint32(s[32:], b.geo.total)
	}
	s[21] = mediaFixed
	le.PutUint16(s[22:], uint16(b.geo.fatSectors))
	le.PutUint16(s[24:], 63)  // sectors per track: the customary LBA translation
	le.PutUint16(s[26:], 255) // heads
	le.PutUint32(s[28:], b.opt.HiddenSectors)
	s[36] = 0x80 // drive number: a fixed disk
	s[38] = bootSignature
	le.PutUint32(s[39:], b.opt.Serial)
	lbl := label(b.opt.Label)
	if lbl == [11]byte{} {
		copy(lbl[:], "NO NAME    ")
	}
	copy(s[43:54], lbl[:])
	copy(s[54:62], "FAT16   ")
	// Boot code: a message for a PC BIOS that tries to boot the
	// partition, then halt. int 0x10 teletype output of the string.
	code := []byte{
		0x0e, 0x1f, // push cs; pop ds
		0xbe, 0x5b, 0x7c, // mov si, msg (0x7c00 + 0x5b)
		0xac,       // lodsb
		0x22, 0xc0, // and al, al
		0x74, 0x0b, // jz halt
		0x56,       // push si
		0xb4, 0x0e, // mov ah, 0x0e
		0xbb, 0x07, 0x00, // mov bx, 7
		0xcd, 0x10, // int 0x10
		0x5e,       // pop si
		0xeb, 0xf0, // jmp lodsb
		0xf4,       // halt: hlt
		0xeb, 0xfd, // jmp halt
	}
	copy(s[0x3e:], code)
	copy(s[0x5b:], "Tandem boot partition: not bootable by a PC BIOS.\r\n\x00")
	s[510], s[511] = 0x55, 0xaa
	return s
}

// label returns the 11-byte volume label, space padded, or zeros for none.
func label(s string) [11]byte {
	var l [11]byte
	if s == "" {
		return l
	}
	s = strings.ToUpper(s)
	for i := range l {
		l[i] = ' '
		if i < len(s) {
			l[i] = s[i]
		}
	}
	return l
}

// dosStamp is a FAT date and time; tenths carries the creation time's
// odd second (in units of 10 ms), which the 2-second time field lacks.
type dosStamp struct {
	date, time uint16
	tenths     byte
}

// dosTime encodes t as a FAT date and time (2-second resolution, with the
// creation time's odd second apart; years 1980-2107; local time by
// convention: UTC here, for reproducibility).
func dosTime(t time.Time) dosStamp {
	t = t.UTC()
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if t.Year() > 2107 {
		t = time.Date(2107, 12, 31, 23, 59, 58, 0, time.UTC)
	}
	return dosStamp{
		date:   uint16((t.Year()-1980)<<9 | int(t.Month())<<5 | t.Day()),
		time:   uint16(t.Hour()<<11 | t.Minute()<<5 | t.Second()/2),
		tenths: byte(t.Second() % 2 * 100),
	}
}

func shortEntry(name [11]byte, attr byte, cluster, size uint32, t dosStamp) []byte {
	e := make([]byte, dirEntrySize)
	copy(e[0:11], name[:])
	e[11] = attr
	e[13] = t.tenths
	le := binary.LittleEndian
	le.PutUint16(e[14:], t.time) // creation
	le.PutUint16(e[16:], t.date)
	le.PutUint16(e[18:], t.date) // last access
	le.PutUint16(e[20:], uint16(cluster>>16))
	le.PutUint16(e[22:], t.time) // last write
	le.PutUint16(e[24:], t.date)
	le.PutUint16(e[26:], uint16(cluster))
	le.PutUint32(e[28:], size)
	return e
}

// shortName returns the 8.3 name for name, and whether it is the name
// itself (an upper-case 8.3 name needs no long entries). Otherwise it is
// a numbered basis name (fatgen103, "The Basis-Name Generation
// Algorithm"), unique among used.
func shortName(name string, used map[[11]byte]bool) ([11]byte, bool) {
	var sn [11]byte
	for i := range sn {
		sn[i] = ' '
	}
	base, ext := name, ""
	if i := strings.LastIndex(name, "."); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	if valid83(base, 8) && valid83(ext, 3) && name == strings.ToUpper(name) && !used[pack(base, ext)] {
		return pack(base, ext), true
	}
	clean := func(s string, n int) string {
		var b strings.Builder
		for _, r := range strings.ToUpper(s) {
			switch {
			case r == ' ' || r == '.':
				continue
			case r > 0x7e || strings.ContainsRune(`+,;=[]`, r):
				b.WriteByte('_')
			default:
				b.WriteRune(r)
			}
			if b.Len() == n {
				break
			}
		}
		return b.String()
	}
	cb, ce := clean(base, 8), clean(ext, 3)
	for n := 1; ; n++ {
		tail := fmt.Sprintf("~%d", n)
		b := cb
		if len(b)+len(tail) > 8 {
			b = b[:8-len(tail)]
		}
		sn = pack(b+tail, ce)
		if !used[sn] {
			return sn, false
		}
	}
}

func valid83(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r > 0x7e || strings.ContainsRune(`"*+,./:;<=>?[\]|`, r) {
			return false
		}
	}
	return true
}

func pack(base, ext string) [11]byte {
	var sn [11]byte
	for i := range sn {
		sn[i] = ' '
	}
	copy(sn[0:8], base)
	copy(sn[8:11], ext)
	return sn
}

// checksum is the short name's checksum the long entries carry
// (fatgen103, "ChkSum").
func checksum(sn [11]byte) byte {
	var sum byte
	for _, c := range sn {
		sum = (sum>>1 | sum<<7) + c
	}
	return sum
}

// longEntries returns the long-name entries that precede a short entry,
// last part first (fatgen103, "FAT Long Directory Entries").
func longEntries(name string, sn [11]byte) []byte {
	u := utf16.Encode([]rune(name))
	n := (len(u) + lfnChars - 1) / lfnChars
	sum := checksum(sn)
	var out []byte
	for i := n; i >= 1; i-- {
		e := make([]byte, dirEntrySize)
		e[0] = byte(i)
		if i == n {
			e[0] |= lfnLast
		}
		e[11] = attrLFN
		e[13] = sum
		// The name is NUL terminated unless it fills the last entry, and
		// padded with 0xFFFF after the NUL.
		chars := make([]uint16, lfnChars)
		for j := range chars {
			k := (i-1)*lfnChars + j
			switch {
			case k < len(u):
				chars[j] = u[k]
			case k == len(u):
				chars[j] = 0
			default:
				chars[j] = 0xffff
			}
		}
		offs := []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30}
		for j, o := range offs {
			binary.LittleEndian.PutUint16(e[o:], chars[j])
		}
		out = append(out, e...)
	}
	return out
}
