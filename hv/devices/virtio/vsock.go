package virtio

import "io"

// VsockHost is the host side of a vsock device: where the guest's
// connections go.
type VsockHost interface {
	// Connect opens a stream for a guest's connection from its srcPort to
	// dstCID:dstPort. An error refuses it: the guest sees an RST. It may
	// block; it is never called on a vCPU thread.
	Connect(srcPort uint32, dstCID uint64, dstPort uint32) (io.ReadWriteCloser, error)
}
