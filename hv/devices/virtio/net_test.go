//go:build linux

package virtio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// etherTypeTest is the IEEE 802 local experimental EtherType: no host
// protocol answers or sends it, so the test sees only its own frames.
const etherTypeTest = 0x88b5

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// hostPort is the host's end of the TAP: a packet socket on the
// interface that sees only etherTypeTest frames.
type hostPort struct {
	fd      int
	ifindex int
}

func openHostPort(t *testing.T, ifname string) *hostPort {
	t.Helper()
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		t.Fatalf("InterfaceByName(%q) = %v", ifname, err)
	}
	setUp(t, ifname)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(etherTypeTest)))
	if err != nil {
		t.Fatalf("packet socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(etherTypeTest), Ifindex: ifc.Index}); err != nil {
		t.Fatalf("binding packet socket to %s: %v", ifname, err)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &hostPort{fd: fd, ifindex: ifc.Index}
}

// setUp brings the interface up, with IPv6 off so the kernel sends the
// guest no router solicitations.
func setUp(t *testing.T, ifname string) {
	t.Helper()
	os.WriteFile("/proc/sys/net/ipv6/conf/"+ifname+"/disable_ipv6", []byte("1"), 0) // best effort
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCGIFFLAGS %s: %v", ifname, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCSIFFLAGS %s up: %v", ifname, err)
	}
}

func testFrame(dst, src net.HardwareAddr, payload string) []byte {
	f := append(append(append([]byte{}, dst...), src...), 0, 0)
	binary.BigEndian.PutUint16(f[12:], etherTypeTest)
	f = append(f, payload...)
	for len(f) < 60 { // the Ethernet minimum, without FCS
		f = append(f, 0)
	}
	return f
}

func TestNetTAP(t *testing.T) {
	if _, err := os.Stat(tunDevice); err != nil {
		t.Skipf("no TAP support on this host: %v", err)
	}
	ifname := fmt.Sprintf("tdmvt%d", os.Getpid()%100000)
	guestMAC := net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}
	n, err := NewNet(ifname, guestMAC)
	if errors.Is(err, unix.EPERM) {
		t.Skipf("creating TAP %s needs CAP_NET_ADMIN: %v", ifname, err)
	}
	if err != nil {
		t.Fatalf("NewNet(%q) = %v", ifname, err)
	}
	d := newDriver(t, n)
	if got := net.HardwareAddr(configRead(d, 0, 6, 1)); !bytes.Equal(got, guestMAC) {
		t.Errorf("config mac = %v, want %v", got, guestMAC)
	}
	host := openHostPort(t, ifname)
	// The driver takes every offload: the TAP must accept them as the
	// device passes them on (TUNSETOFFLOAD), which it warns of if not.
	var warnings bytes.Buffer
	n.warn.SetOutput(&warnings)
	d.start(allRingFeatures|netFeatures, 2, 16)
	if warnings.Len() > 0 {
		t.Errorf("activating with every offload: %s", warnings.String())
	}
	broadcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

	t.Run("guest to host", func(t *testing.T) {
		q := d.q[netTxQueue]
		frame := testFrame(broadcast, guestMAC, "from the guest")
		hdr, data := d.allocate(vnetHdrLen), d.allocate(uint64(len(frame)))
		d.write(data, frame)
		d.add(q, buf{hdr, vnetHdrLen, false}, buf{data, uint32(len(frame)), false})
		d.kick(q)
		if used := d.takeUsed(q); len(used) != 1 {
			t.Fatalf("transmit used ring = %v, want one element", used)
		}
		got := make([]byte, 2048)
		l, _, err := unix.Recvfrom(host.fd, got, 0)
		if err != nil {
			t.Fatalf("host receive: %v", err)
		}
		if !bytes.Equal(got[:l], frame) {
			t.Errorf("host received % x, want % x", got[:l], frame)
		}
	})

	t.Run("host to guest", func(t *testing.T) {
		q := d.q[netRxQueue]
		const bufLen = vnetHdrLen + 1514
		bufs := make([]uint64, 4)
		for i := range bufs {
			bufs[i] = d.allocate(bufLen)
			d.add(q, buf{bufs[i], bufLen, true})
		}
		d.kick(q)
		frame := testFrame(guestMAC, broadcast, "from the host")
		to := &unix.SockaddrLinklayer{Ifindex: host.ifindex, Halen: 6}
		copy(to.Addr[:], guestMAC)
		if err := unix.Sendto(host.fd, frame, 0, to); err != nil {
			t.Fatalf("host send: %v", err)
		}
		// The host's own network stack may send on the TAP too (an
		// IPv6 multicast listener report as it comes up, where
		// disable_ipv6 could not be set): such frames are passed over.
		var used []usedElem
		for len(used) == 0 {
			for _, u := range d.waitUsed(q, 1) {
				f := d.read(bufs[u.id], int(u.len))
				if len(f) >= vnetHdrLen+14 && binary.BigEndian.Uint16(f[vnetHdrLen+12:]) != etherTypeTest {
					t.Logf("passed over a frame of the host's own stack: % x", f[vnetHdrLen:])
					continue
				}
				used = append(used, u)
			}
		}
		if len(used) != 1 {
			t.Fatalf("receive used ring = %v, want one element of the test's EtherType", used)
		}
		if want := uint32(vnetHdrLen + len(frame)); used[0].len != want {
			t.Errorf("received length = %d, want %d", used[0].len, want)
		}
		got := d.read(bufs[used[0].id], int(used[0].len))
		if nb := binary.LittleEndian.Uint16(got[netHdrNumBuffers:]); nb != 1 {
			t.Errorf("num_buffers = %d, want 1", nb)
		}
		if !bytes.Equal(got[vnetHdrLen:], frame) {
			t.Errorf("guest received % x, want % x", got[vnetHdrLen:], frame)
		}
	})

	if err := d.mmio.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if _, err := net.InterfaceByName(ifname); err == nil {
		t.Errorf("TAP %s still exists after Close", ifname)
	}
}

// TestTAPOffloads checks what the TAP may hand the guest for the receive
// features its driver accepted: segments only with checksum offload, and
// nothing the driver did not take.
func TestTAPOffloads(t *testing.T) {
	const (
		csum = 1 << netFGuestCSUM
		tso4 = 1 << netFGuestTSO4
		tso6 = 1 << netFGuestTSO6
	)
	tests := []struct {
		name     string
		features uint64
		want     int
	}{
		{"nothing accepted", 0, 0},
		{"transmit offloads only", 1<<netFCSUM | 1<<netFHostTSO4 | 1<<netFHostTSO6, 0},
		{"checksum", csum, unix.TUN_F_CSUM},
		{"segments without checksum (invalid: none)", tso4 | tso6, 0},
		{"checksum and TCPv4", csum | tso4, unix.TUN_F_CSUM | unix.TUN_F_TSO4},
		{"all Net offers", netFeatures, unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tapOffloads(tt.features); got != tt.want {
				t.Errorf("tapOffloads(%#x) = %#x, want %#x", tt.features, got, tt.want)
			}
		})
	}
}

// TestFitForDriver checks which received frames reach a driver: only
// offloads it accepted, whatever the TAP was set to when it read them.
func TestFitForDriver(t *testing.T) {
	const (
		plain = 1<<netFMAC | 1<<FeatureVersion1
		csum  = plain | 1<<netFGuestCSUM
		all   = csum | 1<<netFGuestTSO4 | 1<<netFGuestTSO6
	)
	tests := []struct {
		name           string
		flags, gso     byte
		features       uint64
		want           bool
		wantFlagsAfter byte
	}{
		{"plain frame, plain driver", 0, netHdrGSONone, plain, true, 0},
		{"checksum valid, plain driver: flag cleared", netHdrDataValid, netHdrGSONone, plain, true, 0},
		{"checksum valid, csum driver: kept", netHdrDataValid, netHdrGSONone, csum, true, netHdrDataValid},
		{"needs checksum, plain driver", netHdrNeedsCSUM, netHdrGSONone, plain, false, netHdrNeedsCSUM},
		{"needs checksum, csum driver", netHdrNeedsCSUM, netHdrGSONone, csum, true, netHdrNeedsCSUM},
		{"TCPv4 segment, csum-only driver", netHdrNeedsCSUM, netHdrGSOTCPv4, csum, false, netHdrNeedsCSUM},
		{"TCPv4 segment, TSO driver", netHdrNeedsCSUM, netHdrGSOTCPv4, all, true, netHdrNeedsCSUM},
		{"TCPv6 segment, TSO driver", netHdrNeedsCSUM, netHdrGSOTCPv6, all, true, netHdrNeedsCSUM},
		{"TCPv4 segment with ECN (never offered)", netHdrNeedsCSUM, netHdrGSOTCPv4 | netHdrGSOECNFlag, all, false, netHdrNeedsCSUM},
		{"UDP segment (never offered)", netHdrNeedsCSUM, 3, all, false, netHdrNeedsCSUM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := make([]byte, vnetHdrLen+60)
			frame[netHdrFlags], frame[netHdrGSOType] = tt.flags, tt.gso
			if got := fitForDriver(frame, tt.features); got != tt.want || frame[netHdrFlags] != tt.wantFlagsAfter {
				t.Errorf("fitForDriver(flags %#x, gso %#x, features %#x) = %v, flags after %#x; want %v, %#x",
					tt.flags, tt.gso, tt.features, got, frame[netHdrFlags], tt.want, tt.wantFlagsAfter)
			}
		})
	}
}
