// Package devfuzz turns a fuzzer's byte string into what a guest does to
// a device: a sequence of register reads and writes at offsets into the
// device's window, with device-specific events (time passing, host input,
// descriptors written into guest RAM) between them. Every device model's
// fuzz target decodes its input with Decode, so that one format, and one
// set of tools to write seeds in it, serves them all.
//
// # Format
//
// An input is a sequence of operations; Decode stops at the first one that
// is cut short, or after MaxOps. Each operation starts with a header byte:
//
//	bits 0-1  kind: 0 read, 1 write, 2 event, 3 read
//	bits 2-3  access size: 1, 2, 4 or 8 bytes (reads and writes)
//	bits 4-7  event number (events)
//
// A read or a write then has a 2-byte little-endian offset, taken modulo
// the window and moved down so that the access fits inside it, as the bus
// guarantees a device; a write has the value after it, size bytes,
// little-endian. An event has a length byte n and n bytes of data; its
// Value is the data's first 8 bytes, little-endian.
package devfuzz

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Kind is what an operation does.
type Kind uint8

const (
	Read Kind = iota
	Write
	Event
)

// MaxOps bounds the operations one input decodes to.
const MaxOps = 4096

var sizes = [4]int{1, 2, 4, 8}

// Op is one operation.
type Op struct {
	Kind Kind
	// Off and Size are a read's or a write's place: Off+Size never
	// exceeds the window.
	Off  uint64
	Size int
	// Value is what a write writes, or an event's argument.
	Value uint64
	// Event is which of the device's events (0-15).
	Event uint8
	// Data is an event's payload, at most 255 bytes.
	Data []byte
}

func (o Op) String() string {
	switch o.Kind {
	case Read:
		return fmt.Sprintf("read%d(%#x)", o.Size*8, o.Off)
	case Write:
		return fmt.Sprintf("write%d(%#x, %#x)", o.Size*8, o.Off, o.Value)
	}
	return fmt.Sprintf("event%d(%x)", o.Event, o.Data)
}

// Decode reads the operations of data for a device whose window is span
// bytes (at least 8).
func Decode(data []byte, span uint64) []Op {
	var ops []Op
	for len(data) > 0 && len(ops) < MaxOps {
		h := data[0]
		data = data[1:]
		kind := Kind(h & 3)
		if kind == 3 {
			kind = Read
		}
		if kind == Event {
			if len(data) < 1 || len(data) < 1+int(data[0]) {
				break
			}
			n := int(data[0])
			op := Op{Kind: Event, Event: h >> 4, Data: data[1 : 1+n]}
			var v [8]byte
			copy(v[:], op.Data)
			op.Value = binary.LittleEndian.Uint64(v[:])
			ops = append(ops, op)
			data = data[1+n:]
			continue
		}
		size := sizes[h>>2&3]
		if len(data) < 2 {
			break
		}
		off := uint64(binary.LittleEndian.Uint16(data)) % span
		if off+uint64(size) > span {
			off = span - uint64(size)
		}
		data = data[2:]
		op := Op{Kind: kind, Off: off, Size: size}
		if kind == Write {
			if len(data) < size {
				break
			}
			var v [8]byte
			copy(v[:], data[:size])
			op.Value = binary.LittleEndian.Uint64(v[:])
			data = data[size:]
		}
		ops = append(ops, op)
	}
	return ops
}

// Encode is Decode's inverse, for seeds: offsets are written as given.
func Encode(ops ...Op) []byte {
	var b []byte
	for _, o := range ops {
		switch o.Kind {
		case Event:
			if len(o.Data) > 255 {
				panic("devfuzz: event data longer than 255 bytes")
			}
			b = append(b, byte(Event)|o.Event<<4, byte(len(o.Data)))
			b = append(b, o.Data...)
		default:
			si := 0
			for i, s := range sizes {
				if s == o.Size {
					si = i
				}
			}
			b = append(b, byte(o.Kind)|byte(si)<<2)
			b = binary.LittleEndian.AppendUint16(b, uint16(o.Off))
			if o.Kind == Write {
				v := binary.LittleEndian.AppendUint64(nil, o.Value)
				b = append(b, v[:sizes[si]]...)
			}
		}
	}
	return b
}

// R, W and E make operations for seeds: a read, a write, an event.
func R(off uint64, size int) Op           { return Op{Kind: Read, Off: off, Size: size} }
func W(off uint64, size int, v uint64) Op { return Op{Kind: Write, Off: off, Size: size, Value: v} }
func E(event uint8, data []byte) Op       { return Op{Kind: Event, Event: event, Data: data} }

// E64 is an event whose argument is v.
func E64(event uint8, v uint64) Op { return E(event, binary.LittleEndian.AppendUint64(nil, v)) }

// Device is a register window, as hv/bus dispatches to it.
type Device interface {
	Read(off uint64, data []byte)
	Write(off uint64, data []byte)
}

// Apply runs ops against dev in order. Events go to event (nil: they are
// skipped); after, when not nil, is called after every operation with its
// index and, for a read, the value read, to check the device's invariants.
func Apply(dev Device, ops []Op, event func(Op), after func(i int, op Op, read uint64)) {
	var buf [8]byte
	for i, op := range ops {
		var got uint64
		switch op.Kind {
		case Read:
			b := buf[:op.Size]
			for j := range b {
				b[j] = 0xa5 // a device must fill what it is asked for
			}
			dev.Read(op.Off, b)
			var v [8]byte
			copy(v[:], b)
			got = binary.LittleEndian.Uint64(v[:])
		case Write:
			b := buf[:op.Size]
			binary.LittleEndian.PutUint64(buf[:], op.Value)
			dev.Write(op.Off, b)
		case Event:
			if event != nil {
				event(op)
			}
		}
		if after != nil {
			after(i, op, got)
		}
	}
}

// seedEnv, set to "write", makes Seeds write each seed into the package's
// testdata/fuzz/<target>/ as well: how the committed seed corpora are
// made (TANDEM_FUZZ_SEEDS=write go test -run '^Fuzz' ./...).
const seedEnv = "TANDEM_FUZZ_SEEDS"

// Seed is one named seed: its operations, encoded.
type Seed struct {
	Name string
	Ops  []Op
}

// Seeds adds each seed to f's corpus (inputs of one []byte argument) and,
// with TANDEM_FUZZ_SEEDS=write, writes it to testdata/fuzz/<target>/seed-<name>
// in Go's corpus file format.
func Seeds(f *testing.F, seeds ...Seed) {
	f.Helper()
	for _, s := range seeds {
		b := Encode(s.Ops...)
		f.Add(b)
		if os.Getenv(seedEnv) != "write" {
			continue
		}
		dir := filepath.Join("testdata", "fuzz", f.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+s.Name), []byte(body), 0o644); err != nil {
			f.Fatal(err)
		}
	}
}
