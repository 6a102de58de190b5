package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// vsockTarget bounds Tandem's median guest↔host round trip over the
// peer's (issue 19).
const vsockTarget = 2.0

// vsockGuestCID is the guest's CID under both VMMs; the guest connects to
// the host (CID 2) at port 5000, where internal/cmd/vsockecho answers.
const vsockGuestCID = 3

// vsockManifest runs the I/O guest under tandem system, which routes its
// connection to the host's port 5000 to the echo service's UNIX socket:
// the way a guest reaches a host service under Tandem. tandem run routes
// no connections.
const vsockManifest = `guests:
  - name: vsock
    kernel: vmlinuz
    initrd: initrd
    cmdline: %s
    cpus: 2
    memory: 256M
    vsock: {cid: %d, allow: ["host:5000"], host: [{port: 5000, socket: /tmp/echo.sock}]}
`

// vsockSetup starts the echo service twice, once for each VMM's host
// side: on a UNIX socket for Tandem's supervisor to connect to, and on
// AF_VSOCK (vhost_vsock is loaded) for QEMU's vhost-vsock.
const vsockSetup = `/bin/vsockecho unix /tmp/echo.sock > /tmp/echo-unix.log 2>&1 &
/bin/vsockecho vsock 5000 > /tmp/echo-vsock.log 2>&1 &
sleep 1
cat /tmp/echo-unix.log /tmp/echo-vsock.log`

// vsockMetric is one number of the I/O guest's vsock line.
type vsockMetric struct {
	key, name string
	gated     bool
}

var vsockMetrics = []vsockMetric{
	{"rtt-p50-us", "vsock guest↔host round trip p50", true},
	{"rtt-p99-us", "vsock guest↔host round trip p99", false},
}

// vsock runs guests/iobench's vsock test under Tandem (tandem system, a
// vsock.host service) and under QEMU virt with vhost-vsock-device, in one
// boot of the emulated arm64 board, interleaved: the guest sends 64-byte
// messages to an echo service on the host and times each round trip on
// its own clock.
//
// Only on the arm64 board, as the io part, for the same reason.
func (b *bench) vsock() error {
	return b.inEachHost("vsock", true, b.vsockIn)
}

func (b *bench) vsockIn(arch string) error {
	files, peer, err := b.ioGuestFiles(arch, "initrd-iobench-vsock", []string{"virtio_mmio", "vmw_vsock_virtio_transport"}, map[string]string{"/bin/vsockecho": "./internal/cmd/vsockecho"})
	if err != nil {
		return err
	}
	cmdline := "console=ttyAMA0 quiet panic=-1 tandem.io=vsock"
	manifest := filepath.Join(b.out, "vsock.yaml")
	if err := os.WriteFile(manifest, []byte(fmt.Sprintf(vsockManifest, cmdline, vsockGuestCID)), 0o644); err != nil {
		return err
	}
	files["/guest/vsock.yaml"] = manifest
	tandemCmd := "/tandem system /guest/vsock.yaml"
	peerCmd := peer.command(cmdline, fmt.Sprintf("-device vhost-vsock-device,guest-cid=%d", vsockGuestCID))
	// vhost_vsock gives QEMU its /dev/vhost-vsock and the host its
	// AF_VSOCK sockets, which Debian builds as modules.
	runs, res, err := b.runPairs(pairRun{arch: arch, name: "vsock", files: files, modules: []string{"vhost_vsock"}, setup: vsockSetup,
		tandemCmd: tandemCmd, stopTandem: true, peerName: peer.name, peerCmd: peerCmd, marker: ioMarker + "done"})
	if err != nil {
		return err
	}
	vals, left := ioResults(runs)
	for _, l := range left {
		fmt.Fprintf(os.Stderr, "bench: vsock: %s; left out\n", l)
	}
	need := b.rounds/2 + 1
	for _, m := range vsockMetrics {
		t, p := vals["tandem"]["vsock "+m.key], vals["peer"]["vsock "+m.key]
		if len(t) < need || len(p) < need {
			return fmt.Errorf("%s: %d Tandem and %d %s results, want %d of each:\n%s", m.name, len(t), len(p), peer.name, need, res.Tail(30))
		}
		r := row{name: m.name + ", " + arch, unit: "µs", target: vsockTarget, peerName: peer.name + " vhost-vsock"}
		if !m.gated {
			r.name += " (not a target)"
		}
		b.compare("vsock", arch, m.name, "µs", peer.name+" vhost-vsock", t, p, 1, r)
	}
	return nil
}
