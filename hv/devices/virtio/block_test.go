package virtio

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// pattern is the initial content of test disks: every sector differs.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// newTestBlockFile writes a disk image of sectors sectors and returns its path.
func newTestBlockFile(t testing.TB, sectors int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(path, pattern(sectors*SectorSize), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func newTestBlock(t testing.TB, sectors int, readOnly bool) *Block {
	t.Helper()
	b, err := NewBlock(newTestBlockFile(t, sectors), readOnly)
	if err != nil {
		t.Fatalf("NewBlock() = %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func blkHeader(typ uint32, sector uint64) []byte {
	h := make([]byte, blkReqHeader)
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	return h
}

func TestNewBlockErrorNamesPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.img")
	_, err := NewBlock(path, false)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("NewBlock(%q) = %v, want an error naming the path", path, err)
	}
}

func TestBlockConfig(t *testing.T) {
	d := newDriver(t, newTestBlock(t, 2048, false))
	tests := []struct {
		name string
		off  uint64
		size int
		want uint64
	}{
		{"capacity", blkCfgCapacity, 8, 2048},
		{"size_max", blkCfgSizeMax, 4, blkSizeMax},
		{"seg_max", blkCfgSegMax, 4, blkSegMax},
		{"blk_size", blkCfgBlkSize, 4, SectorSize},
		{"past the end", 0x40, 4, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := configRead(d, tt.off, tt.size, 4)
			var got uint64
			if tt.size == 8 {
				got = binary.LittleEndian.Uint64(b)
			} else {
				got = uint64(binary.LittleEndian.Uint32(b))
			}
			if got != tt.want {
				t.Errorf("config %s = %d, want %d", tt.name, got, tt.want)
			}
		})
	}
}

func TestBlockRequests(t *testing.T) {
	const sectors = 64
	tests := []struct {
		name     string
		readOnly bool
		typ      uint32
		sector   uint64
		dataLen  int  // data buffer bytes (written by device for IN/GET_ID, by driver for OUT)
		indirect bool // put the chain in an indirect table
		split    bool // split data over two descriptors
		status   byte
		wantLen  uint32 // used length
		wantDisk bool   // OUT: the data must be on disk afterwards
	}{
		{name: "read one sector", typ: blkTIn, sector: 3, dataLen: 512, status: blkSOK, wantLen: 513},
		{name: "read 4 KiB", typ: blkTIn, sector: 8, dataLen: 4096, status: blkSOK, wantLen: 4097},
		{name: "read split buffers", typ: blkTIn, sector: 1, dataLen: 1024, split: true, status: blkSOK, wantLen: 1025},
		{name: "read indirect", typ: blkTIn, sector: 5, dataLen: 2048, indirect: true, split: true, status: blkSOK, wantLen: 2049},
		{name: "read last sector", typ: blkTIn, sector: sectors - 1, dataLen: 512, status: blkSOK, wantLen: 513},
		{name: "read read-only disk", readOnly: true, typ: blkTIn, sector: 0, dataLen: 512, status: blkSOK, wantLen: 513},
		{name: "read past the end", typ: blkTIn, sector: sectors - 1, dataLen: 1024, status: blkSIOErr, wantLen: 1},
		{name: "read sector beyond disk", typ: blkTIn, sector: sectors, dataLen: 512, status: blkSIOErr, wantLen: 1},
		{name: "read huge sector", typ: blkTIn, sector: ^uint64(0) / 2, dataLen: 512, status: blkSIOErr, wantLen: 1},
		{name: "read partial sector", typ: blkTIn, sector: 0, dataLen: 100, status: blkSIOErr, wantLen: 1},
		{name: "write one sector", typ: blkTOut, sector: 2, dataLen: 512, status: blkSOK, wantLen: 1, wantDisk: true},
		{name: "write split indirect", typ: blkTOut, sector: 10, dataLen: 4096, indirect: true, split: true, status: blkSOK, wantLen: 1, wantDisk: true},
		{name: "write read-only disk", readOnly: true, typ: blkTOut, sector: 2, dataLen: 512, status: blkSIOErr, wantLen: 1},
		{name: "write past the end", typ: blkTOut, sector: sectors, dataLen: 512, status: blkSIOErr, wantLen: 1},
		{name: "flush", typ: blkTFlush, status: blkSOK, wantLen: 1},
		{name: "flush read-only", readOnly: true, typ: blkTFlush, status: blkSOK, wantLen: 1},
		{name: "get id", typ: blkTGetID, dataLen: blkIDBytes, status: blkSOK, wantLen: blkIDBytes + 1},
		{name: "get id short buffer", typ: blkTGetID, dataLen: 4, status: blkSOK, wantLen: 5},
		{name: "unsupported discard", typ: 11, dataLen: 16, status: blkSUnsupp, wantLen: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := newTestBlockFile(t, sectors)
			blk, err := NewBlock(path, tt.readOnly)
			if err != nil {
				t.Fatalf("NewBlock() = %v", err)
			}
			blk.SetSerial("tandem-serial-0123456789") // longer than 20 bytes: cut
			d := newDriver(t, blk)
			d.start(allRingFeatures, 1, 16)
			q := d.q[0]

			hdr := d.allocate(blkReqHeader)
			d.write(hdr, blkHeader(tt.typ, tt.sector))
			data := d.allocate(uint64(tt.dataLen))
			out := bytes.Repeat([]byte{0xa5}, tt.dataLen)
			in := tt.typ != blkTOut
			if tt.typ == blkTOut {
				d.write(data, out)
			}
			st := d.allocate(1)
			d.write(st, []byte{0xff})
			bufs := []buf{{hdr, blkReqHeader, false}}
			if tt.dataLen > 0 {
				if tt.split {
					h := uint32(tt.dataLen / 2)
					bufs = append(bufs, buf{data, h, in}, buf{data + uint64(h), uint32(tt.dataLen) - h, in})
				} else {
					bufs = append(bufs, buf{data, uint32(tt.dataLen), in})
				}
			}
			bufs = append(bufs, buf{st, 1, true})
			var head uint16
			if tt.indirect {
				head = d.addIndirect(q, bufs...)
			} else {
				head = d.add(q, bufs...)
			}
			d.kick(q)

			used := d.takeUsed(q)
			if len(used) != 1 || used[0].id != uint32(head) || used[0].len != tt.wantLen {
				t.Fatalf("used ring = %v, want [{%d %d}]", used, head, tt.wantLen)
			}
			if got := d.read(st, 1)[0]; got != tt.status {
				t.Errorf("status = %d, want %d", got, tt.status)
			}
			if got := d.irq.n.Load(); got != 1 {
				t.Errorf("interrupts = %d, want 1", got)
			}
			if s := d.status(); s&StatusDeviceNeedsReset != 0 {
				t.Errorf("Status = %#x, want no NEEDS_RESET", s)
			}
			disk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			orig := pattern(sectors * SectorSize)
			switch {
			case tt.typ == blkTIn && tt.status == blkSOK:
				off := int(tt.sector) * SectorSize
				if got, want := d.read(data, tt.dataLen), orig[off:off+tt.dataLen]; !bytes.Equal(got, want) {
					t.Errorf("read data differs from disk at sector %d", tt.sector)
				}
			case tt.typ == blkTGetID:
				want := []byte("tandem-serial-0123456789")[:min(tt.dataLen, blkIDBytes)]
				if got := d.read(data, len(want)); !bytes.Equal(got, want) {
					t.Errorf("GET_ID = %q, want %q", got, want)
				}
			case tt.wantDisk:
				off := int(tt.sector) * SectorSize
				want := append(append(append([]byte{}, orig[:off]...), out...), orig[off+len(out):]...)
				if !bytes.Equal(disk, want) {
					t.Errorf("disk after write: sector %d does not hold the data, or other bytes changed", tt.sector)
				}
			default:
				if !bytes.Equal(disk, orig) {
					t.Errorf("disk changed by a %d request with status %d", tt.typ, tt.status)
				}
			}
		})
	}
}

func TestBlockBatchOneInterrupt(t *testing.T) {
	d := newDriver(t, newTestBlock(t, 64, false))
	d.start(allRingFeatures, 1, 16)
	q := d.q[0]
	const n = 4
	for i := 0; i < n; i++ {
		hdr := d.allocate(blkReqHeader)
		d.write(hdr, blkHeader(blkTIn, uint64(i)))
		d.add(q, buf{hdr, blkReqHeader, false}, buf{d.allocate(512), 512, true}, buf{d.allocate(1), 1, true})
	}
	// EVENT_IDX: used_event 0 asks for an interrupt when used idx passes 0.
	d.kick(q)
	if got := len(d.takeUsed(q)); got != n {
		t.Errorf("used elements = %d, want %d", got, n)
	}
	if got := d.irq.n.Load(); got != 1 {
		t.Errorf("interrupts for a batch of %d = %d, want 1", n, got)
	}
}

func BenchmarkBlockRead4K(b *testing.B) {
	const sectors = 2048
	d := newDriver(b, newTestBlock(b, sectors, false))
	d.start(allRingFeatures, 1, 256)
	q := d.q[0]
	hdr := d.allocate(blkReqHeader)
	data := d.allocate(4096)
	st := d.allocate(1)
	b.SetBytes(4096)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		d.write(hdr, blkHeader(blkTIn, uint64(i*8)%sectors))
		d.add(q, buf{hdr, blkReqHeader, false}, buf{data, 4096, true}, buf{st, 1, true})
		d.kick(q)
		if used := d.takeUsed(q); len(used) != 1 {
			b.Fatalf("used = %v", used)
		}
	}
}
