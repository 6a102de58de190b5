//go:build !linux

package virtio

import (
	"errors"
	"os"
)

// preadv reads each buffer in turn where preadv(2) is missing.
func preadv(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

// pwritev writes each buffer in turn where pwritev(2) is missing.
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	for _, b := range bufs {
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		off += int64(len(b))
	}
	return nil
}

const vnetHdrLen = 12

func openTAP(name string) (*os.File, error) {
	return nil, errors.New("TAP interfaces need a Linux host")
}

func setTAPOffload(f *os.File, features uint64) error {
	return errors.New("TAP interfaces need a Linux host")
}

func writev(f *os.File, bufs [][]byte) error {
	return errors.New("TAP interfaces need a Linux host")
}
