package measure

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
)

// sampleComponents are two guests' components with digests of real
// bytes.
func sampleComponents() []Component {
	return []Component{
		{Guest: "control", Kind: KindKernel, Name: "vmlinuz", Digest: Digest([]byte("kernel"))},
		{Guest: "control", Kind: KindCmdline, Digest: Digest([]byte("console=ttyAMA0"))},
		{Guest: "infotainment", Kind: KindInitrd, Name: "info with space.cpio.gz", Digest: Digest([]byte("initrd"))},
	}
}

// TestLogRoundTrip writes a log and reads it back: the same events, and
// the components come back with their names.
func TestLogRoundTrip(t *testing.T) {
	cs := sampleComponents()
	events, err := ParseLog(MarshalLog(Events(cs)))
	if err != nil {
		t.Fatalf("ParseLog(MarshalLog()) = %v", err)
	}
	got := Components(events)
	if len(got) != len(cs) {
		t.Fatalf("Components() = %d, want %d", len(got), len(cs))
	}
	for i := range cs {
		if got[i] != cs[i] {
			t.Errorf("component %d = %+v, want %+v", i, got[i], cs[i])
		}
	}
}

// TestLogLayout pins the bytes of the log's first event and the first
// TCG_PCR_EVENT2 against PFP §10.2.1, §10.2.2 and §10.4.5.1.
func TestLogLayout(t *testing.T) {
	c := Component{Guest: "g", Kind: KindKernel, Digest: Digest(nil)}
	b := MarshalLog([]Event{c.Event()})
	le := binary.LittleEndian
	tests := []struct {
		name      string
		off, size int
		want      uint32
	}{
		{"first event's PCR", 0, 4, 0},
		{"first event's type EV_NO_ACTION", 4, 4, EvNoAction},
		{"Spec ID Event size", 28, 4, 16 + 4 + 4 + 4 + 4 + 1},
		{"platformClass", 32 + 16, 4, 0},
		{"specVersionMinor", 32 + 20, 1, 0},
		{"specVersionMajor", 32 + 21, 1, 2},
		{"uintnSize", 32 + 23, 1, 2},
		{"numberOfAlgorithms", 32 + 24, 4, 1},
		{"algorithmId SHA-256", 32 + 28, 2, algSHA256},
		{"digestSize", 32 + 30, 2, 32},
		{"vendorInfoSize", 32 + 32, 1, 0},
		{"event's PCR", 65, 4, PCR},
		{"event's type EV_IPL", 69, 4, EvIPL},
		{"digest count", 73, 4, 1},
		{"digest algorithm", 77, 2, algSHA256},
		{"event size", 79 + 32, 4, uint32(len("tandem g kernel"))},
	}
	for _, tt := range tests {
		var got uint32
		switch tt.size {
		case 1:
			got = uint32(b[tt.off])
		case 2:
			got = uint32(le.Uint16(b[tt.off:]))
		case 4:
			got = le.Uint32(b[tt.off:])
		}
		if got != tt.want {
			t.Errorf("%s at offset %d = %d, want %d", tt.name, tt.off, got, tt.want)
		}
	}
	if !bytes.HasPrefix(b[32:], []byte("Spec ID Event03\x00")) {
		t.Errorf("Spec ID Event signature = %q", b[32:48])
	}
	if got := string(b[115:]); got != "tandem g kernel" {
		t.Errorf("event data = %q, want %q", got, "tandem g kernel")
	}
}

// TestParseLogCorrupt corrupts a good log one field at a time: each is
// refused, naming what is wrong, and none panics.
func TestParseLogCorrupt(t *testing.T) {
	good := MarshalLog(Events(sampleComponents()))
	le := binary.LittleEndian
	first := 32 + 33 // the first TCG_PCR_EVENT2
	tests := []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"empty", func([]byte) []byte { return nil }, "first event's header"},
		{"SHA-1 only log", func(b []byte) []byte { le.PutUint32(b[4:], EvIPL); return b }, "SHA-1-only format"},
		{"bad signature", func(b []byte) []byte { b[32] = 'X'; return b }, "not a Spec ID Event"},
		{"Spec ID Event past the end", func(b []byte) []byte { le.PutUint32(b[28:], 1<<20); return b }, "Spec ID Event at offset 32"},
		{"no algorithms", func(b []byte) []byte { le.PutUint32(b[32+24:], 0); return b }, "lists 0 algorithms"},
		{"too many algorithms", func(b []byte) []byte { le.PutUint32(b[32+24:], 9); return b }, "lists 9 algorithms"},
		{"no SHA-256 bank", func(b []byte) []byte { le.PutUint16(b[32+28:], 0x0004); return b }, "no SHA-256 bank"},
		{"oversized digest", func(b []byte) []byte { le.PutUint16(b[32+30:], 65); return b }, "digest of 65 bytes"},
		{"zero digests", func(b []byte) []byte { le.PutUint32(b[first+8:], 0); return b }, "event 1: malformed TCG event log: 0 digests"},
		{"unknown algorithm", func(b []byte) []byte { le.PutUint16(b[first+12:], 0x0004); return b }, "algorithm 0x4 is not in the Spec ID Event"},
		{"huge event", func(b []byte) []byte { le.PutUint32(b[first+14+32:], 1<<30); return b }, "event data of 1073741824 bytes"},
		{"event data cut", func(b []byte) []byte { return b[:len(b)-1] }, "event 3: malformed TCG event log: event data"},
		{"header cut", func(b []byte) []byte { return append(b, 1, 2) }, "event 4: malformed TCG event log: PCR index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLog(tt.edit(bytes.Clone(good)))
			if !errors.Is(err, ErrLog) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseLog() = %v, want ErrLog saying %q", err, tt.want)
			}
		})
	}
}

func FuzzParseLog(f *testing.F) {
	f.Add(MarshalLog(Events(sampleComponents())))
	f.Add(MarshalLog(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := ParseLog(b)
		if err != nil {
			return
		}
		// What parses writes back to a log that parses to the same.
		again, err := ParseLog(MarshalLog(events))
		if err != nil || len(again) != len(events) {
			t.Fatalf("re-parsing %d events: %d, %v", len(events), len(again), err)
		}
	})
}

// TestReplay pins the extend rule on a known value: one extend of
// SHA-256("kernel") into zeros.
func TestReplay(t *testing.T) {
	d := Digest([]byte("kernel"))
	events := []Event{
		{PCR: PCR, Type: EvIPL, Digest: d},
		{PCR: PCR, Type: EvNoAction, Digest: d}, // not extended
		{PCR: 9, Type: EvIPL, Digest: d},        // another PCR
	}
	want := Digest(append(make([]byte, 32), d[:]...))
	if got := Replay(events, PCR); got != want {
		t.Errorf("Replay() = %x, want %x", got, want)
	}
	if got := Replay(nil, PCR); got != [32]byte{} {
		t.Errorf("Replay(nil) = %x, want zeros", got)
	}
}

// TestLogReadByTPM2Tools hands a log Tandem wrote to tpm2-tools'
// tpm2_eventlog, the TCG log reader Debian ships: it must read every
// event and compute the same PCR value as Replay.
func TestLogReadByTPM2Tools(t *testing.T) {
	tool := testenv.RequireCommand(t, "tpm2_eventlog", "tpm2-tools")
	cs := sampleComponents()
	file := filepath.Join(t.TempDir(), "measurements.log")
	if err := os.WriteFile(file, MarshalLog(Events(cs)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tool, file).CombinedOutput()
	if err != nil {
		t.Fatalf("tpm2_eventlog %s: %v\n%s", file, err, out)
	}
	for _, c := range cs {
		if !strings.Contains(string(out), c.Hex()) {
			t.Errorf("tpm2_eventlog does not show %s's digest %s:\n%s", c, c.Hex(), out)
		}
	}
	want := Replay(Events(cs), PCR)
	m := regexp.MustCompile(`(?m)^\s+15\s*:\s*0x([0-9A-Fa-f]{64})`).FindAllStringSubmatch(string(out), -1)
	var sha256s []string
	for _, s := range m {
		sha256s = append(sha256s, strings.ToLower(s[1]))
	}
	if len(sha256s) == 0 || sha256s[len(sha256s)-1] != hex.EncodeToString(want[:]) {
		t.Errorf("tpm2_eventlog's PCR 15 = %v, want %x; output:\n%s", sha256s, want, out)
	}
}
