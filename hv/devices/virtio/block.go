package virtio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// virtio-blk feature bits (spec §5.2.3).
const (
	blkFSizeMax = 1 // VIRTIO_BLK_F_SIZE_MAX
	blkFSegMax  = 2 // VIRTIO_BLK_F_SEG_MAX
	blkFRO      = 5 // VIRTIO_BLK_F_RO
	blkFBlkSize = 6 // VIRTIO_BLK_F_BLK_SIZE
	blkFFlush   = 9 // VIRTIO_BLK_F_FLUSH
)

// Request types and status values (spec §5.2.6).
const (
	blkTIn    = 0 // VIRTIO_BLK_T_IN
	blkTOut   = 1 // VIRTIO_BLK_T_OUT
	blkTFlush = 4 // VIRTIO_BLK_T_FLUSH
	blkTGetID = 8 // VIRTIO_BLK_T_GET_ID

	blkSOK     = 0 // VIRTIO_BLK_S_OK
	blkSIOErr  = 1 // VIRTIO_BLK_S_IOERR
	blkSUnsupp = 2 // VIRTIO_BLK_S_UNSUPP
)

const (
	// SectorSize is the unit of virtio-blk's capacity and request
	// sectors, whatever the backend's block size (spec §5.2.4).
	SectorSize = 512
	// blkReqHeader is struct virtio_blk_req's type, reserved and sector.
	blkReqHeader = 16
	// blkIDBytes is the length of a GET_ID answer (VIRTIO_BLK_ID_BYTES).
	blkIDBytes = 20

	// blkSegMax and blkSizeMax bound one request: with them Linux sends
	// requests of up to 512 KiB in one chain (128 pages) rather than
	// many small ones, and no single segment above 1 MiB.
	blkSegMax  = 128
	blkSizeMax = 1 << 20

	// Offsets in struct virtio_blk_config (spec §5.2.4).
	blkCfgCapacity = 0
	blkCfgSizeMax  = 8
	blkCfgSegMax   = 12
	blkCfgBlkSize  = 20
	blkCfgLen      = 24 // through blk_size; later fields need features we do not offer
)

// Block is a virtio-blk device (spec §5.2) backed by a raw image file or a
// host block device.
type Block struct {
	path     string
	readOnly bool
	capacity uint64 // in sectors
	config   [blkCfgLen]byte

	// mu serialises request processing on the queue, the Activate and
	// Reset that hand it over, and changes of serial and file.
	// Lock order: MMIO.mu before Block.mu.
	mu     sync.Mutex
	file   *os.File
	serial [blkIDBytes]byte
	queue  *Queue
	chain  Chain
	iov    [][]byte
}

// NewBlock opens the image at path (read-write, or read-only when
// readOnly) as a virtio-blk device. Its capacity is the file's size
// rounded down to whole sectors; its serial is the file's base name,
// cut to 20 bytes.
func NewBlock(path string, readOnly bool) (*Block, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("opening disk image: %w", err)
	}
	// Seek finds the size of block devices too, where Stat reports 0.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("finding the size of disk image %s: %w", path, err)
	}
	b := &Block{path: path, readOnly: readOnly, file: f, capacity: uint64(size) / SectorSize}
	b.SetSerial(filepath.Base(path))
	binary.LittleEndian.PutUint64(b.config[blkCfgCapacity:], b.capacity)
	binary.LittleEndian.PutUint32(b.config[blkCfgSizeMax:], blkSizeMax)
	binary.LittleEndian.PutUint32(b.config[blkCfgSegMax:], blkSegMax)
	binary.LittleEndian.PutUint32(b.config[blkCfgBlkSize:], SectorSize)
	return b, nil
}

// SetSerial sets the serial the guest reads with VIRTIO_BLK_T_GET_ID
// (/sys/block/vda/serial); it is cut to 20 bytes.
func (b *Block) SetSerial(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.serial = [blkIDBytes]byte{}
	copy(b.serial[:], s)
}

// Capacity returns the disk size in 512-byte sectors.
func (b *Block) Capacity() uint64 { return b.capacity }

func (b *Block) DeviceID() uint32   { return IDBlock }
func (b *Block) Name() string       { return "virtio-blk" }
func (b *Block) QueueMax() []uint16 { return []uint16{defaultQueueMax} }

func (b *Block) Features() uint64 {
	f := uint64(1<<blkFSizeMax | 1<<blkFSegMax | 1<<blkFBlkSize | 1<<blkFFlush)
	if b.readOnly {
		f |= 1 << blkFRO
	}
	return f
}

func (b *Block) ReadConfig(off uint64, data []byte)  { readConfig(b.config[:], off, data) }
func (b *Block) WriteConfig(off uint64, data []byte) {}

// readConfig copies from a device's configuration space; what lies past
// its end reads as zero.
func readConfig(cfg []byte, off uint64, data []byte) {
	clear(data)
	if off < uint64(len(cfg)) {
		copy(data, cfg[off:])
	}
}

func (b *Block) Activate(features uint64, queues []*Queue) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if queues[0] == nil {
		return errors.New("request queue 0 not set up")
	}
	b.queue = queues[0]
	return nil
}

func (b *Block) Reset() {
	b.mu.Lock()
	b.queue = nil
	b.mu.Unlock()
}

func (b *Block) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queue = nil
	if b.file == nil {
		return nil
	}
	err := b.file.Close()
	b.file = nil
	return err
}

// Notify serves every available request on the vCPU thread: the host's
// page cache answers most of them without sleeping.
func (b *Block) Notify(int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queue
	if q == nil {
		return
	}
	for {
		ok, err := q.Pop(&b.chain)
		if err != nil || !ok {
			break
		}
		written, err := b.serve(&b.chain)
		if err != nil {
			q.Fail(err)
			break
		}
		q.Push(b.chain.Head, written)
	}
	q.Signal()
}

// serve carries out one request and writes its status byte. It returns
// how many bytes it wrote into the chain, or an error when the chain
// cannot hold a request at all (spec §5.2.6: header, data, status).
func (b *Block) serve(c *Chain) (uint32, error) {
	var hdr [blkReqHeader]byte
	if gather(hdr[:], c.Readable, 0) < blkReqHeader {
		return 0, fmt.Errorf("block request %d: %d readable bytes, shorter than the %d-byte header", c.Head, c.ReadableLen(), blkReqHeader)
	}
	wlen := c.WritableLen()
	if wlen < 1 {
		return 0, fmt.Errorf("block request %d: no writable byte for the status", c.Head)
	}
	typ := binary.LittleEndian.Uint32(hdr[0:])
	sector := binary.LittleEndian.Uint64(hdr[8:])
	dataIn := wlen - 1 // bytes the device may write before the status
	status := byte(blkSOK)
	written := 0
	switch typ {
	case blkTIn:
		if err := b.transfer(sector, c.Writable, 0, dataIn, false); err != nil {
			status = blkSIOErr
		} else {
			written = dataIn
		}
	case blkTOut:
		n := c.ReadableLen() - blkReqHeader
		if b.readOnly {
			status = blkSIOErr
		} else if err := b.transfer(sector, c.Readable, blkReqHeader, n, true); err != nil {
			status = blkSIOErr
		}
	case blkTFlush:
		if !b.readOnly {
			if err := b.file.Sync(); err != nil {
				status = blkSIOErr
			}
		}
	case blkTGetID:
		written = scatter(c.Writable, 0, b.serial[:min(dataIn, blkIDBytes)])
	default:
		status = blkSUnsupp
	}
	scatter(c.Writable, wlen-1, []byte{status})
	return uint32(written + 1), nil
}

// errOutsideDisk marks a request that reaches past the end of the disk.
var errOutsideDisk = errors.New("request outside the disk")

// transfer moves n bytes between the disk at sector and bufs (from off
// bytes in), straight into or out of guest memory.
func (b *Block) transfer(sector uint64, bufs [][]byte, off, n int, write bool) error {
	if n%SectorSize != 0 {
		return fmt.Errorf("%d bytes: not a whole number of sectors", n)
	}
	if sector > b.capacity || uint64(n/SectorSize) > b.capacity-sector {
		return errOutsideDisk
	}
	b.iov = subrange(b.iov[:0], bufs, off, n)
	pos := int64(sector * SectorSize)
	var err error
	if write {
		err = pwritev(b.file, b.iov, pos)
	} else {
		err = preadv(b.file, b.iov, pos)
	}
	clear(b.iov) // drop references to guest memory
	return err
}
