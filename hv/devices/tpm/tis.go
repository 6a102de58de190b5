// Package tpm is a TPM 2.0 for a guest: the memory-mapped FIFO (TIS)
// interface of the TCG PC Client Platform TPM Profile (PTP), which
// Linux's tpm_tis drives, in front of a backend that executes the
// commands (a software TPM, swtpm, over its UNIX socket).
//
// The register layout follows the PTP's FIFO interface, as Linux names it
// in drivers/char/tpm/tpm_tis_core.h: five localities of 4 KiB each, each
// with its ACCESS, STS and DATA_FIFO registers. Interrupts are not
// offered (the guest's driver polls STS), and the command and response
// buffers hold at most MaxBuffer bytes each, so nothing a guest writes
// grows the VMM's memory.
package tpm

import (
	"encoding/binary"
	"sync"

	"github.com/tandem-hv/tandem/hv/devices"
)

// Size is the span of the device: five localities of LocalitySize bytes.
const (
	Localities   = 5
	LocalitySize = 0x1000
	Size         = Localities * LocalitySize
)

// MaxBuffer bounds a command and a response, as Linux's TPM_BUFSIZE does
// (and the PTP's TPM_PT_MAX_COMMAND_SIZE of PC Client TPMs).
const MaxBuffer = 4096

// Register offsets within a locality (tpm_tis_core.h: TPM_ACCESS and
// friends, without the locality's << 12).
const (
	regAccess      = 0x000 // 8 bits
	regIntEnable   = 0x008 // 32 bits
	regIntVector   = 0x00c // 8 bits
	regIntStatus   = 0x010 // 32 bits
	regIntfCaps    = 0x014 // 32 bits
	regSTS         = 0x018 // 32 bits: status byte, burst count (16 bits), family
	regDataFIFO    = 0x024 // 1 to 4 bytes a transfer
	regInterfaceID = 0x030 // 32 bits
	regXDataFIFO   = 0x080 // 1 to 4 bytes a transfer (PTP's extended FIFO)
	regDIDVID      = 0xf00 // 32 bits
	regRID         = 0xf04 // 8 bits
	fifoWidth      = 4
)

// TPM_ACCESS bits (enum tis_access).
const (
	accessEstablishment = 0x01 // reads 1: no dynamic root of trust was established
	accessRequestUse    = 0x02
	accessPending       = 0x04
	accessSeize         = 0x08
	accessBeenSeized    = 0x10
	accessActive        = 0x20
	accessValid         = 0x80
)

// TPM_STS bits (enum tis_status, and the PTP's family and cancel bits).
const (
	stsResponseRetry = 0x02
	stsSelfTestDone  = 0x04
	stsExpect        = 0x08
	stsDataAvail     = 0x10
	stsGo            = 0x20
	stsCommandReady  = 0x40
	stsValid         = 0x80
	stsBurstShift    = 8
	stsFamilyTPM2    = 1 << 26
)

// Identity and capability values the device reports.
const (
	// intfCaps: interface version 1.3 for TPM 2.0 (bits 28-30 = 3),
	// transfers of up to 64 bytes (bits 9-10 = 3), a burst count that
	// changes (bit 8 clear), and no interrupts (bits 0-7 clear).
	intfCaps = 3<<28 | 3<<9
	// interfaceID: the FIFO interface for TPM 2.0 (type 0, version 0),
	// five localities (bit 8), FIFO supported (bit 13), and the interface
	// selector locked on FIFO (bit 19).
	interfaceID = 1<<8 | 1<<13 | 1<<19
	// didVID: vendor 0x5444 ("TD", not a TCG vendor of a real chip, so
	// no driver quirk keyed on a vendor applies), device 1.
	didVID   = 0x0001<<16 | 0x5444
	revision = 1
	// burstMax is the burst count offered while a command is taken in.
	burstMax = 64
)

// TPM response codes (TPM 2.0 Library, Part 2, §6.6) the device answers
// with itself, when the command never reaches the backend.
const (
	tagNoSessions  = 0x8001 // TPM_ST_NO_SESSIONS
	rcFailure      = 0x101  // TPM_RC_FAILURE: the backend is gone
	rcCommandSize  = 0x142  // TPM_RC_COMMAND_SIZE: size field and bytes disagree
	headerSize     = 10     // tag, size, code
	sizeFieldStart = 2
)

// state is the FIFO interface's state (PTP: Idle, Ready, Command
// Reception, Command Execution, Command Completion).
type state int

const (
	stateIdle state = iota
	stateReady
	stateReception
	stateExecution
	stateCompletion
)

// Backend executes TPM commands.
type Backend interface {
	// Execute runs one command and returns the TPM's whole response. It
	// may block (the TIS device calls it off the vCPU threads).
	Execute(cmd []byte) ([]byte, error)
}

// TIS is the device. It implements bus.Device for the MMIO bus.
type TIS struct {
	// Guard fails the device, rather than the VMM, should the goroutine
	// that runs a command panic.
	devices.Guard
	backend Backend
	warn    *devices.RateLimited

	// mu protects the fields below; Execute runs without it.
	mu      sync.Mutex
	active  int // the active locality, or -1
	pending [Localities]bool
	seized  [Localities]bool
	state   state
	cmd     []byte // the command taken in (stateReception), at most MaxBuffer
	rsp     []byte // the response (stateCompletion)
	rspOff  int    // bytes of rsp read
	// abort says the guest asked for commandReady during execution: the
	// response is dropped when it comes.
	abort bool
	// done is closed when the command under way has completed.
	done chan struct{}
}

// New returns a TIS device in front of backend; warn receives what a
// guest does wrong (rate-limited; nil discards).
func New(backend Backend, warn *devices.RateLimited) *TIS {
	return &TIS{backend: backend, warn: warn, active: -1}
}

// Read reads a register of the locality off falls in.
func (t *TIS) Read(off uint64, data []byte) {
	if t.Failed() {
		clear(data)
		return
	}
	loc, reg := int(off/LocalitySize), off%LocalitySize
	t.mu.Lock()
	defer t.mu.Unlock()
	if loc >= Localities {
		fill(data, 0xff)
		return
	}
	if isFIFO(reg, len(data)) {
		t.readFIFO(loc, data)
		return
	}
	base := reg &^ 3
	if reg+uint64(len(data)) > base+4 {
		t.warn.Printf("TPM: %d-byte read at %#x crosses a register: reads all ones", len(data), off)
		fill(data, 0xff)
		return
	}
	v := t.register(loc, base)
	for i := range data {
		data[i] = byte(v >> (8 * (reg - base + uint64(i))))
	}
}

// Write writes a register of the locality off falls in.
func (t *TIS) Write(off uint64, data []byte) {
	if t.Failed() {
		return
	}
	loc, reg := int(off/LocalitySize), off%LocalitySize
	t.mu.Lock()
	defer t.mu.Unlock()
	if loc >= Localities {
		return
	}
	if isFIFO(reg, len(data)) {
		t.writeFIFO(loc, data)
		return
	}
	base := reg &^ 3
	if reg+uint64(len(data)) > base+4 {
		t.warn.Printf("TPM: %d-byte write at %#x crosses a register: ignored", len(data), off)
		return
	}
	var v uint32
	for i, b := range data {
		v |= uint32(b) << (8 * (reg - base + uint64(i)))
	}
	switch base {
	case regAccess:
		t.writeAccess(loc, byte(v))
	case regSTS:
		t.writeSTS(loc, v)
	case regIntEnable, regIntVector, regIntStatus:
		// No interrupts are offered (INTF_CAPS says so): nothing to
		// enable or acknowledge.
	default:
		t.warn.Printf("TPM: write of %#x to read-only or unknown register %#x of locality %d: ignored", v, reg, loc)
	}
}

func isFIFO(reg uint64, n int) bool {
	return (reg >= regDataFIFO && reg < regDataFIFO+fifoWidth || reg >= regXDataFIFO && reg < regXDataFIFO+fifoWidth) && n <= fifoWidth
}

func fill(b []byte, v byte) {
	for i := range b {
		b[i] = v
	}
}

// register is the value of a 32-bit-aligned register as loc reads it.
func (t *TIS) register(loc int, base uint64) uint32 {
	switch base {
	case regAccess:
		return uint32(t.access(loc))
	case regSTS:
		if loc != t.active {
			return 0xffffffff // PTP: STS of a locality that is not active
		}
		return t.status()
	case regIntfCaps:
		return intfCaps
	case regInterfaceID:
		return interfaceID
	case regDIDVID:
		return didVID
	case regRID:
		return revision
	}
	return 0 // INT_ENABLE, INT_VECTOR, INT_STATUS, reserved space
}

// access is TPM_ACCESS as loc reads it.
func (t *TIS) access(loc int) byte {
	a := byte(accessValid | accessEstablishment)
	if t.active == loc {
		a |= accessActive
	}
	if t.seized[loc] {
		a |= accessBeenSeized
	}
	for l, p := range t.pending {
		if p && l != loc {
			a |= accessPending // another locality waits for its turn
			break
		}
	}
	return a
}

// writeAccess requests, seizes or gives up a locality (PTP: locality
// arbitration). Without a DRTM, only the guest's kernel uses the TPM;
// what is modelled is what keeps one user's command from another's.
func (t *TIS) writeAccess(loc int, v byte) {
	switch {
	case v&accessActive != 0: // relinquish
		if t.active == loc {
			t.active = -1
			t.grantPending()
		}
		t.pending[loc] = false
	case v&accessSeize != 0:
		if loc > t.active {
			if t.active >= 0 {
				t.seized[t.active] = true
			}
			t.switchTo(loc)
		}
	case v&accessRequestUse != 0:
		switch {
		case t.active < 0:
			t.switchTo(loc)
		case t.active != loc:
			t.pending[loc] = true
		}
	}
}

// grantPending gives the interface to the highest locality waiting.
func (t *TIS) grantPending() {
	for l := Localities - 1; l >= 0; l-- {
		if t.pending[l] {
			t.switchTo(l)
			return
		}
	}
}

// switchTo makes loc active; a command or response of the locality before
// is lost (PTP: a locality change returns the interface to Idle).
func (t *TIS) switchTo(loc int) {
	t.active, t.pending[loc], t.seized[loc] = loc, false, false
	if t.state != stateExecution {
		t.reset(stateIdle)
	} else {
		t.abort = true
	}
}

func (t *TIS) reset(s state) {
	t.state, t.cmd, t.rsp, t.rspOff, t.abort = s, t.cmd[:0], nil, 0, false
}

// status is TPM_STS of the active locality.
func (t *TIS) status() uint32 {
	s := uint32(stsValid|stsSelfTestDone) | stsFamilyTPM2
	var burst int
	switch t.state {
	case stateReady:
		s |= stsCommandReady
		burst = burstMax
	case stateReception:
		if !t.commandComplete() {
			s |= stsExpect
			burst = min(burstMax, MaxBuffer-len(t.cmd))
		}
	case stateCompletion:
		if left := len(t.rsp) - t.rspOff; left > 0 {
			s |= stsDataAvail
			burst = min(burstMax, left)
		}
	}
	return s | uint32(burst)<<stsBurstShift
}

// commandComplete says the command taken in is as long as its header
// says, or can grow no more.
func (t *TIS) commandComplete() bool {
	if len(t.cmd) >= MaxBuffer {
		return true
	}
	if len(t.cmd) < sizeFieldStart+4 {
		return false
	}
	return len(t.cmd) >= int(binary.BigEndian.Uint32(t.cmd[sizeFieldStart:]))
}

// writeSTS acts on the command bits of TPM_STS.
func (t *TIS) writeSTS(loc int, v uint32) {
	if loc != t.active {
		t.warn.Printf("TPM: STS write from locality %d, which is not active: ignored", loc)
		return
	}
	switch {
	case v&stsCommandReady != 0:
		if t.state == stateExecution {
			t.abort = true // the response is dropped when it comes
			return
		}
		t.reset(stateReady)
	case v&stsGo != 0:
		if t.state != stateReception || !t.commandComplete() {
			t.warn.Printf("TPM: tpmGo with no complete command (%d bytes taken): ignored", len(t.cmd))
			return
		}
		t.execute()
	case v&stsResponseRetry != 0:
		if t.state == stateCompletion {
			t.rspOff = 0
		}
	}
}

// execute hands the command to the backend, off the vCPU thread: a TPM
// command (a key's generation) can take seconds.
func (t *TIS) execute() {
	cmd := append([]byte(nil), t.cmd...)
	t.state, t.done = stateExecution, make(chan struct{})
	done := t.done
	go func() {
		defer close(done) // last, so Wait returns even after a panic
		defer t.Contain("TPM")
		rsp := t.run(cmd)
		t.mu.Lock()
		defer t.mu.Unlock()
		if t.abort {
			t.reset(stateReady)
		} else {
			t.state, t.rsp, t.rspOff = stateCompletion, rsp, 0
		}
	}()
}

// run executes cmd, answering for the TPM what never reaches it.
func (t *TIS) run(cmd []byte) []byte {
	if len(cmd) < headerSize || int(binary.BigEndian.Uint32(cmd[sizeFieldStart:])) != len(cmd) {
		t.warn.Printf("TPM: a command of %d bytes whose header says otherwise: answered TPM_RC_COMMAND_SIZE", len(cmd))
		return errorResponse(rcCommandSize)
	}
	rsp, err := t.backend.Execute(cmd)
	switch {
	case err != nil:
		t.warn.Printf("TPM: %v: answered TPM_RC_FAILURE", err)
		return errorResponse(rcFailure)
	case len(rsp) < headerSize || len(rsp) > MaxBuffer:
		t.warn.Printf("TPM: the backend answered %d bytes: answered TPM_RC_FAILURE", len(rsp))
		return errorResponse(rcFailure)
	}
	return rsp
}

func errorResponse(rc uint32) []byte {
	b := make([]byte, headerSize)
	binary.BigEndian.PutUint16(b, tagNoSessions)
	binary.BigEndian.PutUint32(b[2:], headerSize)
	binary.BigEndian.PutUint32(b[6:], rc)
	return b
}

// writeFIFO takes command bytes in.
func (t *TIS) writeFIFO(loc int, data []byte) {
	if loc != t.active {
		t.warn.Printf("TPM: FIFO write from locality %d, which is not active: ignored", loc)
		return
	}
	switch t.state {
	case stateReady:
		t.state = stateReception
	case stateReception:
	default:
		t.warn.Printf("TPM: FIFO write while not ready for a command (state %d): ignored; set commandReady first", t.state)
		return
	}
	if room := MaxBuffer - len(t.cmd); len(data) > room {
		t.warn.Printf("TPM: command longer than %d bytes: the rest is dropped", MaxBuffer)
		data = data[:room]
	}
	t.cmd = append(t.cmd, data...)
}

// readFIFO hands response bytes out; past the end, or with no response,
// it reads all ones.
func (t *TIS) readFIFO(loc int, data []byte) {
	fill(data, 0xff)
	if loc != t.active || t.state != stateCompletion {
		return
	}
	t.rspOff += copy(data, t.rsp[t.rspOff:])
}

// Wait blocks until no command is under way (tests, and Close).
func (t *TIS) Wait() {
	t.mu.Lock()
	done := t.done
	t.mu.Unlock()
	if done != nil {
		<-done
	}
}
