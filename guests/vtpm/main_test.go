package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	tpmdev "github.com/tandem-hv/tandem/hv/devices/tpm"
	"github.com/tandem-hv/tandem/internal/testenv"
	"github.com/tandem-hv/tandem/system/swtpm"
)

// socket is a software TPM's socket as a go-tpm transport.
type socket struct{ tpmdev.SocketBackend }

func (s socket) Send(cmd []byte) ([]byte, error) { return s.Execute(cmd) }

// TestStateAcrossPowerCycles runs the guest's TPM steps on swtpm, stopped
// and started again on the same state between runs, as the supervisor
// does between a guest's runs: the boot count goes on, PCR 16 starts from
// zeros each time.
func TestStateAcrossPowerCycles(t *testing.T) {
	testenv.RequireCommand(t, swtpm.Program, "swtpm")
	dir := t.TempDir()
	for boot := uint64(1); boot <= 3; boot++ {
		sw, err := swtpm.Start(context.Background(), swtpm.Options{StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "tpm.sock")})
		if err != nil {
			t.Fatal(err)
		}
		tpm := socket{tpmdev.SocketBackend{Path: sw.Socket()}}
		pcr, err := readPCR(tpm)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pcr, make([]byte, 32)) {
			t.Errorf("boot %d: PCR 16 = %x, want zeros after the power cycle", boot, pcr)
		}
		got, err := countBoot(tpm)
		if err != nil {
			t.Fatal(err)
		}
		if got != boot {
			t.Errorf("boot %d: countBoot() = %d", boot, got)
		}
		sw.Stop()
	}
}
