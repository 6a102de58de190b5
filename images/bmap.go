package images

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// BmapBlockSize is the block size of the block maps Tandem writes.
const BmapBlockSize = 4096

// Bmap is a block map in bmaptool's XML format version 2.0
// (bmap-tools, docs/README: "The bmap file format"): which blocks of an
// image hold data, with a SHA256 per range, so a flasher writes only
// those and verifies them.
type Bmap struct {
	ImageSize   int64
	BlockSize   int64
	BlocksCount int64
	Ranges      []BmapRange
}

// BmapRange is the blocks [First, Last] (inclusive) and their SHA256.
type BmapRange struct {
	First, Last int64
	SHA256      string
}

// Mapped returns the number of mapped blocks.
func (m *Bmap) Mapped() int64 {
	var n int64
	for _, r := range m.Ranges {
		n += r.Last - r.First + 1
	}
	return n
}

// extents is a set of byte ranges, merged on demand.
type extents []Range

// Range is a byte range [Off, Off+Len).
type Range struct{ Off, Len int64 }

func (e *extents) add(off, n int64) {
	if n > 0 {
		*e = append(*e, Range{off, n})
	}
}

// blocks returns the ranges rounded out to whole blocks, merged, in
// order, as inclusive block numbers.
func (e extents) blocks(bs, size int64) [][2]int64 {
	var bl [][2]int64
	for _, r := range e {
		first := r.Off / bs
		last := (r.Off + r.Len - 1) / bs
		if max := (size+bs-1)/bs - 1; last > max {
			last = max
		}
		bl = append(bl, [2]int64{first, last})
	}
	sort.Slice(bl, func(i, j int) bool { return bl[i][0] < bl[j][0] })
	var out [][2]int64
	for _, b := range bl {
		if n := len(out); n > 0 && b[0] <= out[n-1][1]+1 {
			if b[1] > out[n-1][1] {
				out[n-1][1] = b[1]
			}
			continue
		}
		out = append(out, b)
	}
	return out
}

// makeBmap hashes the mapped blocks of img, stopping when ctx is done.
func makeBmap(ctx context.Context, img io.ReaderAt, size int64, mapped extents) (*Bmap, error) {
	m := &Bmap{ImageSize: size, BlockSize: BmapBlockSize, BlocksCount: (size + BmapBlockSize - 1) / BmapBlockSize}
	for _, b := range mapped.blocks(BmapBlockSize, size) {
		h := sha256.New()
		off := b[0] * BmapBlockSize
		end := (b[1] + 1) * BmapBlockSize
		if end > size {
			end = size
		}
		if _, err := io.Copy(ctxWriter{ctx, h}, io.NewSectionReader(img, off, end-off)); err != nil {
			return nil, fmt.Errorf("hashing blocks %d-%d: %w", b[0], b[1], err)
		}
		m.Ranges = append(m.Ranges, BmapRange{First: b[0], Last: b[1], SHA256: hex.EncodeToString(h.Sum(nil))})
	}
	return m, nil
}

// zeroChecksum stands in for the file's own checksum while it is
// computed: bmaptool hashes the file with the field set to 64 zeros.
var zeroChecksum = strings.Repeat("0", 64)

// Marshal writes the block map as bmaptool reads it.
func (m *Bmap) Marshal() []byte {
	gen := func(sum string) []byte {
		var b bytes.Buffer
		b.WriteString("<?xml version=\"1.0\" ?>\n")
		b.WriteString("<!-- Block map written by tandem image build: flash with `bmaptool copy` or `tandem image flash`. -->\n")
		b.WriteString("<bmap version=\"2.0\">\n")
		fmt.Fprintf(&b, "    <ImageSize> %d </ImageSize>\n", m.ImageSize)
		fmt.Fprintf(&b, "    <BlockSize> %d </BlockSize>\n", m.BlockSize)
		fmt.Fprintf(&b, "    <BlocksCount> %d </BlocksCount>\n", m.BlocksCount)
		fmt.Fprintf(&b, "    <MappedBlocksCount> %d </MappedBlocksCount>\n", m.Mapped())
		b.WriteString("    <ChecksumType> sha256 </ChecksumType>\n")
		fmt.Fprintf(&b, "    <BmapFileChecksum> %s </BmapFileChecksum>\n", sum)
		b.WriteString("    <BlockMap>\n")
		for _, r := range m.Ranges {
			if r.First == r.Last {
				fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d </Range>\n", r.SHA256, r.First)
			} else {
				fmt.Fprintf(&b, "        <Range chksum=\"%s\"> %d-%d </Range>\n", r.SHA256, r.First, r.Last)
			}
		}
		b.WriteString("    </BlockMap>\n</bmap>\n")
		return b.Bytes()
	}
	sum := sha256.Sum256(gen(zeroChecksum))
	return gen(hex.EncodeToString(sum[:]))
}

type bmapXML struct {
	Version     string `xml:"version,attr"`
	ImageSize   string `xml:"ImageSize"`
	BlockSize   string `xml:"BlockSize"`
	BlocksCount string `xml:"BlocksCount"`
	Checksum    string `xml:"BmapFileChecksum"`
	Type        string `xml:"ChecksumType"`
	Ranges      []struct {
		Sum  string `xml:"chksum,attr"`
		Text string `xml:",chardata"`
	} `xml:"BlockMap>Range"`
}

// ParseBmap reads a version 2.x block map and checks its own checksum.
func ParseBmap(data []byte) (*Bmap, error) {
	var x bmapXML
	if err := xml.Unmarshal(data, &x); err != nil {
		return nil, fmt.Errorf("parsing bmap: %w", err)
	}
	if !strings.HasPrefix(x.Version, "2.") {
		return nil, fmt.Errorf("bmap version %q: want 2.x", x.Version)
	}
	if t := strings.TrimSpace(x.Type); t != "sha256" {
		return nil, fmt.Errorf("bmap checksum type %q: want sha256", t)
	}
	sum := strings.TrimSpace(x.Checksum)
	zeroed := bytes.Replace(data, []byte(sum), []byte(zeroChecksum), 1)
	if got := sha256.Sum256(zeroed); hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("bmap file checksum mismatch: the bmap is corrupt")
	}
	num := func(s, what string) (int64, error) {
		v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bmap %s %q: %w", what, s, err)
		}
		return v, nil
	}
	m := &Bmap{}
	var err error
	if m.ImageSize, err = num(x.ImageSize, "ImageSize"); err != nil {
		return nil, err
	}
	if m.BlockSize, err = num(x.BlockSize, "BlockSize"); err != nil {
		return nil, err
	}
	if m.BlocksCount, err = num(x.BlocksCount, "BlocksCount"); err != nil {
		return nil, err
	}
	if m.BlockSize <= 0 || m.BlocksCount != (m.ImageSize+m.BlockSize-1)/m.BlockSize {
		return nil, fmt.Errorf("bmap: %d blocks of %d bytes do not cover %d bytes", m.BlocksCount, m.BlockSize, m.ImageSize)
	}
	for _, r := range x.Ranges {
		a, b, found := strings.Cut(strings.TrimSpace(r.Text), "-")
		first, err := num(a, "range")
		if err != nil {
			return nil, err
		}
		last := first
		if found {
			if last, err = num(b, "range"); err != nil {
				return nil, err
			}
		}
		if first > last || last >= m.BlocksCount {
			return nil, fmt.Errorf("bmap range %q outside the image's %d blocks", r.Text, m.BlocksCount)
		}
		m.Ranges = append(m.Ranges, BmapRange{First: first, Last: last, SHA256: strings.TrimSpace(r.Sum)})
	}
	return m, nil
}

// BmapPath is the block map's file beside an image: out.img → out.bmap,
// where bmaptool looks for it.
func BmapPath(image string) string {
	return strings.TrimSuffix(image, ".img") + ".bmap"
}
