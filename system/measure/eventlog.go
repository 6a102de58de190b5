package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// The event log is the TCG PC Client "crypto agile" format (TCG PC Client
// Platform Firmware Profile Specification, version 1.05, §10): a first
// event in the SHA-1 layout (TCG_PCClientPCREvent, §10.2.1) of type
// EV_NO_ACTION whose data is the Spec ID Event (TCG_EfiSpecIDEvent,
// §10.4.5.1) listing the digest algorithms and their sizes, then one
// TCG_PCR_EVENT2 (§10.2.2) per measurement. Every integer is little-endian
// (§10.1: the log is written by firmware in the CPU's byte order, and
// every reader of it — Linux's binary_bios_measurements, tpm2_eventlog —
// takes it as little-endian), unlike the TPM's own big-endian commands.
// Tandem writes the SHA-256 bank only; Parse reads logs with other banks
// too, as firmware writes them, and keeps their SHA-256 digests.

// Event types (§10.4.1).
const (
	EvNoAction = 0x00000003 // EV_NO_ACTION: not extended, e.g. the Spec ID Event
	EvIPL      = 0x0000000d // EV_IPL: what an initial program loader measured
)

// algSHA256 is TPM_ALG_SHA256 (TPM 2.0 Library, Part 2, §6.3). Other
// banks' digests are skipped by the sizes the Spec ID Event gives.
const algSHA256 = 0x000b

// specIDSignature opens the Spec ID Event's data (§10.4.5.1).
var specIDSignature = [16]byte{'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0}

// Fields of the Spec ID Event Tandem writes (§10.4.5.1): a PC Client
// platform, spec version 2.0 errata 0, a 64-bit UINTN (uintnSize 2).
const (
	specPlatformClient = 0
	specVersionMajor   = 2
	specVersionMinor   = 0
	specErrata         = 0
	specUINTN64        = 2
)

// Limits on what Parse accepts, so a corrupt or hostile log cannot make
// it allocate without bound: Tandem's own events carry a line of text.
const (
	maxEventData  = 64 << 10
	maxEvents     = 1 << 16
	maxAlgorithms = 8
	maxDigestSize = 64 // SHA-512
)

// Sizes of the fixed parts (§10.2.1, §10.2.2, §10.4.5.1).
const (
	sha1EventHeader = 4 + 4 + 20 + 4 // pcrIndex, eventType, SHA-1 digest, eventSize
	specIDFixed     = 16 + 4 + 1 + 1 + 1 + 1 + 4
)

// ErrLog marks every error about a log's content.
var ErrLog = errors.New("malformed TCG event log")

// Event is one measurement: the SHA-256 digest extended into PCR, and the
// event data saying what was measured.
type Event struct {
	PCR    uint32
	Type   uint32
	Digest [sha256.Size]byte
	Data   []byte
}

// MarshalLog writes events as a crypto-agile TCG event log with the
// SHA-256 bank only.
func MarshalLog(events []Event) []byte {
	var spec bytes.Buffer
	spec.Write(specIDSignature[:])
	le32(&spec, specPlatformClient)
	spec.Write([]byte{specVersionMinor, specVersionMajor, specErrata, specUINTN64})
	le32(&spec, 1)
	le16(&spec, algSHA256)
	le16(&spec, sha256.Size)
	spec.WriteByte(0) // vendorInfoSize

	var b bytes.Buffer
	le32(&b, 0)
	le32(&b, EvNoAction)
	b.Write(make([]byte, 20))
	le32(&b, uint32(spec.Len()))
	b.Write(spec.Bytes())
	for _, e := range events {
		le32(&b, e.PCR)
		le32(&b, e.Type)
		le32(&b, 1) // TPML_DIGEST_VALUES.count
		le16(&b, algSHA256)
		b.Write(e.Digest[:])
		le32(&b, uint32(len(e.Data)))
		b.Write(e.Data)
	}
	return b.Bytes()
}

func le32(b *bytes.Buffer, v uint32) { b.Write(binary.LittleEndian.AppendUint32(nil, v)) }
func le16(b *bytes.Buffer, v uint16) { b.Write(binary.LittleEndian.AppendUint16(nil, v)) }

// reader walks a log, every read bounds-checked.
type reader struct {
	b   []byte
	off int
}

func (r *reader) take(n int, what string) ([]byte, error) {
	if n < 0 || n > len(r.b)-r.off {
		return nil, fmt.Errorf("%w: %s at offset %d: %d bytes needed, %d left", ErrLog, what, r.off, n, len(r.b)-r.off)
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p, nil
}

func (r *reader) u32(what string) (uint32, error) {
	p, err := r.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (r *reader) u16(what string) (uint16, error) {
	p, err := r.take(2, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(p), nil
}

// ParseLog reads a crypto-agile TCG event log. Each event keeps its
// SHA-256 digest; a log without a SHA-256 bank is an error.
func ParseLog(b []byte) ([]Event, error) {
	r := &reader{b: b}
	sizes, err := r.specID()
	if err != nil {
		return nil, err
	}
	var events []Event
	for r.off < len(b) {
		if len(events) == maxEvents {
			return nil, fmt.Errorf("%w: more than %d events", ErrLog, maxEvents)
		}
		e, err := r.event2(sizes)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", len(events)+1, err)
		}
		events = append(events, e)
	}
	return events, nil
}

// specID reads the first event, which must be the Spec ID Event, and
// returns the digest size of each algorithm it lists.
func (r *reader) specID() (map[uint16]int, error) {
	head, err := r.take(sha1EventHeader, "first event's header")
	if err != nil {
		return nil, err
	}
	if pcr, typ := binary.LittleEndian.Uint32(head), binary.LittleEndian.Uint32(head[4:]); pcr != 0 || typ != EvNoAction {
		return nil, fmt.Errorf("%w: first event is PCR %d type %#x, want the Spec ID Event (PCR 0, EV_NO_ACTION): a log in the SHA-1-only format is not read", ErrLog, pcr, typ)
	}
	size := int(binary.LittleEndian.Uint32(head[28:]))
	data, err := r.take(size, "Spec ID Event")
	if err != nil {
		return nil, err
	}
	if len(data) < specIDFixed || !bytes.Equal(data[:16], specIDSignature[:]) {
		return nil, fmt.Errorf("%w: first event's data is not a Spec ID Event (signature %q)", ErrLog, data[:min(16, len(data))])
	}
	n := int(binary.LittleEndian.Uint32(data[24:]))
	if n < 1 || n > maxAlgorithms {
		return nil, fmt.Errorf("%w: Spec ID Event lists %d algorithms, want 1 to %d", ErrLog, n, maxAlgorithms)
	}
	s := &reader{b: data, off: specIDFixed}
	sizes := map[uint16]int{}
	for range n {
		alg, err := s.u16("Spec ID Event algorithm")
		if err != nil {
			return nil, err
		}
		sz, err := s.u16("Spec ID Event digest size")
		if err != nil {
			return nil, err
		}
		if sz == 0 || sz > maxDigestSize {
			return nil, fmt.Errorf("%w: Spec ID Event gives algorithm %#x a digest of %d bytes", ErrLog, alg, sz)
		}
		sizes[alg] = int(sz)
	}
	if sizes[algSHA256] != sha256.Size {
		return nil, fmt.Errorf("%w: no SHA-256 bank in the Spec ID Event", ErrLog)
	}
	return sizes, nil
}

// event2 reads one TCG_PCR_EVENT2.
func (r *reader) event2(sizes map[uint16]int) (Event, error) {
	var e Event
	var err error
	if e.PCR, err = r.u32("PCR index"); err != nil {
		return e, err
	}
	if e.Type, err = r.u32("event type"); err != nil {
		return e, err
	}
	count, err := r.u32("digest count")
	if err != nil {
		return e, err
	}
	if count < 1 || int(count) > len(sizes) {
		return e, fmt.Errorf("%w: %d digests, the Spec ID Event lists %d banks", ErrLog, count, len(sizes))
	}
	found := false
	for range count {
		alg, err := r.u16("digest algorithm")
		if err != nil {
			return e, err
		}
		sz, ok := sizes[alg]
		if !ok {
			return e, fmt.Errorf("%w: digest algorithm %#x is not in the Spec ID Event", ErrLog, alg)
		}
		d, err := r.take(sz, "digest")
		if err != nil {
			return e, err
		}
		if alg == algSHA256 {
			copy(e.Digest[:], d)
			found = true
		}
	}
	if !found {
		return e, fmt.Errorf("%w: no SHA-256 digest", ErrLog)
	}
	size, err := r.u32("event size")
	if err != nil {
		return e, err
	}
	if size > maxEventData {
		return e, fmt.Errorf("%w: event data of %d bytes, more than %d", ErrLog, size, maxEventData)
	}
	data, err := r.take(int(size), "event data")
	if err != nil {
		return e, err
	}
	e.Data = bytes.Clone(data)
	return e, nil
}

// Replay returns the value PCR pcr of the SHA-256 bank holds after the
// events, from its reset value of zeros (TPM 2.0 Library, Part 1, §17.5:
// PCR_Extend sets it to H(old ‖ digest)). EV_NO_ACTION events are not
// extended (PFP §10.4.1).
func Replay(events []Event, pcr uint32) [sha256.Size]byte {
	var v [sha256.Size]byte
	for _, e := range events {
		if e.PCR == pcr && e.Type != EvNoAction {
			v = extend(v, e.Digest)
		}
	}
	return v
}

func extend(v, d [sha256.Size]byte) [sha256.Size]byte {
	return sha256.Sum256(append(v[:], d[:]...))
}
