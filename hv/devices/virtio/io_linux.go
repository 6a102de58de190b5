package virtio

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// preadv fills bufs from f at off with as few system calls as it can.
func preadv(f *os.File, bufs [][]byte, off int64) error {
	return vectored(f, bufs, off, unix.Preadv)
}

// pwritev writes bufs to f at off with as few system calls as it can.
func pwritev(f *os.File, bufs [][]byte, off int64) error {
	return vectored(f, bufs, off, unix.Pwritev)
}

func vectored(f *os.File, bufs [][]byte, off int64, op func(int, [][]byte, int64) (int, error)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	// Linux takes at most IOV_MAX (1024) vectors a call; a block chain
	// is bounded well below that by the queue size.
	for len(bufs) > 0 {
		var n int
		var opErr error
		if err := rc.Control(func(fd uintptr) {
			for {
				n, opErr = op(int(fd), bufs, off)
				if opErr != unix.EINTR {
					return
				}
			}
		}); err != nil {
			return err
		}
		if opErr != nil {
			return opErr
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		off += int64(n)
		for n > 0 && len(bufs) > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}

// TAP interface setup (Documentation/networking/tuntap.rst).
const (
	tunDevice = "/dev/net/tun"
	// vnetHdrLen is sizeof(struct virtio_net_hdr_v1) (spec §5.1.6): the
	// header a VERSION_1 driver puts before every frame. Telling the TAP
	// to use the same length lets frames pass through unchanged.
	vnetHdrLen = 12
)

// openTAP attaches to (creating if needed) the TAP interface name, with
// virtio-net headers and no offloads.
func openTAP(name string) (*os.File, error) {
	fd, err := unix.Open(tunDevice, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s (is the tun module loaded?): %w", tunDevice, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TAP interface name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("attaching to TAP interface %q (TUNSETIFF; needs CAP_NET_ADMIN or a TAP owned by this user): %w", name, err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("setting the virtio-net header size of TAP %q: %w", name, err)
	}
	// No offloads until a driver accepts them (setTAPOffload): until
	// then the TAP hands the guest only whole, checksummed frames.
	if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("clearing offloads of TAP %q: %w", name, err)
	}
	if err := linkUp(name); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// The descriptor is non-blocking, so os.NewFile registers it with the
	// runtime poller and Close wakes a goroutine blocked in Read.
	return os.NewFile(uintptr(fd), tunDevice+":"+name), nil
}

// tapOffloads maps the driver's receive features to the TAP's offloads:
// what the TAP may hand userspace is what the guest accepted.
func tapOffloads(features uint64) int {
	if features&(1<<netFGuestCSUM) == 0 {
		return 0 // segmentation needs checksum offload too
	}
	flags := unix.TUN_F_CSUM
	if features&(1<<netFGuestTSO4) != 0 {
		flags |= unix.TUN_F_TSO4
	}
	if features&(1<<netFGuestTSO6) != 0 {
		flags |= unix.TUN_F_TSO6
	}
	return flags
}

// setTAPOffload sets the TAP's offloads for the driver's features.
func setTAPOffload(f *os.File, features uint64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, tapOffloads(features))
	}); err != nil {
		return err
	}
	if ioctlErr != nil {
		return fmt.Errorf("TUNSETOFFLOAD %#x: %w", tapOffloads(features), ioctlErr)
	}
	return nil
}

// linkUp sets the TAP's link up, as plugging in a cable would: a TAP that
// is down fails every frame the guest sends with EIO. Bridging or
// addressing it stays the host's business.
func linkUp(name string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing TAP %q up: %w", name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("TAP interface name %q: %w", name, err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading the flags of TAP %q: %w", name, err)
	}
	if ifr.Uint16()&unix.IFF_UP != 0 {
		return nil
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing TAP %q up (SIOCSIFFLAGS): %w", name, err)
	}
	return nil
}

// writev writes bufs to f as one frame.
func writev(f *os.File, bufs [][]byte) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Write(func(fd uintptr) bool {
		_, opErr = unix.Writev(int(fd), bufs)
		return opErr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return opErr
}
