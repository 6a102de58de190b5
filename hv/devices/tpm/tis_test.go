package tpm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/tandem-hv/tandem/hv/devices"
	"github.com/tandem-hv/tandem/internal/devfuzz"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// startSWTPM runs a software TPM that leaves TPM2_Startup to its user, as
// a guest's kernel sends it, and returns its backend.
func startSWTPM(tb testing.TB) SocketBackend {
	tb.Helper()
	testenv.RequireCommand(tb, swtpm.Program, "swtpm")
	dir := tb.TempDir()
	tpm, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "tpm.sock"), NoStartup: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tpm.Stop() })
	return SocketBackend{Path: tpm.Socket(), Timeout: 10 * time.Second}
}

// driver talks to a TIS the way Linux's tpm_tis_core does
// (drivers/char/tpm/tpm_tis_core.c): request_locality, then
// tpm_tis_send_data (commandReady, the command a burst at a time with
// Expect checked after each, the last byte alone, then tpmGo), then
// tpm_tis_recv (the header, then the rest, a burst at a time), then
// commandReady and release_locality. Register accesses are a byte wide,
// as tpm_tis's MMIO accessors make them, but for the 32-bit STS read of
// the burst count. It is a go-tpm transport.
type driver struct {
	t   *TIS
	loc int
}

func (d *driver) off(reg uint64) uint64 { return uint64(d.loc)*LocalitySize + reg }

func (d *driver) read8(reg uint64) byte {
	var b [1]byte
	d.t.Read(d.off(reg), b[:])
	return b[0]
}

func (d *driver) write8(reg uint64, v byte) { d.t.Write(d.off(reg), []byte{v}) }

func (d *driver) read32(reg uint64) uint32 {
	var b [4]byte
	d.t.Read(d.off(reg), b[:])
	return binary.LittleEndian.Uint32(b[:])
}

// waitSTS polls STS until mask is set, as wait_for_tpm_stat does.
func (d *driver) waitSTS(mask byte) error {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if d.read8(regSTS)&mask == mask {
			return nil
		}
	}
	return fmt.Errorf("STS %#x never showed %#x", d.read8(regSTS), mask)
}

func (d *driver) burst() (int, error) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if n := int(d.read32(regSTS)>>stsBurstShift) & 0xffff; n > 0 {
			return n, nil
		}
	}
	return 0, errors.New("burst count stayed 0")
}

func (d *driver) requestLocality() error {
	d.write8(regAccess, accessRequestUse)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if a := d.read8(regAccess); a&(accessActive|accessValid|accessRequestUse) == accessActive|accessValid {
			return nil
		}
	}
	return fmt.Errorf("locality %d not granted: ACCESS %#x", d.loc, d.read8(regAccess))
}

func (d *driver) Send(cmd []byte) ([]byte, error) {
	if err := d.requestLocality(); err != nil {
		return nil, err
	}
	defer d.write8(regAccess, accessActive) // release_locality
	if d.read8(regSTS)&stsCommandReady == 0 {
		d.write8(regSTS, stsCommandReady)
		if err := d.waitSTS(stsCommandReady); err != nil {
			return nil, err
		}
	}
	for n := 0; n < len(cmd)-1; {
		burst, err := d.burst()
		if err != nil {
			return nil, err
		}
		burst = min(burst, len(cmd)-1-n)
		for _, b := range cmd[n : n+burst] {
			d.write8(regDataFIFO, b)
		}
		n += burst
		if d.read8(regSTS)&stsExpect == 0 {
			return nil, fmt.Errorf("Expect clear after %d of %d bytes", n, len(cmd))
		}
	}
	d.write8(regDataFIFO, cmd[len(cmd)-1])
	if d.read8(regSTS)&stsExpect != 0 {
		return nil, errors.New("Expect still set after the last byte")
	}
	d.write8(regSTS, stsGo)
	rsp, err := d.recv(headerSize)
	if err != nil {
		return nil, err
	}
	more, err := d.recv(int(binary.BigEndian.Uint32(rsp[2:])) - headerSize)
	if err != nil {
		return nil, err
	}
	rsp = append(rsp, more...)
	if d.read8(regSTS)&stsDataAvail != 0 {
		return nil, errors.New("data left over after the response")
	}
	d.write8(regSTS, stsCommandReady)
	return rsp, nil
}

func (d *driver) recv(n int) ([]byte, error) {
	var out []byte
	for len(out) < n {
		if err := d.waitSTS(stsDataAvail | stsValid); err != nil {
			return nil, err
		}
		burst, err := d.burst()
		if err != nil {
			return nil, err
		}
		for range min(burst, n-len(out)) {
			out = append(out, d.read8(regDataFIFO))
		}
	}
	return out, nil
}

// TestTISRunsTPM2Commands drives the device as Linux's tpm_tis does, in
// front of swtpm, with go-tpm's commands: TPM2_Startup as a guest's kernel
// sends it, then extends of PCR 16 read back equal to the value computed
// here, and GetRandom's bytes.
func TestTISRunsTPM2Commands(t *testing.T) {
	d := &driver{t: New(startSWTPM(t), nil)}
	if got := d.read32(regDIDVID); got != didVID {
		t.Errorf("DID_VID = %#x, want %#x", got, didVID)
	}
	if _, err := (tpm2.Startup{StartupType: tpm2.TPMSUClear}).Execute(d); err != nil {
		t.Fatalf("TPM2_Startup through the TIS: %v", err)
	}
	var want [32]byte
	for i := range 3 {
		digest := sha256.Sum256([]byte{byte(i)})
		_, err := tpm2.PCRExtend{
			PCRHandle: tpm2.AuthHandle{Handle: 16, Auth: tpm2.PasswordAuth(nil)},
			Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest[:]}}},
		}.Execute(d)
		if err != nil {
			t.Fatalf("TPM2_PCR_Extend through the TIS: %v", err)
		}
		want = sha256.Sum256(append(want[:], digest[:]...))
	}
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(16)},
	}}}.Execute(d)
	if err != nil {
		t.Fatalf("TPM2_PCR_Read through the TIS: %v", err)
	}
	if got := rsp.PCRValues.Digests[0].Buffer; !bytes.Equal(got, want[:]) {
		t.Errorf("PCR 16 = %x, want %x", got, want)
	}
	r, err := tpm2.GetRandom{BytesRequested: 32}.Execute(d)
	if err != nil || len(r.RandomBytes.Buffer) != 32 {
		t.Errorf("TPM2_GetRandom through the TIS = %d bytes, %v; want 32", len(r.RandomBytes.Buffer), err)
	}
}

// startupCmd is TPM2_Startup(CLEAR) (Part 3, §9.3): a complete command.
var startupCmd = []byte{0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x44, 0, 0}

// op is one register access of a test sequence: a read of n bytes (from
// the FIFO, more than four are read a byte at a time), or a write of
// data.
type op struct {
	loc  int
	reg  uint64
	data []byte // a write
	n    int    // a read of n bytes
}

func (o op) do(t *TIS) []byte {
	off := uint64(o.loc)*LocalitySize + o.reg
	if o.data != nil {
		t.Write(off, o.data)
		return nil
	}
	b := make([]byte, o.n)
	if o.reg == regDataFIFO && o.n > fifoWidth {
		// More than one FIFO access holds: a byte at a time.
		for i := range b {
			t.Read(off, b[i:i+1])
		}
		return b
	}
	t.Read(off, b)
	return b
}

func w(loc int, reg uint64, data ...byte) op { return op{loc: loc, reg: reg, data: data} }

// TestTISStateMachine runs sequences of register accesses and checks the
// last read: locality arbitration, what a locality that is not active
// sees, the burst count, a command too long for the buffer, a response
// read twice (responseRetry), a command abandoned mid-way.
func TestTISStateMachine(t *testing.T) {
	backend := startSWTPM(t)
	take := func(cmd []byte) []op {
		ops := []op{w(0, regAccess, accessRequestUse), w(0, regSTS, stsCommandReady)}
		for _, b := range cmd {
			ops = append(ops, w(0, regDataFIFO, b))
		}
		return ops
	}
	run := append(take(startupCmd), w(0, regSTS, stsGo))
	tests := []struct {
		name string
		ops  []op
		wait bool // for the command under way before the last read
		last op
		want []byte
	}{
		{"no locality active", nil, false, op{reg: regAccess, n: 1}, []byte{accessValid | accessEstablishment}},
		{"locality 0 granted", []op{w(0, regAccess, accessRequestUse)}, false, op{reg: regAccess, n: 1}, []byte{accessValid | accessEstablishment | accessActive}},
		{"locality 2 waits for 0", []op{w(0, regAccess, accessRequestUse), w(2, regAccess, accessRequestUse)}, false, op{reg: regAccess, n: 1}, []byte{accessValid | accessEstablishment | accessActive | accessPending}},
		{"locality 2 granted on release", []op{w(0, regAccess, accessRequestUse), w(2, regAccess, accessRequestUse), w(0, regAccess, accessActive)}, false, op{loc: 2, reg: regAccess, n: 1}, []byte{accessValid | accessEstablishment | accessActive}},
		{"locality 3 seizes 0", []op{w(0, regAccess, accessRequestUse), w(3, regAccess, accessSeize)}, false, op{reg: regAccess, n: 1}, []byte{accessValid | accessEstablishment | accessBeenSeized}},
		{"STS of an inactive locality", []op{w(0, regAccess, accessRequestUse)}, false, op{loc: 1, reg: regSTS, n: 4}, []byte{0xff, 0xff, 0xff, 0xff}},
		{"idle: not ready", []op{w(0, regAccess, accessRequestUse)}, false, op{reg: regSTS, n: 4}, le32(stsValid | stsSelfTestDone | stsFamilyTPM2)},
		{"ready: burst 64", []op{w(0, regAccess, accessRequestUse), w(0, regSTS, stsCommandReady)}, false, op{reg: regSTS, n: 4}, le32(stsValid | stsSelfTestDone | stsCommandReady | burstMax<<8 | stsFamilyTPM2)},
		{"burst count read alone", []op{w(0, regAccess, accessRequestUse), w(0, regSTS, stsCommandReady)}, false, op{reg: regSTS + 1, n: 2}, []byte{burstMax, 0}},
		{"command being taken: Expect", take(startupCmd[:7]), false, op{reg: regSTS, n: 1}, []byte{stsValid | stsSelfTestDone | stsExpect}},
		{"command complete: no Expect", take(startupCmd), false, op{reg: regSTS, n: 1}, []byte{stsValid | stsSelfTestDone}},
		{"FIFO write before commandReady is ignored", []op{w(0, regAccess, accessRequestUse), w(0, regDataFIFO, 1, 2, 3)}, false, op{reg: regSTS, n: 1}, []byte{stsValid | stsSelfTestDone}},
		{"response available", run, true, op{reg: regSTS, n: 4}, le32(stsValid | stsSelfTestDone | stsDataAvail | headerSize<<8 | stsFamilyTPM2)},
		{"response read", run, true, op{reg: regDataFIFO, n: 4}, []byte{0x80, 0x01, 0, 0}},
		{"response read again after responseRetry", append(append(append([]op(nil), run...), op{reg: regDataFIFO, n: 4}), w(0, regSTS, stsResponseRetry)), true, op{reg: regDataFIFO, n: 2}, []byte{0x80, 0x01}},
		{"response read by another locality", run, true, op{loc: 1, reg: regDataFIFO, n: 2}, []byte{0xff, 0xff}},
		{"commandReady drops the response", append(append([]op(nil), run...), w(0, regSTS, stsCommandReady)), true, op{reg: regSTS, n: 1}, []byte{stsValid | stsSelfTestDone | stsCommandReady}},
		{"a command too long: its size is answered", append(take(bytes.Repeat([]byte{0x80, 0x01, 0xff, 0xff, 0xff, 0xff}, 1000)), w(0, regSTS, stsGo)), true, op{reg: regDataFIFO, n: 10}, rcCommandSizeResponse},
		{"a command shorter than its header: its size is answered", append(take([]byte{0x80, 0x01, 0, 0, 0, 4}), w(0, regSTS, stsGo)), true, op{reg: regDataFIFO, n: 10}, rcCommandSizeResponse},
		{"a read crossing registers", []op{w(0, regAccess, accessRequestUse)}, false, op{reg: regSTS + 2, n: 4}, []byte{0xff, 0xff, 0xff, 0xff}},
		{"beyond the localities", nil, false, op{reg: Size, n: 2}, []byte{0xff, 0xff}},
		{"interface capability", nil, false, op{reg: regIntfCaps, n: 4}, le32(intfCaps)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(backend, devices.NewRateLimited(nil, 10))
			for _, o := range tt.ops {
				o.do(d)
			}
			if tt.wait {
				d.Wait()
			}
			if got := tt.last.do(d); !bytes.Equal(got, tt.want) {
				t.Errorf("read of %d bytes at locality %d register %#x = %x, want %x", tt.last.n, tt.last.loc, tt.last.reg, got, tt.want)
			}
			if len(d.cmd) > MaxBuffer || len(d.rsp) > MaxBuffer {
				t.Errorf("buffers hold %d and %d bytes, more than %d", len(d.cmd), len(d.rsp), MaxBuffer)
			}
		})
	}
}

// rcCommandSizeResponse is a response with TPM_RC_COMMAND_SIZE and
// nothing else (Part 1, §18).
var rcCommandSizeResponse = []byte{0x80, 0x01, 0, 0, 0, 10, 0, 0, 0x01, 0x42}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// TestTISBackendGone checks that a TPM whose backend is gone answers
// TPM_RC_FAILURE rather than leaving the guest's driver waiting.
func TestTISBackendGone(t *testing.T) {
	var warnings bytes.Buffer
	d := &driver{t: New(SocketBackend{Path: filepath.Join(t.TempDir(), "gone.sock")}, devices.NewRateLimited(&syncWriter{w: &warnings}, 10))}
	rsp, err := d.Send(startupCmd)
	if err != nil {
		t.Fatal(err)
	}
	if rc := binary.BigEndian.Uint32(rsp[6:]); rc != rcFailure {
		t.Errorf("response code = %#x, want TPM_RC_FAILURE", rc)
	}
	if !bytes.Contains(warnings.Bytes(), []byte("gone.sock")) {
		t.Errorf("warnings = %q, want the backend's error", warnings.String())
	}
}

// panickingBackend stands for a backend with a bug: its Execute panics.
type panickingBackend struct{}

func (panickingBackend) Execute([]byte) ([]byte, error) { panic("a backend bug") }

// TestTISPanicFailsTheDevice checks that a panic in the goroutine that
// runs a command fails the device, not the VMM: the guest then reads
// zeros, its writes are ignored, and Wait returns.
func TestTISPanicFailsTheDevice(t *testing.T) {
	tis := New(panickingBackend{}, nil)
	for _, o := range []op{w(0, regAccess, accessRequestUse), w(0, regSTS, stsCommandReady)} {
		o.do(tis)
	}
	for _, b := range startupCmd {
		w(0, regDataFIFO, b).do(tis)
	}
	w(0, regSTS, stsGo).do(tis)
	tis.Wait()
	if !tis.Failed() {
		t.Fatal("the device is not failed after its command's goroutine panicked")
	}
	if got := (op{reg: regAccess, n: 1}).do(tis); got[0] != 0 {
		t.Errorf("ACCESS of a failed device = %#x, want 0", got[0])
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// evWait is FuzzTIS's event: the guest waits until the command under way
// has completed, as Linux's driver polls STS until it has.
const evWait = 0

// FuzzTIS drives the TIS's five localities with any sequence of reads,
// writes and waits (internal/devfuzz's format), in front of swtpm: no
// access panics or fails the device, the command and response buffers
// never exceed MaxBuffer, and every command ends.
func FuzzTIS(f *testing.F) {
	backend := startSWTPM(f)
	command := []devfuzz.Op{devfuzz.W(regAccess, 1, accessRequestUse), devfuzz.W(regSTS, 1, stsCommandReady)}
	for _, b := range startupCmd {
		command = append(command, devfuzz.W(regDataFIFO, 1, uint64(b)))
	}
	command = append(command, devfuzz.R(regSTS, 4), devfuzz.W(regSTS, 1, stsGo), devfuzz.E(evWait, nil),
		devfuzz.R(regSTS, 4), devfuzz.R(regDataFIFO, 4), devfuzz.R(regDataFIFO, 4), devfuzz.R(regDataFIFO, 2),
		devfuzz.W(regSTS, 1, stsCommandReady), devfuzz.W(regAccess, 1, accessActive))
	devfuzz.Seeds(f,
		devfuzz.Seed{Name: "linux-command", Ops: command},
		devfuzz.Seed{Name: "localities", Ops: []devfuzz.Op{
			devfuzz.W(regAccess, 1, accessRequestUse), devfuzz.W(2*LocalitySize+regAccess, 1, accessRequestUse),
			devfuzz.R(regAccess, 1), devfuzz.W(4*LocalitySize+regAccess, 1, accessSeize), devfuzz.R(regSTS, 4),
			devfuzz.R(4*LocalitySize+regDIDVID, 4), devfuzz.W(4*LocalitySize+regAccess, 1, accessActive), devfuzz.R(2*LocalitySize+regAccess, 1),
		}},
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := New(backend, nil)
		devfuzz.Apply(d, devfuzz.Decode(data, Size), func(op devfuzz.Op) {
			if op.Event == evWait {
				d.Wait()
			}
		}, func(i int, op devfuzz.Op, got uint64) {
			d.mu.Lock()
			defer d.mu.Unlock()
			if len(d.cmd) > MaxBuffer || len(d.rsp) > MaxBuffer {
				t.Fatalf("after %v: buffers hold %d and %d bytes, more than %d", op, len(d.cmd), len(d.rsp), MaxBuffer)
			}
		})
		d.Wait()
		if d.Failed() {
			t.Fatal("the TPM failed")
		}
	})
}
