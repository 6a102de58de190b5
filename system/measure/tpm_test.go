package measure

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// startSWTPM runs a fresh software TPM for one test and returns its
// socket.
func startSWTPM(t *testing.T) string {
	t.Helper()
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	dir := t.TempDir()
	tpm, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "tpm.sock")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Stop() })
	return tpm.Socket()
}

// TestExtendMatchesReplay extends components into swtpm's PCR 15 with
// go-tpm and reads it back: zeros before, then each value Replay
// predicts, byte for byte.
func TestExtendMatchesReplay(t *testing.T) {
	tpm, err := OpenTPM(startSWTPM(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tpm.Close()
	got, err := tpm.Read(PCR)
	if err != nil {
		t.Fatal(err)
	}
	if got != [32]byte{} {
		t.Fatalf("PCR %d of a fresh TPM = %x, want zeros", PCR, got)
	}
	cs := sampleComponents()
	for i, c := range cs {
		if err := tpm.Extend(PCR, c.Digest); err != nil {
			t.Fatal(err)
		}
		got, err := tpm.Read(PCR)
		if err != nil {
			t.Fatal(err)
		}
		if want := Replay(Events(cs[:i+1]), PCR); got != want {
			t.Errorf("after extending %s: PCR %d = %x, want %x", c, PCR, got, want)
		}
	}
	// Another PCR is untouched.
	if v, err := tpm.Read(9); err != nil || v != [32]byte{} {
		t.Errorf("PCR 9 = %x, %v, want zeros", v, err)
	}
}

// TestOpenTPMRefuses checks what OpenTPM says of paths that are no TPM.
func TestOpenTPMRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	tests := []struct {
		name, path string
		noTPM      bool
		want       string
	}{
		{"missing", filepath.Join(dir, "tpmrm0"), true, "no TPM at " + dir},
		{"a plain file", file, false, "want a TPM character device"},
		{"a directory", dir, false, "want a TPM character device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := OpenTPM(tt.path)
			if err == nil || errors.Is(err, ErrNoTPM) != tt.noTPM || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenTPM(%s) = %v, want an error saying %q (ErrNoTPM: %v)", tt.path, err, tt.want, tt.noTPM)
			}
		})
	}
}

// TestSocketTPMBadResponse serves a socket that answers with a header
// announcing too big a response: the error says so, nothing is
// allocated for it.
func TestSocketTPMBadResponse(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "bad.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 512)
		c.Read(buf)
		c.Write([]byte{0x80, 0x01, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	}()
	tpm, err := OpenTPM(sock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpm.Read(PCR); err == nil || !strings.Contains(err.Error(), "response of 2147483647 bytes") {
		t.Errorf("Read() = %v, want the oversized response refused", err)
	}
}
