package measure

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	tpmdev "github.com/tandem-hv/tandem/hv/devices/tpm"
)

// DefaultTPM is the kernel's TPM 2.0 resource manager: unlike /dev/tpm0
// it may be opened by several processes at once (tandem attest while the
// supervisor runs).
const DefaultTPM = "/dev/tpmrm0"

// socketTimeout bounds one command to a software TPM: PCR reads and
// extends take microseconds.
const socketTimeout = 10 * time.Second

// ErrNoTPM says there is no TPM at the path given.
var ErrNoTPM = errors.New("no TPM")

// TPM is a TPM 2.0: a character device (/dev/tpmrm0) or the UNIX socket
// of a software TPM (swtpm socket --server type=unixio,path=...).
type TPM struct {
	path string
	t    transport.TPMCloser
}

// OpenTPM opens the TPM at path. A path that does not exist is ErrNoTPM.
func OpenTPM(path string) (*TPM, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s", ErrNoTPM, path)
	}
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", path, err)
	}
	var t transport.TPMCloser
	switch {
	case fi.Mode()&fs.ModeSocket != 0:
		t = &socketTPM{tpmdev.SocketBackend{Path: path, Timeout: socketTimeout}}
	case fi.Mode()&fs.ModeCharDevice != 0:
		if t, err = linuxtpm.Open(path); err != nil {
			return nil, fmt.Errorf("opening TPM %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("TPM %s: a %v, want a TPM character device (/dev/tpmrm0) or a software TPM's UNIX socket", path, fi.Mode().Type())
	}
	return &TPM{path: path, t: t}, nil
}

// Path is where the TPM was opened.
func (t *TPM) Path() string { return t.path }

// Close closes the TPM.
func (t *TPM) Close() error { return t.t.Close() }

// Extend extends digest into PCR pcr's SHA-256 bank (TPM2_PCR_Extend,
// TPM 2.0 Library, Part 3, §22.2). PCRs 0-15 take an empty password
// (platform authorization is not needed for them).
func (t *TPM) Extend(pcr uint32, digest [sha256.Size]byte) error {
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests: tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{
			{HashAlg: tpm2.TPMAlgSHA256, Digest: digest[:]},
		}},
	}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("TPM %s: extending PCR %d: %w", t.path, pcr, err)
	}
	return nil
}

// Read reads PCR pcr's SHA-256 bank (TPM2_PCR_Read, Part 3, §22.4).
func (t *TPM) Read(pcr uint32) ([sha256.Size]byte, error) {
	var v [sha256.Size]byte
	rsp, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{
		{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(uint(pcr))},
	}}}.Execute(t.t)
	if err != nil {
		return v, fmt.Errorf("TPM %s: reading PCR %d: %w", t.path, pcr, err)
	}
	if len(rsp.PCRValues.Digests) != 1 || len(rsp.PCRValues.Digests[0].Buffer) != sha256.Size {
		return v, fmt.Errorf("TPM %s: reading PCR %d: the TPM has no SHA-256 bank allocated for it", t.path, pcr)
	}
	copy(v[:], rsp.PCRValues.Digests[0].Buffer)
	return v, nil
}

// socketTPM is a software TPM's socket as a go-tpm transport: the same
// client a guest's virtual TPM device uses.
type socketTPM struct{ b tpmdev.SocketBackend }

func (s *socketTPM) Send(cmd []byte) ([]byte, error) { return s.b.Execute(cmd) }
func (s *socketTPM) Close() error                    { return nil }
