package loader

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxRawSize bounds a raw image: a bare-metal program or RTOS is KiB to a
// few MiB; a file of GiB is a disk image given as the kernel.
const MaxRawSize = 256 << 20

// CheckRaw says what is wrong with the raw image at path loaded at addr,
// as LoadRaw would, without guest memory: whether guest RAM holds it is
// left to LoadRaw. Its errors do not name the file.
func CheckRaw(path string, addr uint64, reserved []Range) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if err := checkRawSize(st.Size()); err != nil {
		return err
	}
	return clearOf("the raw image", addr, uint64(st.Size()), reserved)
}

func checkRawSize(size int64) error {
	switch {
	case size == 0:
		return fmt.Errorf("%w: the file is empty", ErrBadRaw)
	case size > MaxRawSize:
		return fmt.Errorf("%w: the raw image is %d bytes, more than the %d MiB a bare-metal image may be (a disk image given as the kernel?)", ErrPlacement, size, MaxRawSize>>20)
	}
	return nil
}

// LoadRaw copies the raw image in r (size bytes) to guest-physical addr,
// which must lie in guest RAM with the whole image, clear of reserved.
// The image is entered at addr.
func LoadRaw(m Memory, r io.ReaderAt, size int64, addr uint64, reserved []Range) (Span, error) {
	if err := checkRawSize(size); err != nil {
		return Span{}, err
	}
	dst, err := place(m, "the raw image", addr, uint64(size), reserved)
	if err != nil {
		return Span{}, err
	}
	if n, err := r.ReadAt(dst, 0); n < len(dst) || (err != nil && !errors.Is(err, io.EOF)) {
		return Span{}, fmt.Errorf("reading the raw image: %d of %d bytes: %v", n, len(dst), err)
	}
	return Span{addr, addr + uint64(size)}, nil
}

// LoadRawFile is LoadRaw of the file at path.
func LoadRawFile(m Memory, path string, addr uint64, reserved []Range) (Span, error) {
	f, err := os.Open(path)
	if err != nil {
		return Span{}, fmt.Errorf("opening kernel: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Span{}, err
	}
	return LoadRaw(m, f, st.Size(), addr, reserved)
}
