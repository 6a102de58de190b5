package fbdev

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctl issues request on fd with buf as its argument: the kernel fills
// buf, a byte image of the request's struct.
func ioctl(fd int, request uintptr, buf []byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), request, uintptr(unsafe.Pointer(&buf[0])))
	if e != 0 {
		return e
	}
	return nil
}
