package main

import (
	"fmt"
	"os"
)

// netTAP is the host's TAP interface behind the guest's NIC, under both
// VMMs in turn: the same interface, address and sink, so the host's side
// of the two runs differs in nothing but the VMM.
const netTAP = "tap0"

// netSetup creates the TAP (tun is loaded: Debian's arm64 kernel builds it
// as a module), gives the host the address the guest streams to
// (guests/iobench's hostAddr, in the guest's /24) and starts the TCP sink
// and source there (guests/iobench's sinkPort and sourcePort).
const netSetup = `tunctl -t ` + netTAP + ` >/dev/null
ip addr add 10.0.2.2/24 dev ` + netTAP + `
ip link set ` + netTAP + ` up
/bin/sink tcp 10.0.2.2:5001 > /tmp/sink.log 2>&1 &
/bin/sink source 10.0.2.2:5002 > /tmp/source.log 2>&1 &
sleep 1
cat /tmp/sink.log /tmp/source.log`

// net runs guests/iobench's net test under Tandem (tandem run --net) and
// under QEMU virt with virtio-net-device on a tap netdev without vhost-net,
// in one boot of the emulated arm64 board, interleaved: the guest streams
// 64 MiB over TCP to a sink on the host, then has a source on the host
// stream 64 MiB to it, and times both on its own clock.
//
// Only on the arm64 board, as the io part, for the same reason.
func (b *bench) net() error {
	return b.inEachHost("net", true, b.netIn)
}

func (b *bench) netIn(arch string) error {
	files, peer, err := b.ioGuestFiles(arch, "initrd-iobench-net", []string{"virtio_mmio", "virtio_net"}, map[string]string{"/bin/sink": "./internal/cmd/sink"})
	if err != nil {
		return err
	}
	cmdline := "console=ttyAMA0 quiet panic=-1 tandem.io=net"
	tandemCmd := fmt.Sprintf("/tandem run --kernel /guest/vmlinuz --initrd /guest/initrd --cmdline %q --cpus 2 --memory 256M --net %s", cmdline, netTAP)
	peerCmd := peer.command(cmdline, fmt.Sprintf("-netdev tap,id=n0,ifname=%s,script=no,downscript=no,vhost=off -device virtio-net-device,netdev=n0", netTAP))
	runs, res, err := b.runPairs(pairRun{arch: arch, name: "net", files: files, modules: []string{"tun"}, setup: netSetup,
		tandemCmd: tandemCmd, peerName: peer.name, peerCmd: peerCmd, marker: ioMarker + "done"})
	if err != nil {
		return err
	}
	vals, left := ioResults(runs)
	for _, l := range left {
		fmt.Fprintf(os.Stderr, "bench: net: %s; left out\n", l)
	}
	peerName := peer.name + " virtio-net-device, vhost off"
	for _, dir := range []struct{ key, metric string }{
		{"net tx-MBps", "virtio-net TCP throughput, guest→host"},
		{"net rx-MBps", "virtio-net TCP throughput, host→guest"},
	} {
		t, p := vals["tandem"][dir.key], vals["peer"][dir.key]
		if need := b.rounds/2 + 1; len(t) < need || len(p) < need {
			return fmt.Errorf("%s: %d Tandem and %d %s results, want %d of each:\n%s", dir.metric, len(t), len(p), peer.name, need, res.Tail(30))
		}
		r := row{name: dir.metric + ", " + arch, unit: "MB/s", target: 1.0, atLeast: true, peerName: peerName}
		b.compare("net", arch, dir.metric, "MB/s", peerName, t, p, 1, r)
	}
	return nil
}
