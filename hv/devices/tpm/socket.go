package tpm

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// SocketBackend executes commands on a TPM that serves raw TPM 2.0
// commands on a UNIX socket (swtpm socket --server type=unixio), one
// connection per command: swtpm serves one connection at a time, and one
// held open would keep every other user out.
type SocketBackend struct {
	Path string
	// Timeout bounds one command (DefaultTimeout if 0): a key's
	// generation takes seconds on a slow host.
	Timeout time.Duration
}

// DefaultTimeout bounds a command of a SocketBackend.
const DefaultTimeout = 2 * time.Minute

// Execute sends cmd and reads the whole response, which a stream may
// deliver in pieces, by the size its header gives (TPM 2.0 Library,
// Part 1, §18: tag, size, code, big-endian), up to MaxBuffer bytes.
func (s SocketBackend) Execute(cmd []byte) ([]byte, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	c, err := net.DialTimeout("unix", s.Path, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(cmd); err != nil {
		return nil, fmt.Errorf("TPM %s: sending the command: %w", s.Path, err)
	}
	rsp := make([]byte, headerSize)
	if _, err := io.ReadFull(c, rsp); err != nil {
		return nil, fmt.Errorf("TPM %s: reading the response header: %w", s.Path, err)
	}
	size := binary.BigEndian.Uint32(rsp[sizeFieldStart:])
	if size < headerSize || size > MaxBuffer {
		return nil, fmt.Errorf("TPM %s: response of %d bytes: want %d to %d", s.Path, size, headerSize, MaxBuffer)
	}
	rsp = append(rsp, make([]byte, size-headerSize)...)
	if _, err := io.ReadFull(c, rsp[headerSize:]); err != nil {
		return nil, fmt.Errorf("TPM %s: reading the response: %w", s.Path, err)
	}
	return rsp, nil
}
